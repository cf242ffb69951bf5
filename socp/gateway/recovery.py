"""The gateway's side of recovery (docs/recovery.md is the contract; read it first).

- inbound: every submitted frame is kept (SocketLink.kept) until the router says it took
  effect (InboundDone); a verify job with no result in VERIFY_TIMEOUT is submitted
  again, and after MAX_VERIFY_TRIES answered Rejected(TIMEOUT);
- a new router (RouterHello) gets every open link replayed, then the kept frames,
  then GatewayHello;
- outbound: every OUTBOUND_REPORT_INTERVAL, how far each link's items were released
  in order (OutboundDone), so the router can re-send jobs a dead verifier took;
- credit: every CREDIT_REPORT_INTERVAL, the frames each server link has written
  (FramesWritten), so the router never hands a link more than its outbox holds.
"""

from __future__ import annotations

import asyncio
import logging
import time

from socp.gateway.context import GatewayContext
from socp.gateway.socket_links import SocketLink
from socp.ipc.link_state import LinkState
from socp.ipc.messages import (
    ROLE_USER,
    FramesWritten,
    GatewayHello,
    InboundDone,
    LinkReplay,
    OutboundDone,
    Rejected,
    out_seq,
    pack,
)
from socp.protocol.errors import ErrorCode

log = logging.getLogger("socp.gateway")

# How often OutboundDone is sent and kept frames are checked for a lost verify job: a
# scan of every link, so not too often; the router's re-send timeout (router/recovery.py,
# 2 s and up) and VERIFY_TIMEOUT are several of these.
OUTBOUND_REPORT_INTERVAL = 0.5
VERIFY_TIMEOUT = 2.0
MAX_VERIFY_TRIES = 5
# What a check costs a verifier on a loaded core, with margin (~0.2 ms unloaded).
CHECK_BUDGET_S = 0.002


def verify_patience(frames_waiting: int, verifiers: int) -> float:
    """How long a submitted frame may go without a result before it is presumed lost
    with its verifier: VERIFY_TIMEOUT, plus the time the pool needs for the frames
    queued ahead of it. A queue is not a loss: re-submitting what merely waits makes
    the pool check it again, and a joining server's snapshot of 10,000 adverts per
    link was checked three to five times over (the router's InFlight.patience_ms
    does the same for signatures)."""
    return VERIFY_TIMEOUT + frames_waiting * CHECK_BUDGET_S / max(1, verifiers)


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
                await bus.submit_job(pack(link.verify_job(entry[0], entry[1])))
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
        holding = [link for link in self._context.links if link.kept]   # few, among thousands of users
        patience = verify_patience(sum(len(link.kept) for link in holding), self._context.config.verifiers)
        for link in holding:
            for entry in list(link.kept):
                seq, text, submitted, tries = entry
                if now - submitted < patience:
                    continue
                if tries >= MAX_VERIFY_TRIES:
                    link.forget_kept(entry)
                    stats.verify_timeouts += 1
                    await bus.tell_router(Rejected(link.conn, seq, ErrorCode.TIMEOUT.value,
                                                   "the frame could not be checked in time; send it again", ""))
                    continue
                entry[2], entry[3] = now, tries + 1
                stats.verify_retries += 1
                await bus.submit_job(pack(link.verify_job(seq, text)))


# --- credit for server links (docs/recovery.md, "Credit for server links") ------------

# Often enough that the router's credit is fresh (a link writes thousands of frames a
# second), rarely enough to cost nothing: one message for every link at once. Five times
# as often as recovery's OUTBOUND_REPORT_INTERVAL: credit limits a server link's
# throughput, while recovery only needs to notice a lost job within seconds.
CREDIT_REPORT_INTERVAL = 0.1


def written_counts(context: GatewayContext) -> list[tuple[int, int]]:
    """(conn, frames written) of every server link written to since the last report."""
    counts = []
    for link in context.links.server_links():
        if link.frames_written != link.reported_written:
            link.reported_written = link.frames_written
            counts.append((link.conn, link.frames_written))
    return counts


async def report_written(context: GatewayContext) -> None:
    """Report until cancelled."""
    while True:
        await asyncio.sleep(CREDIT_REPORT_INTERVAL)
        counts = written_counts(context)
        if counts:
            await context.bus.tell_router(FramesWritten(counts))


__all__ = ["Recovery", "SocketLink", "report_written"]
