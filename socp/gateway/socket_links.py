"""The gateway's half of each link: its sequence counters, kept frames and outbox (the
router keeps who is on it, router/peer_links.py).

A link is one WebSocket, accepted or dialled; its states and their table are
socp/ipc/link_state.py (the gateway moves it dialling or awaiting hello -> open ->
closing -> closed).

Outbound items (frame texts and close requests) carry the router's per-connection
seq; they pass the link's ReorderBuffer, then wait in its bounded Outbox for the
writer. A link that cannot keep up is closed, never allowed to grow without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from socp.gateway.bootstrap_view import g101_address_of
from socp.ipc.link_state import LinkState, connection_move
from socp.ipc.messages import (
    CLOSE_TRY_AGAIN_LATER,
    FIRST_DIALLED_CONN,
    ROLE_SERVER,
    ROLE_UNKNOWN,
    ConnId,
    VerifyJob,
    split_out_seq,
)
from socp.ipc.reorder import ReorderBuffer

# Inbound frames kept per link until the router applied them (recovery.py). At either
# bound the link's reader waits (Link.kept_room) until the router catches up: a link's
# frames in flight through the verifiers stay fewer than the router's reorder buffer
# takes (ipc/reorder.py, 4096), however far one verifier falls behind the other.
KEPT_FRAMES = 1024
KEPT_BYTES = 8 * 1024 * 1024

# Accepted conn ids count up in a block of ACCEPTED_CONNS_PER_BOOT ids below
# FIRST_DIALLED_CONN (ipc messages), a new block at every gateway start (picked by the
# start time in tenths of a second, like the router's epoch; blocks come round again
# after 1.8 hours).
ACCEPTED_CONNS_PER_BOOT = 2**24


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """The router's CloseLink, waiting in line behind the frames before it."""

    code: int
    reason: str


OutItem = str | CloseRequest


class Outbox:
    """Items released in order for one connection, waiting for its writer; bounded."""

    __slots__ = ("_items", "capacity", "_nonempty")

    def __init__(self, capacity: int) -> None:
        self._items: deque[OutItem] = deque()
        self.capacity = capacity
        self._nonempty = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, items: list[OutItem]) -> bool:
        """Append items in order; False (and nothing appended) if that would overflow."""
        if len(self._items) + len(items) > self.capacity:
            return False
        self._items.extend(items)
        self._nonempty.set()
        return True

    def popleft(self) -> OutItem:
        return self._items.popleft()

    async def wait(self) -> None:
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()


