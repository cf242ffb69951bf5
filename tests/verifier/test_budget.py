"""A connection whose content signatures keep failing stops costing RSA checks
(verifier/budget.py); pure, on a hand-driven clock."""

from __future__ import annotations

from socp.ipc.messages import ROLE_USER, Rejected, Verified, VerifyJob
from socp.protocol import frames
from socp.protocol.acks import msg_ref
from socp.protocol.crypto import encode_public_key
from socp.protocol.ids import new_id
from socp.protocol.signing import sign_dm
from socp.verifier.budget import FailedChecks
from socp.verifier.checks import check_job
from support.clock import Clock

TS = 1_700_000_000_000


def test_a_connection_past_its_failures_is_refused_unchecked_until_the_budget_refills() -> None:
    clock = Clock()
    failures = FailedChecks(clock, rate=5.0, burst=3)
    assert failures.refusal(7) == ""
    for _ in range(3):
        failures.failed(7)
    refusal = failures.refusal(7)
    assert "retry_after_ms=" in refusal and failures.unchecked == 1
    assert failures.refusal(8) == ""           # another connection is not concerned
    clock.now += 0.2                          # one failure's worth refilled
    assert failures.refusal(7) == ""


def test_connections_that_failed_share_one_budget_and_a_clean_one_is_always_checked() -> None:
    """Before: 30 flooders each within their own budget cost 300 failed checks at once."""
    clock = Clock()
    failures = FailedChecks(clock, rate=1.0, burst=5, shared_rate=2.0, shared_burst=4)
    checked = 0
    for _ in range(5):
        for conn in range(30):
            if failures.refusal(conn) == "":
                checked += 1
                failures.failed(conn)
    assert checked == 30 + 4          # each connection's first failure, then the shared budget
    refusal = failures.refusal(29)
    assert "retry_after_ms=500" in refusal          # the shared budget's next token, not the connection's
    assert failures.refusal(100) == ""              # a connection that never failed is checked
    clock.now += 0.5                                # one shared token back
    assert sum(failures.refusal(conn) == "" for conn in range(30)) == 30   # peeking spends nothing
    failures.failed(0)
    assert all(failures.refusal(conn) != "" for conn in range(30))


def test_the_budget_remembers_a_bounded_number_of_connections() -> None:
    failures = FailedChecks(Clock(), max_connections=4)
    for conn in range(10):
        failures.failed(conn)
    assert len(failures) == 4


def test_check_job_refuses_garbage_unchecked_once_the_budget_is_spent_naming_each_frame(keys) -> None:
    """Before: every garbage frame cost every form's RSA check, without end."""
    clock = Clock()
    failures = FailedChecks(clock, rate=5.0, burst=3)
    user, peer, pub = new_id(), new_id(), encode_public_key(keys[1])

    def garbage(n: int):
        return frames.msg_direct(user, peer, TS + n, "AAAA", pub, "c2ln")

    def job(frame, conn: int = 3) -> VerifyJob:
        return VerifyJob(conn=conn, seq=1, text=frame.to_wire(), role=ROLE_USER, verify_key="")

    codes = [check_job(job(garbage(n)), True, failures) for n in range(5)]
    assert [r.code for r in codes] == ["INVALID_SIG"] * 3 + ["RATE_LIMITED"] * 2
    assert all(isinstance(r, Rejected) and r.msg_ref == msg_ref(garbage(n)) for n, r in enumerate(codes))
    # Another connection's honest DM is checked and passes meanwhile.
    honest = frames.msg_direct(user, peer, TS, "AAAA", pub, sign_dm(keys[1], "AAAA", user, peer, TS))
    assert isinstance(check_job(job(honest, conn=4), True, failures), Verified)
    # Time refills the budget: the connection's frames are checked again.
    clock.now += 1.0
    assert isinstance(check_job(job(honest), True, failures), Verified)


def test_failures_and_refusals_are_reported_per_connection_once(keys) -> None:
    """The gateway throttles on this report (ChecksFailed, gateway/check_throttle.py)."""
    clock = Clock()
    failures = FailedChecks(clock, rate=5.0, burst=3)
    user, peer, pub = new_id(), new_id(), encode_public_key(keys[1])
    garbage = [frames.msg_direct(user, peer, TS + n, "AAAA", pub, "c2ln") for n in range(5)]
    for frame in garbage:
        check_job(VerifyJob(conn=3, seq=1, text=frame.to_wire(), role=ROLE_USER, verify_key=""), True, failures)
    honest = frames.msg_direct(user, peer, TS, "AAAA", pub, sign_dm(keys[1], "AAAA", user, peer, TS))
    check_job(VerifyJob(conn=4, seq=1, text=honest.to_wire(), role=ROLE_USER, verify_key=""), True, failures)
    assert failures.take_report() == [(3, 5)]      # 3 failed, 2 refused unchecked; conn 4 passed
    assert failures.take_report() == []
