"""Which frames the gateway refuses for failed signature checks (check_throttle.py):
pure, on a hand-driven clock, no sockets."""

from __future__ import annotations

from socp.gateway.check_throttle import CheckThrottle, Verdict
from socp.ratelimit import KeyedBuckets
from support.clock import Clock

DM, POST, LIST = "MSG_DIRECT", "MSG_PUBLIC_CHANNEL", "LIST_REQUEST"


def test_a_connection_is_refused_once_its_failures_spend_the_allowance_and_recovers_with_time() -> None:
    clock = Clock()
    throttle = CheckThrottle(clock, allowance=4, refill=2.0)
    assert not throttle.throttles(7)
    throttle.failed(7, 3)
    assert throttle.decide(7, DM).verdict is Verdict.CHECK          # one failure left
    throttle.failed(7, 1)
    refused = throttle.decide(7, DM)
    assert refused.verdict is Verdict.REFUSE
    assert "retry_after_ms=500" in refused.detail and refused.detail.startswith("MSG_DIRECT: ")
    assert throttle.decide(7, POST).verdict is Verdict.REFUSE
    assert throttle.frames_refused == 2 and throttle.failures_reported == 4
    assert throttle.throttled_now() == 1
    clock.now += 0.5                                                 # one failure's worth back
    assert throttle.decide(7, DM).verdict is Verdict.CHECK
    assert throttle.throttled_now() == 0


def test_only_content_signed_frames_are_refused_other_frames_go_on() -> None:
    throttle = CheckThrottle(Clock(), allowance=2, refill=1.0)
    throttle.failed(7, 5)
    assert throttle.decide(7, DM).verdict is Verdict.REFUSE
    assert throttle.decide(7, LIST).verdict is Verdict.CHECK         # a list, a heartbeat: cheap to check
    assert throttle.decide(7, "FILE_CHUNK").verdict is Verdict.CHECK


def test_an_honest_connection_with_an_occasional_bad_frame_is_never_refused() -> None:
    clock = Clock()
    throttle = CheckThrottle(clock, allowance=10, refill=1.0)
    for _ in range(600):                          # ten minutes, one bad frame every 1.5 s
        throttle.failed(7, 1)
        assert throttle.decide(7, DM).verdict is Verdict.CHECK
        clock.now += 1.5
    assert throttle.frames_refused == 0


def test_a_flooder_does_not_get_other_connections_refused() -> None:
    throttle = CheckThrottle(Clock(), allowance=3, refill=1.0)
    for flooder in range(30):
        throttle.failed(flooder, 100)
    assert all(throttle.decide(flooder, DM).verdict is Verdict.REFUSE for flooder in range(30))
    assert throttle.decide(100, DM).verdict is Verdict.CHECK          # never failed
    throttle.failed(101, 1)
    assert throttle.decide(101, DM).verdict is Verdict.CHECK          # failed once


def test_a_connection_that_sends_on_into_the_throttle_is_closed() -> None:
    throttle = CheckThrottle(Clock(), allowance=2, refill=0.1, close_after_refused=5)
    throttle.failed(7, 2)
    verdicts = [throttle.decide(7, DM).verdict for _ in range(7)]
    assert verdicts == [Verdict.REFUSE] * 5 + [Verdict.CLOSE] * 2
    assert "do not verify" in throttle.decide(7, DM).detail
    assert throttle.decide(7, LIST).verdict is Verdict.CHECK


def test_a_closed_connection_is_forgotten_and_memory_is_bounded() -> None:
    throttle = CheckThrottle(Clock(), allowance=2, refill=0.1, max_connections=4)
    throttle.failed(7, 2)
    throttle.decide(7, DM)
    throttle.forget(7)
    assert not throttle.throttles(7) and throttle.decide(7, DM).verdict is Verdict.CHECK
    for conn in range(100):
        throttle.failed(conn, 2)
        throttle.decide(conn, DM)
    assert len(throttle) == 4
    assert len(throttle._refused) <= 4 + 1


def test_keyed_buckets_forget_a_key() -> None:
    buckets = KeyedBuckets(1.0, 2, Clock())
    buckets.take("a")
    buckets.forget("a")
    buckets.forget("never seen")
    assert "a" not in buckets and buckets.keys() == []
