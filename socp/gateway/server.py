"""The listening side: one port for users and servers alike (SOCP §4), plus plain HTTP
answers (/healthz, /directory/<user_id>: http.py)."""

from __future__ import annotations

import logging

from websockets.asyncio.server import Server, ServerConnection, serve

from socp.gateway.admission import EVICTED_REASON, must_evict_a_silent_link, node_refusal
from socp.gateway.context import GatewayContext
from socp.gateway.http import HttpEndpoints, remote_host
from socp.gateway.socket_session import CLOSE_TIMEOUT, Session, printable
from socp.gateway.tls import server_context
from socp.ipc.messages import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER

log = logging.getLogger("socp.gateway")


class _NoPeerTracebacks(logging.Filter):
    """websockets logs a failed opening handshake (a port scanner, a plain HTTP POST)
    at ERROR with a traceback; that is the peer's mistake, so keep one plain line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == "opening handshake failed":
            if record.exc_info and record.exc_info[1] is not None:
                record.msg = f"opening handshake failed: {printable(str(record.exc_info[1]))}"
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _websockets_logger() -> logging.Logger:
    logger = logging.getLogger("socp.gateway.websockets")
    # Its INFO lines (connection open/closed, each /healthz answer) repeat ours.
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _NoPeerTracebacks) for f in logger.filters):
        logger.addFilter(_NoPeerTracebacks())
    return logger


PING_TIMEOUT = 120.0


class Listener:
    def __init__(self, context: GatewayContext) -> None:
        self._context = context

    async def start(self) -> Server:
        """Listen on config.host:config.port; OSError if the port is taken."""
        config = self._context.config
        return await serve(
            self._handle,
            config.host,
            config.port,
            compression=None,                 # deflate costs 40-50% on ciphertext frames
            # Until its first frame shows who it is, a connection may send only a small
            # one (Session raises the limit after it): silent crowds hold little memory.
            max_size=config.opening_frame_bytes,
            close_timeout=CLOSE_TIMEOUT,
            # A user decrypting a file reads its socket slowly for a while; a slow
            # reader is the send queue's business, not the keepalive's (20 s default).
            ping_timeout=PING_TIMEOUT,
            process_request=HttpEndpoints(self._context),
            logger=_websockets_logger(),
            # wss:// only when configured: one port cannot tell TLS from plain at accept.
            ssl=server_context(config.tls_cert, config.tls_key) if config.tls else None,
        )

    async def _handle(self, ws: ServerConnection) -> None:
        context = self._context
        peer = _peer_name(ws)
        address = remote_host(ws, trusted_proxies=context.config.trusted_proxy_set)
        full = node_refusal(context.config, len(context.links))
        if full is not None:
            context.stats.connections_refused_node_full += 1
            await ws.close(CLOSE_TRY_AGAIN_LATER, full)
            return
        if must_evict_a_silent_link(context.config, context.links.waiting_for_hello):
            oldest = context.links.take_oldest_waiting()
            if oldest is not None:
                context.stats.silent_connections_evicted += 1
                oldest.request_close(CLOSE_TRY_AGAIN_LATER, EVICTED_REASON)
        if not context.address_slots.acquire(address):
            # SOCP §13 resource abuse: one address may not hold every socket we have.
            # The router never hears of this connection: it is refused before its first frame.
            context.stats.connections_refused += 1
            await ws.close(CLOSE_TRY_AGAIN_LATER, "too many connections from your address")
            return
        try:
            await self._serve(ws, peer, address)
        finally:
            context.address_slots.release(address)

    async def _serve(self, ws: ServerConnection, peer: str, address: str) -> None:
        context = self._context
        link = context.links.add_accepted(peer, address)
        context.stats.connections_total += 1
        log.info("conn %d open: %s", link.conn, peer)
        if not ws.server.is_serving():
            # Handshake done just as shutdown began, after the links were told to close.
            link.request_close(CLOSE_GOING_AWAY, "gateway shutting down")
        await Session(link, ws, context).run()
        log.info("conn %d closed: %s", link.conn, printable(link.end_reason))


def _peer_name(ws: ServerConnection) -> str:
    address = ws.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)
