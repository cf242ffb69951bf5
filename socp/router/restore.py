"""A restarted router learns the gateway's live connections (ipc LinkReplay).

The gateway outlives the router: its users and server links stay connected. For each
it replays what the router needs: a user connection's opening USER_HELLO (admitted
again, as at first; or, if the old router had not applied it yet, nothing: the hello
itself is submitted again), a server link's verify key (the pinned server with that key).
Our tables of remote users died with the old router, so we also dial each linked
server again: the peer answers a second link with its presence (federation
`_register_link`), and the duplicate-link rule keeps one link.
"""

from __future__ import annotations

from socp.ipc.messages import CLOSE_GOING_AWAY, FIRST_DIALLED_CONN, ROLE_SERVER, ROLE_USER
from socp.protocol.crypto import normalise_public_key
from socp.protocol.envelope import parse
from socp.protocol.errors import SocpError
from socp.protocol.frame_types import FrameType as T

from . import federation, users
from .events import Action, Close, LinkRestored
from .links import Link, LinkState
from .state import RouterState


def link_restored(state: RouterState, event: LinkRestored) -> list[Action]:
    conn = event.conn
    if conn >= state.next_dial_conn:
        state.next_dial_conn = conn + 1   # never dial with a conn id the gateway still uses
    known = state.links.get(conn)
    if known is not None and known.state is not LinkState.AWAITING_HELLO:
        return []   # its hello reached us already
    link = state.links[conn] = Link(conn=conn, state=LinkState.AWAITING_HELLO, last_heard_ms=state.now_ms,
                                    dialled_by_us=conn >= FIRST_DIALLED_CONN)
    if event.role == ROLE_USER and not event.opening:
        # Its hello was still unapplied: the gateway submits it again, and it is handled
        # as a hello is; only its signature counts as unused (limits.user_hello_problem).
        link.hello_resubmitted = True
        return []
    if event.role == ROLE_USER:
        return _user(state, link, event.opening)
    if event.role == ROLE_SERVER:
        return _server(state, link, event.verify_key)
    return _drop(link, "connection state lost with the router")


def _user(state: RouterState, link: Link, opening: str) -> list[Action]:
    try:
        frame = parse(opening)
    except SocpError:
        return _drop(link, "connection state lost with the router")
    if frame.type != T.USER_HELLO:
        return _drop(link, "connection state lost with the router; please reconnect")
    # The verifier and the old router accepted this hello (and checked its proof of
    # possession); the gateway is ours.
    actions = users.hello(state, link, frame)
    if link.is_user:
        link.proved_key = bool(frame.sig)
    return actions


def _server(state: RouterState, link: Link, verify_key: str) -> list[Action]:
    try:
        key = normalise_public_key(verify_key)
    except SocpError:
        return _drop(link, "link state lost with the router")
    server_id = next((sid for sid, record in sorted(state.pinned_servers.items()) if record.pubkey == key), None)
    if server_id is None:
        # Not a server we know: a join or link still in progress. Its opening frame
        # is among the frames the gateway kept and submits again; let it decide.
        return []
    if server_id in state.servers:
        return _drop(link, "link state lost with the router")
    link.move(LinkState.SERVER)
    link.peer_id = server_id
    state.servers[server_id] = link.conn
    state.redials.pop(server_id, None)
    return federation.relink(state, server_id)


def _drop(link: Link, reason: str) -> list[Action]:
    link.move(LinkState.CLOSING)
    return [Close(link.conn, CLOSE_GOING_AWAY, reason)]
