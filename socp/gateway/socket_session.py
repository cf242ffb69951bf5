"""Drive one open WebSocket, accepted or dialled, until it ends.

A session runs a reader and a writer in one TaskGroup and closes the link when the
link asks for it (CloseLink reached the front of the outbox, a full outbox, hello
timeout, shutdown) or the peer goes away. Then, and only then, it tells the router
LinkClosed with the next inbound seq: exactly once per link.

The reader is the hot path for inbound traffic: no JSON after the first frame, no
per-frame logging, one msgpack pack and one ZeroMQ send per frame. The one exception:
a user connection whose signature checks failed lately has each frame's type read,
so the throttle can refuse its content-signed ones before a verifier sees them
(check_throttle.py); those refusals reach the router a batch at a time
(throttle_reports.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from socp.gateway.check_throttle import Verdict
from socp.gateway.context import GatewayContext
from socp.gateway.roles import opens_login, role_of_first_frame
from socp.gateway.socket_links import CloseRequest, SocketLink
from socp.gateway.throttle_reports import RefusedFrames
from socp.ipc.link_state import LinkState
from socp.ipc.messages import (
    CLOSE_POLICY_VIOLATION,
    ROLE_SERVER,
    ROLE_UNKNOWN,
    ROLE_USER,
    LinkClosed,
    LinkOpened,
    Rejected,
    pack,
)
from socp.protocol.acks import msg_ref_of_obj, msg_ref_of_text
from socp.protocol.envelope import load_json
from socp.protocol.errors import ErrorCode, SocpError
from socp.ratelimit import ElasticBucket, TokenBucket, retry_hint

log = logging.getLogger("socp.gateway")

# websockets' own close handshake wait; also bounds our close when the peer is stuck.
CLOSE_TIMEOUT = 1.0

BINARY_DETAIL = "SOCP frames are WebSocket text messages"  # SOCP §4


def printable(text: str, limit: int = 120) -> str:
    """A peer-supplied string made safe for one log line (STYLE: escape control chars)."""
    return ascii(text[:limit])[1:-1]


def utf8_size_exceeds(text: str, limit: int) -> bool:
    """len(text.encode()) > limit, without encoding the common small or ASCII case."""
    chars = len(text)
    if chars * 4 <= limit:      # even all 4-byte characters would fit
        return False
    if chars > limit:           # every character is at least one byte
        return True
    if text.isascii():          # O(1) in CPython: one byte per character
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


class Session:
    """One link's reader, writer and close; `run()` returns once the link is closed,
    removed from the table and reported to the router."""

    def __init__(self, link: SocketLink, ws: Connection, context: GatewayContext) -> None:
        self._link = link
        self._ws = ws
        self._links = context.links
        self._bus = context.bus
        self._stats = context.stats
        self._metrics = context.metrics   # None without --metrics
        self._check_throttle = context.check_throttle
        self._max_frame_bytes = context.config.max_frame_bytes
        self._max_message_bytes = context.max_message_bytes
        self._hello_timeout = context.config.hello_timeout
        # SOCP §13 resource abuse: frames per second on this connection, whatever they are.
        # A server link gets the server limit once its role is known (dialled: now;
        # accepted: from its first frame, `_read`).
        self._config = context.config
        self._bucket: TokenBucket | ElasticBucket = ElasticBucket(
            TokenBucket(context.config.frame_rate, context.config.frame_burst, time.monotonic), context.spare_frames)
        self._over_limit = 0     # frames refused since the bucket last had a token
        self._refused = RefusedFrames()   # refused by the check throttle, not yet reported
        if link.role == ROLE_SERVER:
            self._limit_as_server()

    def _limit_as_server(self) -> None:
        """The router limits each peer server (abuse_rules.LimitSettings.server_rate); the
        per-connection limit of a user must not throttle a whole server below it."""
        self._bucket = TokenBucket(self._config.server_frame_rate, self._config.server_frame_burst,
                                   time.monotonic)

    async def run(self) -> None:
        link = self._link
        try:
            await self._serve()
        except BaseException:
            # A bug or a shutdown cancel: the link is gone all the same, so say so
            # without waiting, then let the error surface.
            link.state = LinkState.CLOSED
            self._links.remove(link)
            self._check_throttle.forget(link.conn)
            reason = link.end_reason or "gateway error"
            self._bus.tell_router_nowait(LinkClosed(link.conn, link.next_in_seq, reason))
            raise
        link.move_to(LinkState.CLOSED)
        self._links.remove(link)
        self._check_throttle.forget(link.conn)
        await self._bus.tell_router(LinkClosed(link.conn, link.next_in_seq, link.end_reason))

    async def _serve(self) -> None:
        link = self._link
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._read())
            writer = tasks.create_task(self._write())
            await link.closing.wait()
            writer.cancel()  # safe mid-send: a frame is either fully queued or not at all
            link.move_to(LinkState.CLOSING)
            if link.close_code is not None:
                await self._close(link.close_code, link.end_reason)
            # Leaving the group waits for the reader: it forwards what the peer sent
            # before the close, then sees ConnectionClosed and ends.

    async def _close(self, code: int, reason: str) -> None:
        # ws.close() waits for the write buffer to drain, which a peer that stopped
        # reading never allows; past the deadline drop the TCP connection.
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT + 0.25):
                await self._ws.close(code, reason)
        except TimeoutError:
            self._ws.transport.abort()

    async def _read(self) -> None:
        link = self._link
        ws = self._ws
        try:
            if link.state is LinkState.AWAITING_HELLO:
                try:
                    async with asyncio.timeout(self._hello_timeout):
                        first = await ws.recv()
                except TimeoutError:
                    self._stats.hello_timeouts += 1
                    link.request_close(CLOSE_POLICY_VIOLATION,
                                       f"no frame within {self._hello_timeout:g} s")
                    return
                # A frame too large or binary is refused below like any other; its role stays unknown.
                opening = first if type(first) is str and not utf8_size_exceeds(first, self._max_frame_bytes) else None
                role, verify_key = role_of_first_frame(opening) if opening is not None else (ROLE_UNKNOWN, "")
                self._links.first_frame_came(link, role, verify_key)
                # Only the first frame is held small (server.py): full-size frames now.
                ws.protocol.max_message_size = self._max_message_bytes
                if opening is not None:
                    link.opening = opening
                    if link.role == ROLE_SERVER:
                        self._limit_as_server()
                    if link.address and link.role == ROLE_UNKNOWN and opens_login(opening):
                        # The router limits wrong passwords per address too: tell it
                        # where this login comes from, in order, before its first frame.
                        await self._bus.tell_router(LinkOpened(link.conn, link.next_in_seq, link.address))
                        link.next_in_seq += 1
                if not link.closing.is_set():  # a close may have begun while it was in flight
                    link.move_to(LinkState.OPEN)
                await self._forward(first)
            while True:
                await link.wait_for_kept_room()
                await self._forward(await self._next_message())
        except ConnectionClosed as closed:
            await self._report_refused()
            link.request_close(None, _describe_close(closed, link))

    async def _next_message(self) -> str | bytes:
        """The peer's next frame; while throttled frames wait to be reported, the
        report goes when it is due even if the peer sends nothing more."""
        while self._refused:
            try:
                async with asyncio.timeout(max(0.0, self._refused.wait_s(time.monotonic()))):
                    return await self._ws.recv()    # safe to cancel: no frame is lost
            except TimeoutError:
                await self._report_refused()
        return await self._ws.recv()

    async def _forward(self, message: str | bytes) -> None:
        link = self._link
        if not self._bucket.take():
            await self._refuse_over_limit(message)
            return
        self._over_limit = 0
        if self._check_throttle.throttles(link.conn) and await self._throttled(message):
            return
        if self._refused:    # the router learns of frames in the order they came
            await self._report_refused()
        seq = link.next_in_seq
        if type(message) is str and not utf8_size_exceeds(message, self._max_frame_bytes):
            # Kept until the router applied it, to survive a verifier or router (recovery.py).
            link.keep(seq, message, time.monotonic())
            await self._bus.submit_job(
                pack(link.verify_job(seq, message)))
        else:
            detail = (BINARY_DETAIL if type(message) is not str
                      else f"frame is larger than {self._max_frame_bytes} bytes")
            await self._bus.tell_router(
                Rejected(link.conn, seq, ErrorCode.MALFORMED.value, detail, ""))
            self._stats.rejected += 1
        # Advance only once sent: a seq the router never sees would stall its reordering.
        link.next_in_seq = seq + 1
        self._stats.frames_in += 1

    async def _throttled(self, message: str | bytes) -> bool:
        """True if the check throttle refused `message` (answered RATE_LIMITED, naming
        it: no silent drops) or closed the connection; False to check it as usual."""
        link = self._link
        if link.role == ROLE_SERVER or type(message) is not str or utf8_size_exceeds(message, self._max_frame_bytes):
            return False
        try:
            raw = load_json(message)
        except SocpError:
            return False     # the verifier answers it MALFORMED, as any other
        frame_type = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(frame_type, str):
            return False
        decision = self._check_throttle.decide(link.conn, frame_type)
        if decision.verdict is Verdict.CHECK:
            return False
        self._stats.frames_in += 1
        if decision.verdict is Verdict.CLOSE:
            self._stats.check_throttle_closes += 1
            await self._report_refused()
            link.request_close(CLOSE_POLICY_VIOLATION, decision.detail)
            return True
        ref = msg_ref_of_obj(raw)
        if not ref:       # not readable as an acknowledged frame: reported alone, as it is
            await self._report_refused()
            await self._tell_refused(ErrorCode.RATE_LIMITED.value, decision.detail, frame_type, "")
        elif self._refused.add(ref, decision.detail, frame_type, time.monotonic()):
            await self._report_refused()
        return True

    async def _report_refused(self) -> None:
        """Tell the router of the frames the throttle refused and not yet reported."""
        if self._refused:
            refs, detail, frame_type = self._refused.take()
            await self._tell_refused(ErrorCode.RATE_LIMITED.value, detail, frame_type, refs[-1], refs[:-1])

    async def _tell_refused(self, code: str, detail: str, frame_type: str, ref: str,
                            earlier: list[str] | None = None) -> None:
        """One Rejected for the router, in the connection's order (it takes a seq)."""
        link = self._link
        seq = link.next_in_seq
        await self._bus.tell_router(Rejected(link.conn, seq, code, detail, frame_type, ref, earlier or []))
        link.next_in_seq = seq + 1

    async def _refuse_over_limit(self, message: str | bytes) -> None:
        """The first frame over the limit is answered RATE_LIMITED with a retry hint. Of
        the rest of the burst, a user's acknowledged frames are reported to the router
        by msg_ref, which names them in one ERROR per ACK interval (no silent drops,
        protocol/acks.py); the others are dropped unseen (no seq is used, so the
        router's order is intact). A peer that floods on for another whole burst is
        disconnected."""
        link = self._link
        stats = self._stats
        stats.rate_limited += 1
        stats.frames_in += 1
        self._over_limit += 1
        if link.closing.is_set():
            return
        if self._over_limit > self._bucket.burst:
            stats.rate_limit_closes += 1
            link.request_close(CLOSE_POLICY_VIOLATION, "rate limit exceeded: too many frames")
            return
        first = self._over_limit == 1
        ref = (msg_ref_of_text(message) if link.role == ROLE_USER and type(message) is str
               and not utf8_size_exceeds(message, self._max_frame_bytes) else "")
        if first or ref:
            detail = (f"too many frames: at most {self._bucket.rate:g} per second on a connection while the node "
                      "is busy; "
                      + retry_hint(self._bucket.retry_after()))
            await self._report_refused()
            await self._tell_refused(ErrorCode.RATE_LIMITED.value, detail, "", ref)

    async def _write(self) -> None:
        link = self._link
        outbox = link.outbox
        stats = self._stats
        try:
            while True:
                await outbox.wait()
                texts: list[str] = []
                taken = 0
                close: CloseRequest | None = None
                while outbox:
                    item = outbox.popleft()
                    if isinstance(item, CloseRequest):
                        close = item
                        break
                    taken += 1
                    if item:       # empty: a frame the verifiers could not make (skipped, not stalled)
                        texts.append(item)
                if texts:
                    await self._send_texts(texts)
                    stats.frames_out += len(texts)
                    if self._metrics is not None:
                        self._metrics.frames_written(texts)
                # The router counted the skipped ones as sent too (recovery.py, credit).
                link.frames_written += taken
                if close is not None:
                    link.request_close(close.code, close.reason)
                    return
        except ConnectionClosed:
            return  # the reader sees the same close and reports it

    async def _send_texts(self, texts: list[str]) -> None:
        """Every waiting frame in one write and one flow-control wait, instead of one
        `ws.send()` (a context manager, a drain, a write call) per frame. This is the
        pattern websockets' own `send_context` documents; framing stays websockets'."""
        ws = self._ws
        if len(texts) == 1:
            await ws.send(texts[0])
            return
        async with ws.send_context():
            send_text = ws.protocol.send_text
            for text in texts:
                send_text(text.encode())


def _describe_close(closed: ConnectionClosed, link: SocketLink) -> str:
    if link.close_code is not None:
        return link.end_reason
    if closed.rcvd is not None:
        reason = f"peer closed with {closed.rcvd.code}"
        return f"{reason}: {closed.rcvd.reason}" if closed.rcvd.reason else reason
    if closed.sent is not None:
        return f"closed with {closed.sent.code}"
    return "connection lost"
