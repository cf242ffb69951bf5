"""The plain HTTP answers on the WebSocket port (STYLE §10), via websockets'
`process_request` hook: it sees every request before the opening handshake.

    GET /healthz               counters and the node's health (health.py)
    GET /directory/<user_id>   the signed directory entry (lookups.py)
    anything else              goes on to the WebSocket handshake
"""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from socp.gateway.context import GatewayContext
from socp.gateway.health import HEALTH_PATH, health_report
from socp.gateway.lookups import DIRECTORY_PREFIX


def json_response(connection: ServerConnection, status: int, body: dict[str, Any],
                  headers: tuple[tuple[str, str], ...] = ()) -> Response:
    response = connection.respond(status, orjson.dumps(body).decode() + "\n")
    # respond() makes a text/plain answer; Headers.__setitem__ appends, so replace.
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    for name, value in headers:
        response.headers[name] = value
    return response


def remote_host(connection: ServerConnection, request: Request | None = None,
                trusted_proxies: frozenset[str] = frozenset()) -> str:
    """The client's address: the socket's peer, or, when that peer is a reverse proxy we
    trust (`--trusted-proxy`), the address it appended to X-Forwarded-For. Per-address
    limits would otherwise see every user behind the proxy as one address."""
    address = connection.remote_address
    host = str(address[0]) if isinstance(address, tuple) and address else str(address)
    if host in trusted_proxies:
        request = request or connection.request
        forwarded = request.headers.get("X-Forwarded-For", "") if request is not None else ""
        last = forwarded.rpartition(",")[2].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return host
    return host


class HttpEndpoints:
    """`process_request` hook: answers the paths above, lets every other path handshake."""

    def __init__(self, context: GatewayContext) -> None:
        self._context = context

    async def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        context = self._context
        if path == HEALTH_PATH:
            return json_response(connection, 200, health_report(context.stats, context.links, context.database,
                                                              context.server_links, context.check_throttle))
        if path.startswith(DIRECTORY_PREFIX):
            answer = await context.lookups.answer(
                path, remote_host(connection, request, context.config.trusted_proxy_set))
            return json_response(connection, answer.status, answer.body, answer.headers)
        return None
