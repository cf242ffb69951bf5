"""Per-connection state: who the peer is, its sequence counters, and its outbox.

A link is one WebSocket, accepted or dialled. Its life is one table (STYLE §3):

    DIALING ──────────► OPEN ──► CLOSING ──► CLOSED
       │                  ▲         ▲
       │   AWAITING_HELLO ┘         │
       └────────────────────────────┘   (dial failed, or shutdown while dialling)

Outbound items (frame texts and close requests) carry the router's per-connection
seq; they pass the link's ReorderBuffer, then wait in its bounded Outbox for the
writer. A link that cannot keep up is closed, never allowed to grow without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from socp.ipc.messages import ROLE_SERVER, ROLE_UNKNOWN, ConnId
from socp.ipc.reorder import ReorderBuffer

# Close codes the gateway uses (RFC 6455 §7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013


class LinkState(Enum):
    DIALING = "dialing"
    AWAITING_HELLO = "awaiting hello"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_ALLOWED_TRANSITIONS: dict[LinkState, frozenset[LinkState]] = {
    LinkState.DIALING: frozenset({LinkState.OPEN, LinkState.CLOSING, LinkState.CLOSED}),
    LinkState.AWAITING_HELLO: frozenset({LinkState.OPEN, LinkState.CLOSING}),
    LinkState.OPEN: frozenset({LinkState.CLOSING}),
    LinkState.CLOSING: frozenset({LinkState.CLOSED}),
    LinkState.CLOSED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A bug in the gateway: a link was moved along an edge the table lacks."""


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


class Link:
    """One WebSocket's state. Only the event loop thread touches it."""

    __slots__ = (
        "conn", "peer", "state", "role", "verify_key", "next_in_seq",
        "reorder", "outbox", "accepting_output", "close_code", "end_reason", "closing",
    )

    def __init__(self, conn: ConnId, peer: str, state: LinkState, queue_frames: int,
                 role: int = ROLE_UNKNOWN, verify_key: str = "") -> None:
        self.conn = conn
        self.peer = peer
        self.state = state
        self.role = role
        self.verify_key = verify_key
        self.next_in_seq = 0                 # seq of the next inbound event to the router
        self.reorder: ReorderBuffer[OutItem] = ReorderBuffer(max_waiting=queue_frames)
        self.outbox = Outbox(queue_frames)
        self.accepting_output = True         # False once a close is queued or under way
        self.close_code: int | None = None   # set when the gateway closes; None if the peer did
        self.end_reason = ""                 # LinkClosed.reason
        self.closing = asyncio.Event()       # the session waits on this to close

    def move_to(self, new_state: LinkState) -> None:
        if new_state not in _ALLOWED_TRANSITIONS[self.state]:
            raise IllegalTransition(f"link {self.conn}: {self.state.value} -> {new_state.value}")
        self.state = new_state

    def request_close(self, code: int | None, reason: str) -> None:
        """Ask the session to end this link; the first reason wins. `code` None: peer closed."""
        if self.closing.is_set():
            return
        self.close_code = code
        self.end_reason = reason
        self.accepting_output = False
        self.closing.set()

    def release(self, seq: int, item: OutItem) -> bool:
        """Pass one outbound item through the reorder buffer into the outbox.

        Returns False when the link had to be closed for not keeping up (the caller
        counts it); ReorderOverflow propagates for the caller to count separately.
        """
        ready = self.reorder.push(seq, item)
        if not ready:
            return True
        if type(ready[-1]) is CloseRequest:
            # Nothing after a close can be written; later items count as drops.
            self.accepting_output = False
        if self.outbox.put(ready):
            return True
        self.request_close(CLOSE_TRY_AGAIN_LATER, "slow consumer: send queue full")
        return False


class LinkTable:
    """Every live link by conn id. Accepted conns count up from 1; the router picks
    dialled ones (>= 2**40), so the two never clash."""

    def __init__(self, queue_frames: int) -> None:
        self._links: dict[ConnId, Link] = {}
        self._next_accepted: ConnId = 1
        self._queue_frames = queue_frames

    def __len__(self) -> int:
        return len(self._links)

    def __iter__(self) -> Iterator[Link]:
        return iter(list(self._links.values()))

    def __contains__(self, conn: ConnId) -> bool:
        return conn in self._links

    def get(self, conn: ConnId) -> Link | None:
        return self._links.get(conn)

    def add_accepted(self, peer: str) -> Link:
        link = Link(self._next_accepted, peer, LinkState.AWAITING_HELLO, self._queue_frames)
        self._next_accepted += 1
        self._links[link.conn] = link
        return link

    def add_dialled(self, conn: ConnId, peer: str, verify_key: str) -> Link:
        link = Link(conn, peer, LinkState.DIALING, self._queue_frames,
                    role=ROLE_SERVER, verify_key=verify_key)
        self._links[conn] = link
        return link

    def remove(self, link: Link) -> None:
        self._links.pop(link.conn, None)

