"""How the router passes the store's status on to the gateway (socp/router/store_watch.py):
what each store answer becomes, and that only changes are reported."""

from __future__ import annotations

import asyncio

import pytest

from socp.ipc.messages import StoreStatus
from socp.router import store_watch
from socp.router.store_watch import StoreWatch, at_start, from_store, store_silent
from socp.store.errors import StoreTimeout
from socp.store.records import DatabaseStatus


def test_translations() -> None:
    assert at_start(5) == StoreStatus("available", "", 5, 0)
    assert from_store(DatabaseStatus("unavailable", "refused", 7, 3)) == StoreStatus("unavailable", "refused", 7, 3)
    silent = store_silent(at_start(5), StoreTimeout("no answer within 2s"), now_ms=9)
    assert silent == StoreStatus("unknown", "the store actor does not answer (no answer within 2s)", 9, 0)
    # Still silent later: since when stays the start of the silence.
    assert store_silent(silent, StoreTimeout("no answer within 2s"), now_ms=20).since_ms == 9


async def test_only_changes_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_watch, "STATUS_INTERVAL", 0)
    answers: list[DatabaseStatus | Exception] = [
        DatabaseStatus("available", "", 1, 0),          # as at start: nothing to report
        DatabaseStatus("unavailable", "refused", 2, 0),
        DatabaseStatus("unavailable", "refused", 2, 0),  # no change
        DatabaseStatus("unavailable", "refused", 2, 1),  # a write is held now
        StoreTimeout("no answer"),
        StoreTimeout("no answer"),
        DatabaseStatus("available", "", 3, 0),
    ]
    done = asyncio.Event()

    async def status(timeout: float) -> DatabaseStatus:
        assert timeout == store_watch.STATUS_TIMEOUT
        if not answers:
            done.set()
            await asyncio.Event().wait()
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    reported: list[StoreStatus] = []

    async def report(message: StoreStatus) -> None:
        reported.append(message)

    watch = StoreWatch(status, report, now_ms=lambda: 1)
    assert not watch.outage_known
    running = asyncio.ensure_future(watch.run())
    await asyncio.wait_for(done.wait(), 5)
    running.cancel()
    assert [(r.state, r.writes_waiting) for r in reported] == [
        ("unavailable", 0), ("unavailable", 1), ("unknown", 0), ("available", 0)]
    assert not watch.outage_known
    await watch.report_latest()                          # as after a GatewayHello
    assert reported[-1] == StoreStatus("available", "", 3, 0)
