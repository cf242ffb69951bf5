"""Outbound links: the router's DialLink becomes a client WebSocket to another server.

The router picks the conn id (>= 2**40) and may Deliver to it at once; those frames
wait in the link's outbox, in order, and are written once the link is open. The
router hears LinkOpened(conn, 0) on success, after which the link's inbound frames
are seq 1, 2, ...; on failure it hears LinkClosed(conn, 0, reason).
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidMessage, WebSocketException

from socp.gateway.context import GatewayContext
from socp.gateway.socket_links import SocketLink
from socp.gateway.socket_session import CLOSE_TIMEOUT, Session, printable
from socp.gateway.tls import LinkSchemes, client_context, uri, wss_bootstrap_addresses
from socp.ipc.link_state import LinkState
from socp.ipc.messages import ConnId, DialLink, LinkClosed, LinkOpened

log = logging.getLogger("socp.gateway")

OPEN_TIMEOUT = 5.0

# What a failed dial raises: refused/unreachable, DNS, timeout, bad handshake or URI,
# a host name IDNA cannot encode (UnicodeError is a ValueError).
DIAL_ERRORS = (OSError, TimeoutError, WebSocketException, ValueError)


def dial_failure(exc: BaseException) -> str:
    """A failed dial in one line; a refused certificate says so plainly."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate refused: {exc.verify_message or exc.reason}"
    return f"{type(exc).__name__}: {exc}"


class Dialer:
    def __init__(self, context: GatewayContext, tasks: asyncio.TaskGroup) -> None:
        self._context = context
        self._tasks = tasks
        self._dialing: dict[ConnId, asyncio.Task[None]] = {}   # not connected yet
        self._running: set[asyncio.Task[None]] = set()          # every dialled link's task
        self._schemes = LinkSchemes(wss_bootstrap_addresses(context.config.bootstrap))
        self._tls = client_context(context.config.ca_file)

    def dial(self, request: DialLink) -> None:
        links = self._context.links
        if not (type(request.conn) is int and type(request.port) is int
                and type(request.host) is str and type(request.verify_key) is str):
            raise TypeError("DialLink fields have the wrong types")
        if request.conn in links:
            raise ValueError(f"DialLink for conn {request.conn}, which is already in use")
        link = links.add_dialled(request.conn, f"{request.host}:{request.port}", request.verify_key,
                                 request.unsigned_ok is True)
        self._context.stats.connections_total += 1
        task = self._tasks.create_task(self._dial_and_serve(link, request.host, request.port))
        self._dialing[link.conn] = task
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def abandon_dials(self) -> None:
        """Shutdown: stop every connection attempt still in progress."""
        for task in self._dialing.values():
            task.cancel()

    async def wait_sessions(self) -> None:
        if self._running:
            await asyncio.wait(set(self._running))

    def cancel_sessions(self) -> None:
        for task in self._running:
            task.cancel()

    async def _dial_and_serve(self, link: SocketLink, host: str, port: int) -> None:
        context = self._context
        try:
            try:
                if not 0 < port < 65536:
                    raise ValueError(f"port {port} is out of range")
                ws = await self._connect(host, port)
            finally:
                self._dialing.pop(link.conn, None)
        except asyncio.CancelledError:
            self._forget(link)
            context.bus.tell_router_nowait(LinkClosed(link.conn, 0, "gateway shutting down"))
            raise
        except DIAL_ERRORS as exc:
            context.stats.dial_failures += 1
            self._forget(link)
            reason = f"dial failed: {dial_failure(exc)}"
            log.info("link %d to %s failed: %s", link.conn, printable(link.peer), printable(reason))
            await context.bus.tell_router(LinkClosed(link.conn, 0, reason))
            return
        link.move_to(LinkState.OPEN)
        await context.bus.tell_router(LinkOpened(link.conn, 0))
        link.next_in_seq = 1  # seq 0 was LinkOpened
        log.info("link %d open: dialled %s", link.conn, printable(link.peer))
        async with ws:  # closes the socket even if the session fails
            await Session(link, ws, context).run()
        log.info("link %d closed: %s", link.conn, printable(link.end_reason))

    async def _connect(self, host: str, port: int) -> ClientConnection:
        """Open the WebSocket, over ws:// or wss:// as LinkSchemes says (gateway/tls.py)."""
        address = (host, port)
        scheme: str | None = self._schemes.first(address)
        while True:
            assert scheme is not None
            try:
                ws = await connect(
                    uri(scheme, host, port),
                    compression=None,                 # frames are mostly ciphertext
                    open_timeout=OPEN_TIMEOUT,
                    close_timeout=CLOSE_TIMEOUT,
                    max_size=self._context.max_message_bytes,
                    proxy=None,                       # overlay links go direct
                    ssl=self._tls if scheme == "wss" else None,
                )
            except InvalidMessage:
                # Not HTTP: a TLS-only port answers a plain request like this.
                scheme = self._schemes.after_not_http(scheme)
                if scheme is None:
                    raise
                continue
            self._schemes.opened(address, scheme)
            return ws

    def _forget(self, link: SocketLink) -> None:
        link.move_to(LinkState.CLOSED)
        self._context.links.remove(link)
