"""Acknowledgements to users (SOCP §7.5), cumulative and coalesced.

Every ACK costs a signature, the scarcest thing a node has. Frames of one connection
take effect in order, so one `ACK msg_ref=X` covers X and everything that connection
sent before it; the router remembers only the latest handed-on ref per connection and
sends at most one ACK per connection per `Timing.ack_interval_ms`: at once when the
connection's interval has passed, else on the first Tick after it has.

ACKs are the node's lowest-priority signatures (issue #18: a light sender's DM cost
two, its USER_DELIVER and its ACK). An ACK that is due goes at once only while the
signing pool has room (`FairShare.spare_room`: no sender's frame queued in the fair
share, router/fairshare.py, and a free place in its window). Else it waits in
`acks_waiting`, still coalesced: the connection's later frames replace its ref, so
waiting makes ACKs fewer. Waiting ACKs take only the window's free places, in the
order they fell due (oldest first, to within an interval and a Tick; `send_waiting`,
after every signature and Tick): a DM queued for a signature
always goes before them, and one arriving waits at most for the window's jobs. No
connection waits longer than `Timing.ack_max_delay_ms` from its oldest unacknowledged
frame: then its ACK goes whatever the pool's load. On an idle node nothing waits.

A frame is handed on once it is queued for the recipient's connection, for the next
server's link or that link's bounded backlog, or parked for a local recipient lost
with the gateway. A refused frame is not acknowledged: an ERROR names its msg_ref (at
once, or with others of its connection in `msg_refs`: refusals.py, which this module
flushes before every ACK), and it is forgotten by the duplicate cache so a re-send
takes effect. A re-sent
frame that was already handed on is answered `ERROR REPLAY` naming its msg_ref
("already handed on", as good as an ACK), never delivered twice.
"""

from __future__ import annotations

from typing import TypeGuard

from socp.protocol import frames
from socp.protocol.acks import msg_ref_from_digest
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode
from socp.protocol.frame_types import FrameType as T

from . import abuse_rules, fairshare, refusals
from .core_io import Action, FrameIn, Send, send_one
from .peer_links import PeerLink
from .replies import error_to
from .state import RouterState

DUPLICATE_DETAIL = "duplicate frame: already handed on"


def msg_ref_of(event: FrameIn) -> str:
    frame = event.frame
    return msg_ref_from_digest(frame.ts, frame.from_, frame.to, event.payload_digest)


def screen(state: RouterState, link: PeerLink, event: FrameIn, ref: str,
           over_limit: tuple[ErrorCode, str] | None) -> list[Action] | None:
    """Before an acknowledged frame is routed: the answer that replaces routing it (a
    refusal naming `ref`, or REPLAY / the next ACK for a copy already handed on), or
    None to route it.

    The rate limits (`over_limit`, asked first by the caller) come first: stale and
    copied frames are charged like any other, so a flood of them is limited before it
    costs anything more. Every refused frame is named, but a connection gets at most
    one ERROR per code per interval (refusals.py): the error budget never drops an
    ERROR naming a frame."""
    if over_limit is not None:
        return refusals.refuse(state, link.conn, *over_limit, ref)
    frame = event.frame
    problem = abuse_rules.replay_problem(state.seen, frame, event.payload_digest, state.now_ms, state.replay_log)
    if problem is not None:
        refusal, detail = problem
        if refusal == abuse_rules.DUPLICATE:
            # A re-send of a frame already handed on: say so (REPLAY naming its msg_ref
            # means "already handed on", as good as an ACK); it is never delivered twice.
            # Past the first answer of the interval, the connection's next ACK says it,
            # as truly: the frame was handed on, and it is the newest this connection sent.
            if abuse_rules.refusal_answer_due(state.guard, link.conn, refusal):
                return [_named(error_to(state, link.conn, ErrorCode.REPLAY, DUPLICATE_DETAIL), ref)]
            return _note_for_ack(state, link.conn, ref)
        return refusals.refuse(state, link.conn, abuse_rules.refusal_code(refusal), detail, ref, kind=refusal)
    return None