class SocketLink:
    """One WebSocket's state. Only the event loop thread touches it."""

    __slots__ = (
        "conn", "peer", "state", "role", "verify_key", "next_in_seq",
        "reorder", "outbox", "accepting_output", "close_code", "end_reason", "closing",
        "opening", "kept", "kept_bytes", "kept_room", "reader_waits", "out_epoch", "reported_out",
        "address", "_queue_frames", "frames_written", "reported_written", "unsigned_ok",
        "g101_address",
    )

    def __init__(self, conn: ConnId, peer: str, state: LinkState, queue_frames: int,
                 role: int = ROLE_UNKNOWN, verify_key: str = "", address: str = "") -> None:
        self.conn = conn
        self.peer = peer
        self.address = address               # remote host of an accepted link; "" if dialled
        self.state = state
        self.role = role
        self.verify_key = verify_key
        self.unsigned_ok = False             # a dialled link whose peer may send unsigned frames
        self.g101_address = ""               # a peer opted in to G101's link form: its entry's host:port
        self.next_in_seq = 0                 # seq of the next inbound event to the router
        self.reorder: ReorderBuffer[OutItem] = ReorderBuffer(max_waiting=queue_frames)
        self.outbox = Outbox(queue_frames)
        self.accepting_output = True         # False once a close is queued or under way
        self.close_code: int | None = None   # set when the gateway closes; None if the peer did
        self.end_reason = ""                 # LinkClosed.reason
        self.closing = asyncio.Event()       # the session waits on this to close
        # Recovery (recovery.py)
        self.opening = ""                    # the first frame text, replayed to a new router
        self.kept: deque[list[Any]] = deque()     # [seq, text, submitted (monotonic), tries], in seq order
        self.kept_bytes = 0
        self.kept_room = asyncio.Event()     # clear while kept is at KEPT_FRAMES / KEPT_BYTES
        self.kept_room.set()
        self.reader_waits = 0                # times the reader waited for kept_room
        self.out_epoch = 0                   # the router epoch of the items being reordered
        self.reported_out = 0                # last OutboundDone mark sent for this link
        # Credit (recovery.py, credit): frame items taken from the outbox and written (or skipped)
        self.frames_written = 0
        self.reported_written = 0            # last count told the router
        self._queue_frames = queue_frames

    # --- inbound frames kept until the router applied them ---------------------------

    def verify_job(self, seq: int, text: str) -> VerifyJob:
        """The check of inbound frame `seq` as this link's role and consents ask."""
        return VerifyJob(self.conn, seq, text, self.role, self.verify_key, self.unsigned_ok, self.g101_address)

    def keep(self, seq: int, text: str, now: float) -> None:
        self.kept.append([seq, text, now, 1])
        self.kept_bytes += len(text)
        self._note_room()

    def forget_kept_below(self, seq: int) -> None:
        kept = self.kept
        while kept and kept[0][0] < seq:
            self.kept_bytes -= len(kept.popleft()[1])
        self._note_room()

    def forget_kept(self, entry: list[Any]) -> None:
        """A kept frame the router will never apply (answered TIMEOUT instead)."""
        self.kept.remove(entry)
        self.kept_bytes -= len(entry[1])
        self._note_room()

    def _note_room(self) -> None:
        if len(self.kept) >= KEPT_FRAMES or self.kept_bytes >= KEPT_BYTES:
            self.kept_room.clear()
        else:
            self.kept_room.set()

    async def wait_for_kept_room(self) -> None:
        """Backpressure (STYLE §5): read no further frame while KEPT_FRAMES wait for the
        router; the peer's socket buffers fill and TCP slows it down."""
        if not self.kept_room.is_set():
            self.reader_waits += 1
            await self.kept_room.wait()

    def move_to(self, new_state: LinkState) -> None:
        self.state = connection_move(self.conn, self.state, new_state)

    def request_close(self, code: int | None, reason: str) -> None:
        """Ask the session to end this link; the first reason wins. `code` None: peer closed."""
        if self.closing.is_set():
            return
        self.close_code = code
        self.end_reason = reason
        self.accepting_output = False
        self.closing.set()

    def close_after_outbox(self, code: int, reason: str) -> None:
        """Close once the frames already in the outbox are written (a clean stop)."""
        if self.closing.is_set() or not self.accepting_output or self.state is not LinkState.OPEN:
            self.request_close(code, reason)
            return
        self.accepting_output = False
        if not self.outbox.put([CloseRequest(code, reason)]):
            self.request_close(code, reason)

    def release(self, seq: int, item: OutItem) -> bool:
        """Pass one outbound item through the reorder buffer into the outbox.

        Returns False when the link had to be closed for not keeping up (the caller
        counts it); ReorderOverflow propagates for the caller to count separately.
        """
        epoch, n = split_out_seq(seq)
        if epoch != self.out_epoch:
            if epoch < self.out_epoch:
                # From a router that died since: write it now (order across a crash is lost).
                return self._put([item])
            # A new router: what the old one left waiting goes out now, then order anew.
            stale = self.reorder.drain()
            self.reorder = ReorderBuffer(max_waiting=self._queue_frames)
            self.out_epoch = epoch
            if stale and not self._put(stale):
                return False
        ready = self.reorder.push(n, item)
        if not ready:
            return True
        return self._put(ready)

    def _put(self, ready: list[OutItem]) -> bool:
        if type(ready[-1]) is CloseRequest:
            # Nothing after a close can be written; later items count as drops.
            self.accepting_output = False
        if self.outbox.put(ready):
            return True
        self.request_close(CLOSE_TRY_AGAIN_LATER, "slow consumer: send queue full")
        return False


