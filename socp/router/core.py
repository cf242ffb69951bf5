"""The router's decisions: a pure function of its tables and one event.

`handle(state, event)` mutates only `state` and returns the actions to take
(frames to sign and send, frames to relay, links to close or dial, rows to
store). No sockets, no clock: `state.now_ms` is set by the driver before each call.
"""

from __future__ import annotations

from socp.ipc.link_state import LinkState
from socp.ipc.messages import CLOSE_NORMAL
from socp.protocol.acks import ACKNOWLEDGED_TYPES
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode
from socp.protocol.frame_types import (
    KEY_LOOKUP_TYPES,
    LIST_REQUEST_TYPES,
    PASSWORD_OPENING_TYPES,
    SERVER_OPENING_TYPES,
    USER_SENDABLE,
)
from socp.protocol.frame_types import (
    FrameType as T,
)

from . import (
    abuse_rules,
    client_dialects,
    defences,
    directory,
    federation,
    key_waits,
    link_dialects,  # other teams' server-link habits (issue #14)
    peer_login,
    recovery,
    refusals,
    roaming_login,
    user_acks,
    user_presence,
    users,
)
from .core_io import (
    GATEWAY_RESTARTED,
    Action,
    BatchEnd,
    Close,
    DirectoryQueried,
    Event,
    FrameIn,
    FrameRejected,
    FramesWritten,
    LinkDown,
    LinkRestored,
    LinkUp,
    Tick,
)
from .peer_links import PeerLink
from .replies import error_to, refuse_and_close
from .state import RouterState


def handle(state: RouterState, event: Event) -> list[Action]:
    moving = user_presence.watched(state, event)
    actions = _handle(state, event)
    # The answers to a peer's frame pay for their ERRORs; presence news below does not.
    answers = len(actions) if isinstance(event, (FrameIn, FrameRejected)) else 0
    user_presence.note_moves(state, moving)
    if not state.batch_joins:
        if state.joins_waiting:
            actions += users.announce_joins(state)
        actions += user_presence.flush(state)
    return _hand_on(state, actions, answers)


def _hand_on(state: RouterState, actions: list[Action], answers: int) -> list[Action]:
    """One pass over the actions of one event: an ERROR among the first `answers`
    beyond its budget is left out (defences), each frame goes to a peer of another
    dialect in the form it reads (link_dialects), and what is handed on is noted for
    re-parking and credit (recovery)."""
    adapt = link_dialects.adapter(state)
    handed: list[Action] = []
    for index, action in enumerate(actions):
        if index < answers and not defences.error_affordable(state, action):
            continue
        for copy in adapt(action) if adapt is not None else (action,):
            recovery.note_handed_on(state, copy)
            handed.append(copy)
    return handed


def _handle(state: RouterState, event: Event) -> list[Action]:
    defences.clock(state)
    if isinstance(event, FrameIn):
        return _frame_in(state, event)
    if isinstance(event, FrameRejected):
        return _frame_rejected(state, event)
    if isinstance(event, LinkUp):
        if event.address:
            return roaming_login.link_accepted(state, event.conn, event.address)
        return federation.link_up(state, event.conn)
    if isinstance(event, DirectoryQueried):
        return [directory.query(state, event.query, event.user_id)]
    if isinstance(event, LinkDown):
        return _link_down(state, event.conn, park=event.reason == GATEWAY_RESTARTED, reason=event.reason)
    if isinstance(event, LinkRestored):
        return recovery.link_restored(state, event)
    if isinstance(event, FramesWritten):
        recovery.frames_written(state, event.counts)
        return []
    if isinstance(event, BatchEnd):
        return users.announce_joins(state) + user_presence.flush(state)
    if isinstance(event, Tick):
        state.seen.expire(state.now_ms)
        defences.tick(state)
        recovery.expire_delivered(state)
        return (federation.tick(state) + users.tick(state) + user_acks.tick(state) + refusals.tick(state)
                + state.replay_log.tick(state.now_ms))
    raise TypeError(f"unknown event {event!r}")


def _frame_in(state: RouterState, event: FrameIn) -> list[Action]:
    link = state.links.get(event.conn)
    if link is None:
        link = state.links[event.conn] = PeerLink(conn=event.conn, state=LinkState.AWAITING_HELLO)
    link.last_heard_ms = state.now_ms
    frame = event.frame
    if link.state is LinkState.CLOSING:
        if link.superseded:
            return federation.from_server(state, link, event)
        return []  # frames that raced our close decision have no effect
    if link.state is LinkState.AWAITING_HELLO:
        if frame.type == T.USER_HELLO:
            refused = defences.user_hello(state, link, frame)
            if refused is not None:
                return refused
            actions = users.hello(state, link, frame)
            return actions + defences.user_hello_done(state, link, frame)
        if frame.type in SERVER_OPENING_TYPES:
            return defences.server_hello(state, link, event) or federation.server_hello(state, link, frame)
        if frame.type in PASSWORD_OPENING_TYPES:
            return peer_login.from_new_connection(state, link, frame)
        return refuse_and_close(
            state, event.conn, ErrorCode.MALFORMED, "the first frame must be USER_HELLO or a server hello"
        )
    if link.state is LinkState.USER:
        return _from_user(state, link, event)
    if link.state in (LinkState.JOINED, LinkState.HELLO_SENT, LinkState.DIALLING):
        refused = defences.server_frame(state, link, event)
        return refused if refused is not None else federation.from_server(state, link, event)
    return []


