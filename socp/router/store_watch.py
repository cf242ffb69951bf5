"""The database's health, passed from the store to the gateway's `/healthz`.

The router is the store's one client, and already talks to the gateway, so it carries
the news: every STATUS_INTERVAL it asks the store for its status (a Status request,
answered at once whatever the database is doing) and tells the gateway (ipc
StoreStatus) when anything changed, and again after every GatewayHello, so that a
restarted gateway learns it too. The store logs the outage; the router does not
repeat it.

    store status          what the gateway shows
    available             available
    unavailable, detail   unavailable, detail, since when, writes the store holds
    opening               opening
    (no answer in time)   unknown: "the store actor does not answer"
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from socp.ipc.messages import StoreStatus
from socp.store.errors import StoreError
from socp.store.records import DatabaseStatus

STATUS_INTERVAL = 1.0      # seconds between two questions to the store
STATUS_TIMEOUT = 2.0       # an answer later than this counts as none
AVAILABLE = "available"
UNAVAILABLE = "unavailable"
UNKNOWN = "unknown"


def at_start(now_ms: int) -> StoreStatus:
    """The router just loaded its snapshot from the store: the database answered."""
    return StoreStatus(AVAILABLE, "", now_ms, 0)


def from_store(status: DatabaseStatus) -> StoreStatus:
    return StoreStatus(status.state, status.detail, status.since_ms, status.writes_waiting)


def store_silent(previous: StoreStatus, error: StoreError, now_ms: int) -> StoreStatus:
    """No answer from the store actor: what its database does is unknown."""
    since = previous.since_ms if previous.state == UNKNOWN else now_ms
    return StoreStatus(UNKNOWN, f"the store actor does not answer ({error.detail})", since, 0)


class StoreWatch:
    """The latest status; `run` keeps it current and reports each change."""

    def __init__(self, status: Callable[..., Awaitable[DatabaseStatus]],
                 report: Callable[[StoreStatus], Awaitable[None]],
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._status = status
        self._report = report
        self._now_ms = now_ms
        self.latest = at_start(now_ms())

    @property
    def outage_known(self) -> bool:
        """The store reported its database unavailable (and logged it)."""
        return self.latest.state == UNAVAILABLE

    @property
    def available(self) -> bool:
        """The store's last answer said its database works."""
        return self.latest.state == AVAILABLE

    async def run(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            try:
                current = from_store(await self._status(timeout=STATUS_TIMEOUT))
            except StoreError as exc:
                current = store_silent(self.latest, exc, self._now_ms())
            if current != self.latest:
                self.latest = current
                await self._report(current)

    async def report_latest(self) -> None:
        await self._report(self.latest)
