"""The gateway's metrics. Writing a frame only counts it in a dict (`frames_written`);
`flush` (once a second, off the write path) hands the counts, the /healthz counters'
growth and the current gauges to prometheus_client."""

from __future__ import annotations

import re
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from socp.ipc.link_state import SERVER_LINK_MOVES
from socp.ipc.messages import ROLE_SERVER, ROLE_USER

from . import families

if TYPE_CHECKING:
    from socp.gateway.context import GatewayContext

FLUSH_SECONDS = 1.0
# Our frames start {"type":...,"from":...,"to":...,"ts":...}; a peer's forwarded frame
# may put them anywhere, and is then counted as "other" rather than searched whole.
HEAD_CHARS = 512
_TYPE = re.compile(r'"type"\s*:\s*"([A-Z_]{1,40})"')
_TS = re.compile(r'"ts"\s*:\s*(\d{1,16})[,}]')
USER_DELIVER = "USER_DELIVER"
ROLE_NAMES = {ROLE_USER: "user", ROLE_SERVER: "server"}
DATABASE_STATES = ("available", "unavailable", "opening", "unknown")
SERVER_LINK_STATES = tuple(state.value for state in SERVER_LINK_MOVES)   # a link book row's states
MAX_LATENCIES = 100_000   # observed per flush at most; a backlog beyond is not worth the memory


class GatewayMetrics:
    def __init__(self, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._written: Tally[str] = Tally()
        self._latencies: list[float] = []
        self._reported: dict[str, int] = {}   # /healthz counters as last flushed
        self._server_link_states: set[str] = set(SERVER_LINK_STATES)
        self._clock_ms = clock_ms

    def frames_written(self, texts: list[str]) -> None:
        """Called after each write: count by type; a USER_DELIVER's age is a delivery latency."""
        now_ms = -1
        for text in texts:
            head = text[:HEAD_CHARS]
            found = _TYPE.search(head)
            frame_type = families.frame_type_label(found.group(1)) if found else families.OTHER
            self._written[frame_type] += 1
            if frame_type == USER_DELIVER and len(self._latencies) < MAX_LATENCIES:
                ts = _TS.search(head)
                if ts is not None:
                    if now_ms < 0:
                        now_ms = self._clock_ms()
                    self._latencies.append(max(0, now_ms - int(ts.group(1))) / 1000)

    def flush(self, context: GatewayContext) -> None:
        written, self._written = self._written, Tally()
        for frame_type, count in written.items():
            families.frames_sent.labels(frame_type).inc(count)
        latencies, self._latencies = self._latencies, []
        for seconds in latencies:
            families.delivery_latency.observe(seconds)
        self._flush_counters(asdict(context.stats))
        self._set_gauges(context)

    def _flush_counters(self, counters: dict[str, int]) -> None:
        for name, value in counters.items():
            grown = value - self._reported.get(name, 0)
            if grown > 0:
                families.gateway_events.labels(name).inc(grown)
            self._reported[name] = value

    def _set_gauges(self, context: GatewayContext) -> None:
        by_role = dict.fromkeys(("user", "server", "unknown"), 0)
        outbox = reorder = kept = 0
        for link in context.links:
            by_role[ROLE_NAMES.get(link.role, "unknown")] += 1
            outbox += len(link.outbox)
            reorder += len(link.reorder)
            kept += len(link.kept)
        for role, count in by_role.items():
            families.connections.labels(role).set(count)
        for queue, depth in (("outbox", outbox), ("reorder", reorder), ("kept_for_router", kept)):
            families.queue_depth.labels("gateway", queue).set(depth)
        database = context.database
        families.queue_depth.labels("store", "writes_waiting").set(database.writes_waiting)
        families.database_up.set(1 if database.state == "available" else 0)
        for state in {*DATABASE_STATES, database.state}:
            families.database_state.labels(state).set(1 if state == database.state else 0)
        states = [row[2] for row in context.server_links.rows]
        self._server_link_states.update(states)
        for state in self._server_link_states:
            families.server_links.labels(state).set(states.count(state))