def _from_user(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    frame = event.frame
    if frame.type == T.CTRL_CLOSE:
        link.move(LinkState.CLOSING)
        return [Close(link.conn, CLOSE_NORMAL, "closed by the user")]
    # The rate limit is charged first, before any check that might answer: every
    # answer costs a signature, so a flood of refused frames must empty the bucket too.
    if frame.type in ACKNOWLEDGED_TYPES and frame.from_ == link.peer_id:
        return _acknowledged_content(state, link, event)
    refused = defences.user_frame(state, link)
    if refused is not None:
        return refused
    if frame.type not in USER_SENDABLE:
        # Gossip or server frames over a user connection: presence poisoning et al.
        return [error_to(state, link.conn, ErrorCode.FORBIDDEN, f"{frame.type} may not be sent by a user")]
    if frame.from_ != link.peer_id:
        return [error_to(state, link.conn, ErrorCode.FORBIDDEN, "`from` must be your own user id")]
    if frame.type in LIST_REQUEST_TYPES:
        return [client_dialects.list_reply(state, link, frame)]
    if frame.type in KEY_LOOKUP_TYPES:
        return key_waits.lookup(state, link, frame)
    if frame.type == T.PUBLIC_MEMBERS_SNAPSHOT:
        return [client_dialects.members_snapshot(state, link)]
    if frame.type in (T.HEARTBEAT, T.ACK, T.ERROR):
        return []
    problem = abuse_rules.replay_problem(state.seen, frame, event.payload_digest, state.now_ms, state.replay_log)
    if problem is not None:
        return defences.refusal(state, link.conn, *problem)
    if frame.type == T.PUBLIC_CHANNEL_KEY_SHARE:
        return users.key_share(state, frame, origin_conn=link.conn)
    if frame.type == T.DIRECTORY_GET:
        return key_waits.lookup(state, link, frame)
    if frame.type == T.LOGIN_REGISTER:
        return directory.from_user(state, link, frame)
    return [error_to(state, link.conn, ErrorCode.UNKNOWN_TYPE, f"{frame.type} is not handled here")]


def _acknowledged_content(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    """A user's DM, public message or file frame (SOCP §7.2-§7.5), in four steps:
    charge its rate limit, screen out copies, route it, acknowledge it (user_acks.py)."""
    ref = user_acks.msg_ref_of(event)
    over_limit = defences.user_content_admission(state, link, event.frame.type)
    screened = user_acks.screen(state, link, event, ref, over_limit)
    if screened is not None:
        return screened
    actions, handed_on = _route_content(state, link, event.frame)
    return user_acks.acknowledge(state, link, event, ref, actions, handed_on)


def _route_content(state: RouterState, link: PeerLink, frame: Envelope) -> tuple[list[Action], bool]:
    """Route one acknowledged frame; True if it was handed on."""
    refused = None
    if frame.type in (T.FILE_START, T.FILE_CHUNK, T.FILE_END):
        refused = defences.user_file_frame(state, link, frame)
    if refused is not None:
        return refused, False
    if frame.type == T.MSG_DIRECT:
        return users.direct_message(state, link, frame), True
    if frame.type == T.MSG_PUBLIC_CHANNEL:
        return users.public_message(state, frame, exclude_conn=link.conn), True
    return users.file_frame(state, link, frame), True


def _frame_rejected(state: RouterState, event: FrameRejected) -> list[Action]:
    link = state.links.get(event.conn)
    if link is None:
        link = state.links[event.conn] = PeerLink(conn=event.conn, state=LinkState.AWAITING_HELLO)
    link.last_heard_ms = state.now_ms
    if link.state is LinkState.CLOSING:
        return []
    try:
        code = ErrorCode(event.code)
    except ValueError:
        code = ErrorCode.MALFORMED
    if link.state is LinkState.AWAITING_HELLO:
        # Nobody we know: a failed hello ends the connection.
        if event.frame_type in SERVER_OPENING_TYPES:
            federation.hello_rejected(state, link, event.frame_type, code, event.detail)
        return refuse_and_close(state, event.conn, code, event.detail)
    if event.msg_ref and link.is_user:
        return refusals.refuse(state, event.conn, code, event.detail, event.msg_ref, earlier=event.earlier_refs)
    if link.state is LinkState.HELLO_SENT:
        return federation.welcome_rejected(state, link, event.frame_type, code, event.detail)
    if link.server_address:
        state.linkbook.dropped(link.server_address, f"{code.value}: {event.detail}", state.now_ms)
    return [error_to(state, event.conn, code, event.detail)]


def _link_down(state: RouterState, conn: int, park: bool = False, reason: str = "") -> list[Action]:
    link = state.links.pop(conn, None)
    state.peer_channel.logged_in.discard(conn)   # a G17 login that never said hello
    defences.link_down(state, conn, link)
    user_acks.link_down(state, conn)
    recovery.forget_outflow(state, conn)
    if conn in state.dialing:
        actions = federation.dial_failed(state, conn, link, reason)
        if link is not None and link.peer_id and state.servers.get(link.peer_id) == conn:
            actions += federation.server_link_lost(state, link.peer_id)
        return actions
    if link is None:
        return []
    if link.peer_id and state.local_users.get(link.peer_id) == conn:
        actions = users.user_left(state, link.peer_id, park=park)
        if park:
            recovery.park_again(state, link.peer_id)
        else:
            recovery.forget_delivered(state, link.peer_id)
        return actions
    if link.server_address:
        federation.link_closed(state, link, reason)   # the link book (linkbook.py)
    if link.peer_id and state.servers.get(link.peer_id) == conn:
        return federation.server_link_lost(state, link.peer_id, gateway_restarted=park)
    return []


__all__ = ["handle"]
