"""The gateway's counters and the `/healthz` answer built from them (STYLE §10)."""

from __future__ import annotations

import http
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

if TYPE_CHECKING:
    from socp.gateway.links import LinkTable

HEALTH_PATH = "/healthz"


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
    rate_limited: int = 0           # inbound frames refused by a connection's token bucket
    rate_limit_closes: int = 0      # connections closed with 1008 for flooding on regardless
    router_restarts: int = 0        # RouterHello heard (a router started beside us)
    links_replayed: int = 0         # LinkReplay sent to a new router
    frames_replayed: int = 0        # kept frames submitted again for a new router
    verify_retries: int = 0         # verify jobs submitted again: no result in time
    verify_timeouts: int = 0        # frames answered TIMEOUT after every retry


def health_report(stats: GatewayStats, links: LinkTable) -> dict[str, object]:
    outbox_frames = 0
    reorder_waiting = 0
    largest_outbox = 0
    kept_frames = 0
    kept_dropped = 0
    for link in links:
        kept_frames += len(link.kept)
        kept_dropped += link.kept_dropped
        waiting = len(link.outbox)
        outbox_frames += waiting
        largest_outbox = max(largest_outbox, waiting)
        reorder_waiting += len(link.reorder)
    return {
        "status": "ok",
        # A router has said hello since we started: the node can route (`socp up`
        # reports the node ready only then).
        "router_ready": stats.router_restarts > 0,
        "open_connections": len(links),
        **asdict(stats),
        "queues": {
            "outbox_frames": outbox_frames,
            "largest_outbox": largest_outbox,
            "reorder_waiting": reorder_waiting,
            "kept_frames": kept_frames,          # inbound frames not yet applied by the router
            "kept_dropped": kept_dropped,
        },
    }


class HealthEndpoint:
    """`process_request` hook: answers GET /healthz, lets every other path handshake."""

    def __init__(self, stats: GatewayStats, links: LinkTable) -> None:
        self._stats = stats
        self._links = links

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.partition("?")[0] != HEALTH_PATH:
            return None
        body = orjson.dumps(health_report(self._stats, self._links)).decode()
        response = connection.respond(http.HTTPStatus.OK, body)
        # respond() makes a text/plain answer; Headers.__setitem__ appends, so replace.
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response
