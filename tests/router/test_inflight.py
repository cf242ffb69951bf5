"""Sign jobs in flight until the gateway releases their items (pure bookkeeping)."""

from __future__ import annotations

from socp.router.inflight import InFlight

T0 = 1_000_000


def test_a_job_is_done_once_every_item_is_released() -> None:
    flight = InFlight(timeout_ms=2_000)
    flight.sent(b"job", [(1, 10), (2, 20)], T0)
    flight.released(1, 11)
    assert len(flight) == 1                      # conn 2's copy is still out
    assert flight.due(T0 + 5_000) == ([b"job"], [])
    flight.released(2, 21)
    assert len(flight) == 0
    assert flight.due(T0 + 10_000) == ([], [])


def test_a_release_mark_covers_only_the_seqs_below_it() -> None:
    flight = InFlight()
    flight.sent(b"first", [(1, 10)], T0)
    flight.sent(b"second", [(1, 11)], T0)
    flight.released(1, 11)                       # 10 released, 11 not yet
    assert len(flight) == 1
    again, _ = flight.due(T0 + flight.timeout_ms)
    assert again == [b"second"]


def test_an_unreleased_job_is_sent_again_after_the_timeout_then_given_up() -> None:
    flight = InFlight(timeout_ms=2_000, max_tries=3)
    flight.sent(b"job", [(1, 10), (2, 20)], T0)
    assert flight.due(T0 + 1_999) == ([], [])                   # not yet
    assert flight.due(T0 + 2_000) == ([b"job"], [])             # try 2
    assert flight.due(T0 + 3_000) == ([], [])                   # the timeout restarts
    assert flight.due(T0 + 4_000) == ([b"job"], [])             # try 3
    flight.released(1, 11)                                      # one copy came through
    assert flight.due(T0 + 6_000) == ([], [(2, 20)])            # only the other is skipped
    assert len(flight) == 0 and (flight.resent, flight.given_up) == (2, 1)
    assert flight.due(T0 + 20_000) == ([], [])


def test_a_lost_connection_forgets_its_items() -> None:
    flight = InFlight()
    flight.sent(b"to one", [(1, 10)], T0)
    flight.sent(b"to both", [(1, 11), (2, 20)], T0)
    flight.forget_conn(1)
    assert len(flight) == 1                                     # "to both" still waits for conn 2
    assert flight.due(T0 + flight.timeout_ms) == ([b"to both"], [])
    flight.forget_conn(2)
    assert len(flight) == 0
