"""The gateway's inbox: Deliver, CloseLink and DialLink from the router and verifiers;
ChecksFailed from verifiers (which connections' signatures failed, check_throttle.py);
also the answers to HTTP directory look-ups (a Deliver item for a query id, or
DirectoryMiss) and the store's status (StoreStatus, for /healthz).

Deliver items and CloseLink share one out seq per connection, assigned by the router,
and may arrive out of order (several verifiers sign in parallel); each link's
ReorderBuffer puts them back in line. Nothing here awaits a peer: a link that cannot
take more is closed, so one slow reader never stalls the others.
"""

from __future__ import annotations

import logging

from socp.gateway.context import GatewayContext
from socp.gateway.dialer import Dialer
from socp.gateway.recovery import Recovery
from socp.gateway.socket_links import CloseRequest, OutItem
from socp.ipc.messages import (
    CLOSE_TRY_AGAIN_LATER,
    ROLE_SERVER,
    ChecksFailed,
    CloseLink,
    ConnId,
    Deliver,
    DialLink,
    DirectoryMiss,
    InboundDone,
    RouterHello,
    ServerLinks,
    StoreStatus,
    unpack,
)
from socp.ipc.reorder import ReorderOverflow
from socp.protocol.errors import MalformedFrame

log = logging.getLogger("socp.gateway")


class Inbox:
    def __init__(self, context: GatewayContext, dialer: Dialer, recovery: Recovery) -> None:
        self._context = context
        self._dialer = dialer
        self._recovery = recovery

    async def pump(self) -> None:
        """Apply inbox messages until cancelled."""
        receive_batch = self._context.bus.receive_batch
        while True:
            for data in await receive_batch():
                self.apply(data)

    def apply(self, data: bytes) -> None:
        try:
            message = unpack(data)
        except MalformedFrame as exc:
            self._bad_message(f"undecodable: {exc}")
            return
        kind = type(message)
        try:
            if isinstance(message, Deliver):
                release = self._release
                for conn, seq, text in message.items:
                    if type(text) is not str:
                        raise TypeError(f"frame for conn {conn!r} is not text")
                    if conn < 0:   # a query id (ipc messages.is_query): an HTTP look-up's answer
                        self._context.lookups.answered(conn, text)
                        continue
                    release(conn, seq, text)
            elif isinstance(message, CloseLink):
                if type(message.code) is not int or type(message.reason) is not str:
                    raise TypeError("CloseLink code or reason has the wrong type")
                self._release(message.conn, message.seq, CloseRequest(message.code, message.reason))
            elif isinstance(message, DialLink):
                self._dialer.dial(message)
            elif isinstance(message, ChecksFailed):
                self._checks_failed(message)
            elif isinstance(message, InboundDone):
                self._recovery.inbound_done(message)
            elif isinstance(message, RouterHello):
                self._recovery.router_hello(message.epoch)
            elif isinstance(message, DirectoryMiss):
                self._context.lookups.missed(message.query, message.detail)
            elif isinstance(message, StoreStatus):
                self._context.database.update(message)
            elif isinstance(message, ServerLinks):
                self._context.server_links.update(message)
            else:
                self._bad_message(f"{kind.__name__} is not for the gateway")
        except (TypeError, ValueError) as exc:  # msgpack checks shapes, not field types
            self._bad_message(f"bad {kind.__name__}: {exc}")

    def _checks_failed(self, message: ChecksFailed) -> None:
        links, throttle = self._context.links, self._context.check_throttle
        for conn, count in message.counts:
            if type(conn) is not int or type(count) is not int or count < 1:
                raise TypeError("ChecksFailed counts must be (conn, count >= 1)")
            link = links.get(conn)
            # A closed link's report comes late; a server link is never throttled (check_throttle.py).
            if link is not None and link.role != ROLE_SERVER:
                throttle.failed(conn, count)

    def _release(self, conn: ConnId, seq: int, item: OutItem) -> None:
        stats = self._context.stats
        link = self._context.links.get(conn)
        if link is None or not link.accepting_output:
            stats.dropped += 1
            return
        try:
            if not link.release(seq, item):
                stats.slow_consumers += 1
        except ReorderOverflow:
            stats.reorder_overflows += 1
            link.request_close(CLOSE_TRY_AGAIN_LATER, "too many frames waiting out of order")

    def _bad_message(self, what: str) -> None:
        # Another actor's bug, not a peer's: worth a line, but never a flood of them.
        stats = self._context.stats
        stats.bad_actor_messages += 1
        if stats.bad_actor_messages <= 10 or stats.bad_actor_messages % 1000 == 0:
            log.warning("inbox message dropped (%d so far): %s", stats.bad_actor_messages, what)
