"""The gateway's counters, the database's health as the router passes it on, and the
`/healthz` answer built from them (STYLE §10). Served by `http.py`.

`/healthz` is always HTTP 200 when the gateway answers: a node whose database is away
still routes (the router keeps its tables in memory, the store holds writes), so a
load balancer should not drop it. Read the body instead:

    ok         true when the router has said hello and the database is available
    status     "ok", or "degraded" while the database is unavailable or the store
               stopped answering
    database   {"state", "detail", "since", "since_ms", "writes_waiting"}; state is
               "available", "unavailable", "opening", or "unknown" (no report yet, or
               the store actor does not answer the router)
    server_links  one object per peer server, as the router's link book has it
               (router/linkbook.py): {"peer_id", "address", "state" (dialling, joined,
               refused, lost), "reason" (the last refusal, loss or dropped frame),
               "dropped" (frames from it we could not use), "dialect"}
    check_throttle  {"failures_reported" (content signatures the verifiers said
               failed, or refused unchecked), "frames_refused" (refused here,
               unchecked, by check_throttle.py), "connections" (with failures
               remembered), "throttled_now"}
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from socp.ipc.messages import ServerLinks, StoreStatus
from socp.runtime import resident_bytes

if TYPE_CHECKING:
    from socp.gateway.check_throttle import CheckThrottle
    from socp.gateway.socket_links import LinkTable

HEALTH_PATH = "/healthz"
AVAILABLE = "available"
UNKNOWN = "unknown"


@dataclass(slots=True)
class GatewayStats:
    """Plain counters; only the event loop thread touches them, so no locks."""

    frames_in: int = 0              # text messages read from peers (forwarded or rejected)
    frames_out: int = 0             # frames written to peers
    rejected: int = 0               # inbound messages answered with Rejected (too big, binary)
    dropped: int = 0                # outbound items for unknown or closing connections
    slow_consumers: int = 0         # connections closed with 1013: send queue full
    reorder_overflows: int = 0      # connections closed: too many out-of-order items waiting
    hello_timeouts: int = 0         # connections closed with 1008: silent at first
    dial_failures: int = 0          # DialLink attempts that never opened
    bad_actor_messages: int = 0     # undecodable or unexpected messages on the inbox
    connections_total: int = 0      # accepted and dialled, since start
    connections_refused: int = 0    # accepted sockets closed at once: too many from that address
    connections_refused_node_full: int = 0  # ... or too many open in all (admission.py)
    silent_connections_evicted: int = 0     # closed with 1013: waited longest for a first frame while too many did
    heap_trims: int = 0             # times freed memory was handed back to the OS (memory.py)
    rate_limited: int = 0           # inbound frames refused by a connection's token bucket
    rate_limit_closes: int = 0      # connections closed with 1008 for flooding on regardless
    check_throttle_closes: int = 0  # connections closed with 1008: sent on into the throttle (check_throttle.py)
    router_restarts: int = 0        # RouterHello heard (a router started beside us)
    links_replayed: int = 0         # LinkReplay sent to a new router
    frames_replayed: int = 0        # kept frames submitted again for a new router
    verify_retries: int = 0         # verify jobs submitted again: no result in time
    verify_timeouts: int = 0        # frames answered TIMEOUT after every retry
    directory_lookups: int = 0      # GET /directory/<id> answered 200 or 404 by the router
    directory_refused: int = 0      # ... answered 429 or 503 at once (rate, load, router not ready)
    directory_timeouts: int = 0     # ... answered 503: no answer from the router in time


@dataclass(slots=True)
class DatabaseReport:
    """The latest StoreStatus the router sent; `reported` once one came (which also
    shows the router is alive after a gateway restart, when no RouterHello comes)."""

    state: str = UNKNOWN
    detail: str = "no report from the router yet"
    since_ms: int = 0
    writes_waiting: int = 0
    reported: bool = False

    def update(self, status: StoreStatus) -> None:
        self.state, self.detail = status.state, status.detail
        self.since_ms, self.writes_waiting = status.since_ms, status.writes_waiting
        self.reported = True

    def as_json(self) -> dict[str, object]:
        since = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.since_ms / 1000))
                 + f".{self.since_ms % 1000:03d}Z") if self.since_ms else None
        return {"state": self.state, "detail": self.detail, "since": since, "since_ms": self.since_ms,
                "writes_waiting": self.writes_waiting}


@dataclass(slots=True)
class ServerLinksReport:
    """The latest ServerLinks the router sent (the router's link book)."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)   # ServerLinks.rows

    def update(self, message: ServerLinks) -> None:
        self.rows = [tuple(row) for row in message.rows]   # msgpack gives lists

    def as_json(self) -> list[dict[str, object]]:
        return [{"peer_id": peer_id, "address": address, "state": state, "reason": reason, "dropped": dropped,
                 "dialect": dialect, "goes_by": goes_by, "opt_in": opt_in}
                for peer_id, address, state, reason, dropped, dialect, goes_by, opt_in in self.rows]


def router_ready(stats: GatewayStats, database: DatabaseReport) -> bool:
    """A router has said hello since we started, or reported the store: the node can
    route (`socp up` reports the node ready only then)."""
    return stats.router_restarts > 0 or database.reported


def health_report(stats: GatewayStats, links: LinkTable, database: DatabaseReport,
                  server_links: ServerLinksReport | None = None,
                  check_throttle: CheckThrottle | None = None) -> dict[str, object]:
    outbox_frames = 0
    reorder_waiting = 0
    largest_outbox = 0
    kept_frames = 0
    reader_waits = 0
    for link in links:
        kept_frames += len(link.kept)
        reader_waits += link.reader_waits
        waiting = len(link.outbox)
        outbox_frames += waiting
        largest_outbox = max(largest_outbox, waiting)
        reorder_waiting += len(link.reorder)
    ready = router_ready(stats, database)
    degraded = database.reported and database.state != AVAILABLE
    return {
        "status": "degraded" if degraded else "ok",
        "ok": ready and database.state == AVAILABLE,
        "router_ready": ready,
        "database": database.as_json(),
        "server_links": server_links.as_json() if server_links is not None else [],
        "open_connections": len(links),
        "waiting_for_hello": links.waiting_for_hello,
        "memory_rss_bytes": resident_bytes(),    # the gateway process's
        **asdict(stats),
        "check_throttle": _throttle_report(check_throttle),
        "queues": {
            "outbox_frames": outbox_frames,
            "largest_outbox": largest_outbox,
            "reorder_waiting": reorder_waiting,
            "kept_frames": kept_frames,          # inbound frames not yet applied by the router
            "reader_waits": reader_waits,        # a link's reader waited: KEPT_FRAMES not yet applied
        },
    }



def _throttle_report(throttle: CheckThrottle | None) -> dict[str, int]:
    if throttle is None:
        return {"failures_reported": 0, "frames_refused": 0, "connections": 0, "throttled_now": 0}
    return {"failures_reported": throttle.failures_reported, "frames_refused": throttle.frames_refused,
            "connections": len(throttle), "throttled_now": throttle.throttled_now()}
