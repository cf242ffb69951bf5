"""Unit tests of the pure defences: the token bucket, buckets per key, the per-address
counter, the router's guard rules (no sockets; time is a number we move by hand)."""

from __future__ import annotations

import pytest

from socp.protocol import crypto, frames
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import new_id
from socp.ratelimit import AddressSlots, ElasticBucket, KeyedBuckets, TokenBucket, hinted_retry_ms, retry_hint
from socp.router import abuse_rules
from socp.router.seen import SeenCache
from support.clock import Clock

NOW = 1_700_000_000_000


def test_bucket_allows_a_burst_then_refuses_until_it_refills() -> None:
    clock = Clock(100.0)
    bucket = TokenBucket(rate=8, burst=5, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    assert bucket.retry_after() == pytest.approx(0.125)
    clock.now += 0.125
    assert bucket.take() and not bucket.take()
    clock.now += 100
    assert bucket.tokens == 5 and bucket.full()   # never above the burst


def test_bucket_ignores_a_clock_that_steps_back() -> None:
    clock = Clock(100.0)
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert bucket.take()
    clock.now -= 50
    assert not bucket.take()
    clock.now += 1
    assert bucket.take()


def test_elastic_bucket_lets_a_lone_sender_use_the_spare_and_a_crowd_keep_its_own_rate() -> None:
    clock = Clock(100.0)
    spare = TokenBucket(rate=80, burst=20, clock=clock)
    lone = ElasticBucket(TokenBucket(rate=1, burst=10, clock=clock), spare)
    assert sum(lone.take() for _ in range(50)) == 30          # its own 10, then the spare's 20
    assert lone.from_spare == 20 and (lone.rate, lone.burst) == (1, 10)
    # The spare is dry: a second connection still has its own burst, which nobody took.
    other = ElasticBucket(TokenBucket(rate=1, burst=10, clock=clock), spare)
    assert sum(other.take() for _ in range(50)) == 10
    assert lone.retry_after() == pytest.approx(1.0)          # its own refill, not the spare's
    clock.now += 0.125                                        # the spare refills (80/s): 10 more, to whoever asks
    assert sum(lone.take() for _ in range(50)) == 10
    alone = ElasticBucket(TokenBucket(1, 3, clock), None)     # no spare: its own rate only
    assert sum(alone.take() for _ in range(9)) == 3


def test_bucket_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, clock=Clock(100.0))
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0, clock=Clock(100.0))


def test_retry_hint_is_parseable_and_never_zero() -> None:
    assert retry_hint(0.0001).endswith("(retry_after_ms=1)")
    assert "retry_after_ms=1500" in retry_hint(1.5)


def test_the_hint_reads_back_as_written_and_nothing_without_one() -> None:
    assert hinted_retry_ms("queued for the next 300 ms; " + retry_hint(1.5)) == 1500
    assert hinted_retry_ms("the recipient's server is not keeping up; retry later") is None
    assert hinted_retry_ms(None) is None


def test_keyed_buckets_limit_each_key_alone_and_forget_the_least_recent() -> None:
    clock = Clock(100.0)
    buckets = KeyedBuckets(rate=2, burst=3, clock=clock, max_keys=2)
    assert [buckets.take("a") for _ in range(4)] == [True, True, True, False]
    assert buckets.retry_after("a") == pytest.approx(0.5)
    assert buckets.take("b")                 # another key has its own burst
    clock.now += 0.5
    assert buckets.take("a") and not buckets.take("a")
    assert buckets.retry_after("never seen") == 0.0
    buckets.take("c")                        # a third key: "b", least recently used, goes
    assert len(buckets) == 2
    assert [buckets.take("b") for _ in range(4)] == [True, True, True, False]   # a fresh bucket
    with pytest.raises(ValueError):
        KeyedBuckets(rate=1, burst=1, clock=clock, max_keys=0)
    with pytest.raises(ValueError):
        KeyedBuckets(rate=0, burst=1, clock=clock)


def test_address_slots_count_per_address() -> None:
    slots = AddressSlots(2)
    assert slots.acquire("a") and slots.acquire("a") and not slots.acquire("a")
    assert slots.acquire("b")
    slots.release("a")
    assert slots.acquire("a") and slots.open_from("a") == 2
    for _ in range(3):
        slots.release("a")
    assert slots.open_from("a") == 0 and len(slots) == 1


def test_seen_cache_is_bounded_in_size_and_time() -> None:
    seen = SeenCache(max_entries=3, ttl_ms=1000)
    for key in range(5):
        assert seen.check_and_add(key, NOW)
    assert len(seen) == 3
    assert not seen.check_and_add(4, NOW)
    seen.expire(NOW + 1001)
    assert len(seen) == 0


def guard(**settings: object) -> abuse_rules.Guard:
    g = abuse_rules.Guard(abuse_rules.LimitSettings(**settings))   # type: ignore[arg-type]  # each test passes the settings it changes
    g.now_ms = NOW
    return g


def test_user_rate_limit_answers_once_then_drops_silently_then_recovers() -> None:
    g = guard(user_rate=10, user_burst=3)
    assert [abuse_rules.user_rate_problem(g, "u") for _ in range(3)] == [None] * 3
    code, detail = abuse_rules.user_rate_problem(g, "u")
    assert code.value == "RATE_LIMITED" and "retry_after_ms=" in detail
    assert abuse_rules.user_rate_problem(g, "u") == (code, "")       # told once per burst
    assert abuse_rules.user_rate_problem(g, "v") is None              # other users unaffected
    g.now_ms += 1000
    assert abuse_rules.user_rate_problem(g, "u") is None


