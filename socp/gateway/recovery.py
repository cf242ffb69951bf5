"""What lets the other actors die without losing a connection's frames.

Inbound, the gateway keeps every frame it submitted (bounded per link) until the
router says it took effect (InboundDone). A frame whose verify job got no result in
VERIFY_TIMEOUT (its verifier was killed; ZeroMQ drops what a dead peer's pipe held)
is submitted again with the same seq, to whichever verifier takes it; the router's
reorder buffer drops a second result. After MAX_VERIFY_TRIES it is answered
Rejected(TIMEOUT), so the connection never stalls behind it.

When a router (re)starts it says RouterHello: the gateway replays every open link
(LinkReplay: its opening and the seq of its oldest kept frame), submits the kept
frames again with their seqs, then says GatewayHello ("replay done"). A router that
already knows the link ignores the replay and the duplicates. A new router applies no
frame before that hello: the verifiers' results can reach it before the replay does.

Outbound, every OUTBOUND_REPORT_INTERVAL the gateway tells the router how far each link's
items were released in order (OutboundDone), so the router can re-send sign jobs a
dead verifier took with it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from socp.gateway.context import GatewayContext
from socp.gateway.links import Link, LinkState
from socp.ipc.messages import (
    ROLE_USER,
    GatewayHello,
    InboundDone,
    LinkReplay,
    OutboundDone,
    Rejected,
    VerifyJob,
    out_seq,
    pack,
)
from socp.protocol.errors import ErrorCode

log = logging.getLogger("socp.gateway")

# How often OutboundDone is sent and kept frames are checked for a lost verify job: a
# scan of every link, so not too often; the router's re-send timeout (inflight.py,
# 2 s and up) and VERIFY_TIMEOUT are several of these.
OUTBOUND_REPORT_INTERVAL = 0.5
VERIFY_TIMEOUT = 2.0
MAX_VERIFY_TRIES = 5


class Recovery:
    def __init__(self, context: GatewayContext, boot_id: str) -> None:
        self._context = context
        self._boot_id = boot_id
        self._replay_wanted = asyncio.Event()

    def router_hello(self, epoch: int) -> None:
        log.info("router started (epoch %d): replaying %d links", epoch, len(self._context.links))
        self._context.stats.router_restarts += 1
        self._replay_wanted.set()

    def inbound_done(self, message: InboundDone) -> None:
        links = self._context.links
        for conn, first_not_applied in message.marks:
            link = links.get(conn)
            if link is not None:
                link.forget_kept_below(first_not_applied)

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(OUTBOUND_REPORT_INTERVAL):
                    await self._replay_wanted.wait()
            except TimeoutError:
                pass
            if self._replay_wanted.is_set():
                self._replay_wanted.clear()
                await self._replay()
            await self._report_outbound()
            await self._retry_verify_jobs()

    async def _replay(self) -> None:
        """Every link first, then every kept frame: a frame for a user must not reach
        the new router before that user's connection does."""
        bus, stats = self._context.bus, self._context.stats
        replayed = []
        for link in self._context.links:
            if link.state is not LinkState.OPEN or link.closing.is_set():
                continue
            first = link.kept[0][0] if link.kept else link.next_in_seq
            # If even the opening frame is still kept, it simply flows again below.
            opening = link.opening if link.role == ROLE_USER and first > 0 else ""
            await bus.tell_router(LinkReplay(link.conn, first, link.role, opening, link.verify_key))
            stats.links_replayed += 1
            replayed.append(link)
        now = time.monotonic()
        for link in replayed:
            for entry in list(link.kept):
                entry[2] = now
                await bus.submit_job(pack(VerifyJob(link.conn, entry[0], entry[1], link.role, link.verify_key,
                                                    link.unsigned_ok)))
                stats.frames_replayed += 1
        await bus.tell_router(GatewayHello(self._boot_id))

    async def _report_outbound(self) -> None:
        marks = []
        for link in self._context.links:
            released = out_seq(link.out_epoch, link.reorder.next_seq)
            if released != link.reported_out:
                link.reported_out = released
                marks.append((link.conn, released))
        if marks:
            await self._context.bus.tell_router(OutboundDone(marks))

    async def _retry_verify_jobs(self) -> None:
        bus, stats = self._context.bus, self._context.stats
        now = time.monotonic()
        for link in self._context.links:
            for entry in list(link.kept):
                seq, text, submitted, tries = entry
                if now - submitted < VERIFY_TIMEOUT:
                    continue
                if tries >= MAX_VERIFY_TRIES:
                    link.kept.remove(entry)
                    link.kept_bytes -= len(text)
                    stats.verify_timeouts += 1
                    await bus.tell_router(Rejected(link.conn, seq, ErrorCode.TIMEOUT.value,
                                                   "the frame could not be checked in time; send it again", ""))
                    continue
                entry[2], entry[3] = now, tries + 1
                stats.verify_retries += 1
                await bus.submit_job(pack(VerifyJob(link.conn, seq, text, link.role, link.verify_key,
                                                    link.unsigned_ok)))


__all__ = ["Recovery", "Link"]
