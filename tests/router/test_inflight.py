"""Sign jobs in flight: re-sent when presumed lost, never because the pool is busy."""

from __future__ import annotations

from socp.router.recovery import InFlight


def test_released_jobs_are_forgotten() -> None:
    flight = InFlight(timeout_ms=100)
    flight.sent(b"a", [(1, 0), (2, 0)], now_ms=0)
    flight.released(1, 1)
    assert len(flight) == 1                      # conn 2's item is still out
    flight.released(2, 1)
    assert len(flight) == 0
    assert flight.due(now_ms=10_000) == ([], [])


def test_a_lost_job_is_sent_again_then_given_up() -> None:
    flight = InFlight(timeout_ms=100, max_tries=2, sign_budget_ms=0)
    flight.sent(b"job", [(7, 3)], now_ms=0)
    assert flight.due(now_ms=50) == ([], [])
    assert flight.due(now_ms=100) == ([b"job"], [])
    assert flight.due(now_ms=150) == ([], [])    # the re-send gets its own time
    assert flight.due(now_ms=200) == ([], [(7, 3)])
    assert len(flight) == 0 and (flight.resent, flight.given_up) == (1, 1)


def test_a_busy_pool_gets_time_for_its_backlog() -> None:
    # 1,000 jobs queued on 2 verifiers take seconds to sign; none of them is lost.
    flight = InFlight(timeout_ms=2_000, verifiers=2, sign_budget_ms=12)
    for index in range(1_000):
        flight.sent(b"%d" % index, [(index, 0)], now_ms=0)
    assert flight.patience_ms() == 2_000 + 1_000 * 12 // 2
    assert flight.due(now_ms=5_000) == ([], [])
    for index in range(900):                     # the pool works through its queue
        flight.released(index, 1)
    again, _ = flight.due(now_ms=5_000)
    assert len(again) == 100                     # now the rest is overdue
    assert flight.due(now_ms=5_001) == ([], [])  # and is not sent twice


def test_forgetting_a_connection_drops_its_items() -> None:
    flight = InFlight(timeout_ms=100, sign_budget_ms=0)
    flight.sent(b"x", [(1, 0)], now_ms=0)
    flight.sent(b"y", [(1, 1), (2, 0)], now_ms=0)
    flight.forget_conn(1)
    assert len(flight) == 1
    assert flight.due(now_ms=100) == ([b"y"], [])


def test_jobs_stay_oldest_first_after_a_resend() -> None:
    flight = InFlight(timeout_ms=100, sign_budget_ms=0)
    flight.sent(b"old", [(1, 0)], now_ms=0)
    flight.sent(b"new", [(2, 0)], now_ms=60)
    assert flight.due(now_ms=100) == ([b"old"], [])
    assert flight.due(now_ms=160) == ([b"new"], [])   # found although "old" is older by send order
    assert flight.due(now_ms=200) == ([b"old"], [])


def test_a_release_mark_covers_only_the_seqs_below_it() -> None:
    flight = InFlight(sign_budget_ms=0)
    flight.sent(b"first", [(1, 10)], now_ms=0)
    flight.sent(b"second", [(1, 11)], now_ms=0)
    flight.released(1, 11)                       # 10 released, 11 not yet
    assert len(flight) == 1
    again, _ = flight.due(flight.timeout_ms)
    assert again == [b"second"]


def test_a_copy_that_came_through_is_not_given_up() -> None:
    flight = InFlight(timeout_ms=2_000, max_tries=3, sign_budget_ms=0)
    flight.sent(b"job", [(1, 10), (2, 20)], now_ms=0)
    assert flight.due(1_999) == ([], [])                  # not yet
    assert flight.due(2_000) == ([b"job"], [])            # try 2
    assert flight.due(3_000) == ([], [])                  # the timeout restarts
    assert flight.due(4_000) == ([b"job"], [])            # try 3
    flight.released(1, 11)                                # one copy came through
    assert flight.due(6_000) == ([], [(2, 20)])           # only the other is skipped
    assert len(flight) == 0 and (flight.resent, flight.given_up) == (2, 1)
    assert flight.due(20_000) == ([], [])