def test_server_rate_limit_and_switch_off() -> None:
    g = guard(server_rate=1, server_burst=1)
    assert abuse_rules.server_rate_problem(g, "s") is None
    assert abuse_rules.server_rate_problem(g, "s") is not None
    off = abuse_rules.Guard.without_rate_limits()
    assert all(abuse_rules.server_rate_problem(off, "s") is None for _ in range(10))
    assert all(abuse_rules.error_allowed(off, 1) for _ in range(100))


def test_error_budget_per_connection_and_per_node() -> None:
    g = guard(error_rate=1, error_burst=2, node_error_rate=1, node_error_burst=3)
    assert [abuse_rules.error_allowed(g, 1) for _ in range(3)] == [True, True, False]
    assert abuse_rules.error_allowed(g, 2) and not abuse_rules.error_allowed(g, 3)   # node budget spent
    assert g.dropped_errors == 2


def test_bucket_table_is_bounded() -> None:
    g = guard(max_buckets=10)
    for n in range(50):
        abuse_rules.user_rate_problem(g, f"user{n}")
    assert len(g.user_buckets) == 10


def _frame(frame_type: T, ts: int, payload: dict | None = None) -> Envelope:
    return Envelope(type=frame_type.value, from_=new_id(), to="*", ts=ts, payload=payload or {})


def test_server_frames_must_be_fresh_and_gossip_is_deduplicated() -> None:
    g, seen = guard(), SeenCache()
    old = _frame(T.USER_ADVERTISE, NOW - abuse_rules.MAX_AGE_MS - 1)
    assert abuse_rules.server_frame_problem(g, seen, old, b"d")[0].value == "REPLAY"
    ahead = _frame(T.SERVER_DELIVER, NOW + abuse_rules.MAX_SKEW_AHEAD_MS + 1)
    assert abuse_rules.server_frame_problem(g, seen, ahead, b"d") is not None
    assert abuse_rules.server_frame_problem(g, seen, _frame(T.HEARTBEAT, 0), b"d") is None   # no effect, no check
    announce = _frame(T.SERVER_ANNOUNCE, NOW)
    assert abuse_rules.server_frame_problem(g, seen, announce, b"d") is None
    assert abuse_rules.server_frame_problem(g, seen, announce, b"d")[1] == ""               # dropped silently
    # Federation deduplicates these itself; presence only once the origin's signature
    # is checked (test_a_forged_remove_cannot_shadow_the_genuine_one).
    for frame_type in (T.SERVER_DELIVER, T.USER_REMOVE, T.USER_ADVERTISE):
        frame = _frame(frame_type, NOW)
        assert abuse_rules.server_frame_problem(g, seen, frame, b"d") is None
        assert abuse_rules.server_frame_problem(g, seen, frame, b"d") is None


def test_server_hello_replay_is_refused() -> None:
    g, seen = guard(), SeenCache()
    hello = _frame(T.SERVER_HELLO_LINK, NOW)
    assert abuse_rules.server_hello_problem(g, seen, hello, b"d") is None
    assert "seen before" in abuse_rules.server_hello_problem(g, seen, hello, b"d")[1]
    assert "window" in abuse_rules.server_hello_problem(g, seen, _frame(T.SERVER_HELLO_JOIN, 1), b"d")[1]


def test_user_hello_proof_of_possession(keys) -> None:
    g = guard()
    key = keys[1]
    user_id = new_id()
    from socp.protocol import signing
    hello = signing.sign_envelope(key, frames.user_hello(user_id, None, NOW, crypto.encode_public_key(key)))
    assert abuse_rules.user_hello_problem(g, hello, registered_here=False) is None
    abuse_rules.user_hello_accepted(g, hello)
    # The same signed bytes again: a replay.
    assert abuse_rules.user_hello_problem(g, hello, registered_here=True)[0].value == "REPLAY"
    # An unsigned hello for an id that signs: refused; a fresh signature: accepted.
    unsigned = hello.with_sig("")
    assert abuse_rules.user_hello_problem(g, unsigned, registered_here=True)[0].value == "INVALID_SIG"
    fresh = signing.sign_envelope(key, frames.user_hello(user_id, None, NOW, crypto.encode_public_key(key)))
    assert fresh.sig != hello.sig and abuse_rules.user_hello_problem(g, fresh, registered_here=True) is None
    # Ids whose clients never sign (peers) keep working unsigned.
    peer_hello = frames.user_hello(new_id(), None, NOW, crypto.encode_public_key(key))
    assert abuse_rules.user_hello_problem(g, peer_hello, registered_here=True) is None


def test_file_transfers_are_bounded_and_expire() -> None:
    g = guard(transfers_per_sender=2, transfer_idle_ms=1000)

    def send(frame_type: T, file_id: str) -> object:
        return abuse_rules.file_problem(g, "alice", _frame(frame_type, NOW, {"file_id": file_id}))

    assert send(T.FILE_CHUNK, "x")[0].value == "FORBIDDEN"          # no FILE_START
    assert send(T.FILE_START, "a") is None and send(T.FILE_START, "b") is None
    assert send(T.FILE_START, "a")[0].value == "FORBIDDEN"          # already open
    assert send(T.FILE_START, "c")[0].value == "RATE_LIMITED"
    assert send(T.FILE_END, "a") is None and send(T.FILE_START, "c") is None
    g.tick(NOW + 2000)                                                # b and c went idle
    assert g.transfers == {}
    assert send(T.FILE_CHUNK, "b")[0].value == "FORBIDDEN"