def first_accepted_conn(started_at: float) -> ConnId:
    """The first accepted conn id of a gateway started at `started_at` (epoch seconds).

    Never the ids of the gateway before: frames signed for its links may still be on
    their way (ZeroMQ queues them until the new gateway binds), and the router numbers
    a new link's frames from 0 again; a reused id would take the old link's frames
    and drop its own as duplicates."""
    blocks = FIRST_DIALLED_CONN // ACCEPTED_CONNS_PER_BOOT
    return 1 + (int(started_at * 10) % blocks) * ACCEPTED_CONNS_PER_BOOT


class LinkTable:
    """Every live link by conn id. Accepted conns count up from `first_accepted`
    (first_accepted_conn); the router picks dialled ones (>= FIRST_DIALLED_CONN), so
    the two never clash."""

    def __init__(self, queue_frames: int, first_accepted: ConnId = 1) -> None:
        self._links: dict[ConnId, SocketLink] = {}
        # Links to other servers: a few among thousands of users, and the credit report
        # (recovery.py) visits them ten times a second.
        self._server_links: dict[ConnId, SocketLink] = {}
        # Accepted links that have not sent a frame yet, oldest first.
        self._waiting: dict[ConnId, SocketLink] = {}
        self._next_accepted: ConnId = first_accepted
        self._queue_frames = queue_frames
        self._high_water = 0   # most links open at once since take_high_water (memory.py)
        # Pinned key -> "host:port" of the bootstrap entries with `g101_link: true`
        # (bootstrap_view.py): a server link with that key is read in G101's form.
        self.g101_addresses: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._links)

    def __iter__(self) -> Iterator[SocketLink]:
        return iter(list(self._links.values()))

    def __contains__(self, conn: ConnId) -> bool:
        return conn in self._links

    def server_links(self) -> list[SocketLink]:
        return list(self._server_links.values())

    @property
    def waiting_for_hello(self) -> int:
        """Accepted links whose first frame has not come yet (the gateway caps them)."""
        return len(self._waiting)

    def get(self, conn: ConnId) -> SocketLink | None:
        return self._links.get(conn)

    def add_accepted(self, peer: str, address: str = "") -> SocketLink:
        link = SocketLink(self._next_accepted, peer, LinkState.AWAITING_HELLO, self._queue_frames, address=address)
        self._next_accepted += 1
        self._links[link.conn] = link
        self._waiting[link.conn] = link
        self._high_water = max(self._high_water, len(self._links))
        return link

    def first_frame_came(self, link: SocketLink, role: int, verify_key: str) -> None:
        """The accepted link's first frame said who is calling (gateway/roles.py)."""
        self._waiting.pop(link.conn, None)
        link.role, link.verify_key = role, verify_key
        if role == ROLE_SERVER:
            self._server_links[link.conn] = link
            link.g101_address = g101_address_of(self.g101_addresses, verify_key)

    def take_oldest_waiting(self) -> SocketLink | None:
        """The link that has waited longest for its first frame, no longer counted as
        waiting (the caller closes it); None if none waits."""
        if not self._waiting:
            return None
        conn = next(iter(self._waiting))
        return self._waiting.pop(conn)

    def add_dialled(self, conn: ConnId, peer: str, verify_key: str, unsigned_ok: bool = False) -> SocketLink:
        link = SocketLink(conn, peer, LinkState.DIALLING, self._queue_frames,
                    role=ROLE_SERVER, verify_key=verify_key)
        link.unsigned_ok = unsigned_ok
        link.g101_address = g101_address_of(self.g101_addresses, verify_key)
        self._links[conn] = link
        self._server_links[conn] = link
        self._high_water = max(self._high_water, len(self._links))
        return link

    def take_high_water(self) -> int:
        """The most links open at once since the last call; starts again from now."""
        peak, self._high_water = max(self._high_water, len(self._links)), len(self._links)
        return peak

    def remove(self, link: SocketLink) -> None:
        self._links.pop(link.conn, None)
        self._waiting.pop(link.conn, None)
        self._server_links.pop(link.conn, None)