def acknowledge(state: RouterState, link: PeerLink, event: FrameIn, ref: str, actions: list[Action],
                handed_on: bool) -> list[Action]:
    """After an acknowledged frame was routed: an ERROR the routing answered names `ref`
    and makes the frame refused (forgotten by the duplicate cache, so a re-send takes
    effect); a frame handed on is noted for the connection's next ACK."""
    frame = event.frame
    refused = not handed_on
    for index, action in enumerate(actions):
        if _is_error_to(action, link.conn):
            actions[index] = _named(action, ref)
            refused = True
    if refused:
        state.seen.discard((frame.ts, frame.from_, frame.to, event.payload_digest))
        state.replay_log.forget(ref)
        return actions
    return actions + _note_for_ack(state, link.conn, ref)


def _note_for_ack(state: RouterState, conn: int, ref: str) -> list[Action]:
    """`ref` is the newest frame of `conn` handed on: ACK it now, or when the
    connection's interval has passed and the signing pool has room."""
    if conn not in state.pending_acks:
        state.ack_pending_since[conn] = state.now_ms
    state.pending_acks[conn] = ref
    if conn in state.acks_waiting or state.now_ms < state.next_ack_ms.get(conn, 0):
        return []
    if state.fair_share.spare_room > 0 or _overdue(state, conn):
        return _ack_now(state, conn)
    state.acks_waiting[conn] = None
    return []


def tick(state: RouterState) -> list[Action]:
    """Every connection whose interval has passed since its last ACK: its ACK goes at
    once if it has waited `ack_max_delay_ms` already, else when the pool has room."""
    actions: list[Action] = []
    for conn in [conn for conn in state.pending_acks if state.now_ms >= state.next_ack_ms.get(conn, 0)]:
        if _overdue(state, conn):
            actions += _ack_now(state, conn)     # the bound: sent even while the pool is backlogged
        else:
            state.acks_waiting.setdefault(conn, None)
    return actions + send_waiting(state)


def _overdue(state: RouterState, conn: int) -> bool:
    """Has `conn` waited `ack_max_delay_ms` for an ACK? (0: never wait for room.)"""
    since = state.ack_pending_since.get(conn, state.now_ms)
    return state.now_ms - since >= state.timing.ack_max_delay_ms


def send_waiting(state: RouterState) -> list[Action]:
    """ACKs waiting for the signing pool, oldest first, as many as it has room for
    (the driver asks after every signature the pool reports)."""
    room = state.fair_share.spare_room
    actions: list[Action] = []
    while room > 0 and state.acks_waiting:
        conn = next(iter(state.acks_waiting))
        sent = _ack_now(state, conn)
        room -= len(sent)     # the refused frames' ERRORs it flushes are signatures too
        actions += sent
    return actions


def _ack_now(state: RouterState, conn: int) -> list[Action]:
    """One ACK naming the connection's latest handed-on frame. Each connection keeps
    its own interval, so a busy node's ACKs are spread out in time instead of reaching
    the verifiers as one burst per tick (a burst delays every DM queued behind it)."""
    ref = state.pending_acks.pop(conn)
    state.ack_pending_since.pop(conn, None)
    state.acks_waiting.pop(conn, None)
    state.next_ack_ms[conn] = state.now_ms + state.timing.ack_interval_ms
    link = state.links.get(conn)
    if link is None or not link.is_user:
        return []
    # Refused frames are named before an ACK that would cover them: their answers wait
    # in the sender's queue of the fair share (refusals.py), so while any do, the ACK
    # waits there too, behind them.
    named = refusals.flush(state, conn)
    ack = send_one(conn, frames.ack(state.me.server_id, link.peer_id, state.now_ms, ref))
    sender = fairshare.sender_of(link) or ""
    if named or state.fair_share.waiting(sender):
        ack = Send(ack.targets, ack.frame, charged_to=sender)
    return [*named, ack]


def link_down(state: RouterState, conn: int) -> None:
    state.pending_acks.pop(conn, None)
    state.ack_pending_since.pop(conn, None)
    state.acks_waiting.pop(conn, None)
    state.next_ack_ms.pop(conn, None)
    refusals.link_down(state, conn)


def _is_error_to(action: Action, conn: int) -> TypeGuard[Send]:
    return (isinstance(action, Send) and action.frame.type == T.ERROR and len(action.targets) == 1
            and action.targets[0][0] == conn)


def _named(send: Send, ref: str) -> Send:
    frame = send.frame
    named = Envelope(type=frame.type, from_=frame.from_, to=frame.to, ts=frame.ts,
                     payload={**frame.payload, "msg_ref": ref})
    return Send(send.targets, named)
