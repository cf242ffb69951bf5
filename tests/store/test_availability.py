"""The store's view of its database (socp/store/availability.py): a table of states, one
change per outage and per recovery, on a clock we move by hand."""

from __future__ import annotations

from socp.store.availability import AVAILABLE, OPENING, TRANSITIONS, UNAVAILABLE, DatabaseHealth
from support.clock import Clock


def test_every_state_has_an_answer_to_every_outcome() -> None:
    assert {state for state, _ in TRANSITIONS} == {OPENING, AVAILABLE, UNAVAILABLE}
    assert len(TRANSITIONS) == 6


def test_an_outage_is_one_change_however_many_failures() -> None:
    clock = Clock(1_700_000_000.0)
    health = DatabaseHealth(clock)
    assert (health.state, health.since_ms) == (OPENING, 1_700_000_000_000)
    assert health.ok() and health.state == AVAILABLE
    assert not health.ok()                         # still available: nothing to log

    clock.now += 10
    assert health.failed("connection refused")     # the outage begins
    assert (health.state, health.detail, health.since_ms) == (UNAVAILABLE, "connection refused", 1_700_000_010_000)
    clock.now += 3
    assert not health.failed("lost connection")    # the same outage: no new line
    assert health.detail == "lost connection"      # ...but the latest reason shows
    assert health.since_ms == 1_700_000_010_000
    assert health.unavailable_for_s() == 3

    clock.now += 2
    assert health.ok()                             # back: one change
    assert (health.state, health.detail, health.since_ms) == (AVAILABLE, "", 1_700_000_015_000)
    assert health.unavailable_for_s() == 0


def test_a_database_that_never_opened_is_unavailable() -> None:
    health = DatabaseHealth(Clock(1_700_000_000.0))
    assert health.failed("cannot reach MySQL") and health.state == UNAVAILABLE
