"""Answers to other teams' clients, each in the shape its client reads (interop table).

- A list request is answered in the dialect it was asked in: LIST_REQUEST →
  LIST_RESPONSE (ours, G17's `online_users`), USER_LIST_REQ / CMD_LIST / LIST →
  USER_LIST {users} (G45, G2, G29), WHO → WHO {users} (G101).
- Key look-ups: PUBKEY_REQUEST {user_id} → PUBKEY_RESPONSE {user_id, pubkey or null}
  (G17); USER_DB_GET {user_id} → USER_DB_USER {user_id, found, pubkey or ""} (G45).
  A user with no key known is answered "not found" in the same shape, never an ERROR:
  each client waits for that exact reply (G17's blocks on it).
- PUBLIC_MEMBERS_SNAPSHOT {} → {members, version} (G17 asks before a public post;
  members are the users holding the group key G17's clients get here, peer_channel.py).
- Every key handed out is in the encoding the asker's own hello used (`key_forms`).

Every answer is addressed to the asker only and tells nothing the asker could not
learn from /list and the directory already.
"""

from __future__ import annotations

from socp.protocol import frames
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T
from socp.protocol.key_forms import KeyForm, in_form

from .core_io import Action, send_one
from .peer_links import PeerLink
from .state import RouterState
from .users import list_response

# Request type -> builder of the reply its client reads (LIST_REQUEST: ours, below).
_LIST_REPLIES = {
    T.USER_LIST_REQ: frames.user_list,
    T.CMD_LIST: frames.user_list,
    T.LIST: frames.user_list,
    T.WHO: frames.who,
}


def key_form(state: RouterState, conn: int) -> KeyForm:
    """The key encoding the user on `conn` said hello with (ours if unknown)."""
    return state.key_forms.get(conn, KeyForm.DER_B64URL)


def list_reply(state: RouterState, link: PeerLink, frame: Envelope) -> Action:
    reply = _LIST_REPLIES.get(T(frame.type))
    if reply is None:
        after = frame.payload.get("after")
        return list_response(state, link, after if isinstance(after, str) else "")
    return send_one(link.conn, reply(state.me.server_id, link.peer_id, state.now_ms, list(state.user_locations)))


def key_lookup(state: RouterState, link: PeerLink, frame: Envelope) -> Action:
    wanted = frame.payload["user_id"]
    record = state.users.get(wanted)
    pubkey = in_form(record.pubkey, key_form(state, link.conn)) if record is not None and record.pubkey else None
    build = frames.pubkey_response if frame.type == T.PUBKEY_REQUEST else frames.user_db_user
    return send_one(link.conn, build(state.me.server_id, link.peer_id, state.now_ms, wanted, pubkey))


def members_snapshot(state: RouterState, link: PeerLink) -> Action:
    """The members G17's client encrypts a public post to: those holding the group
    key this node issues (peer_channel.py), the only ones who can read it."""
    return send_one(link.conn, frames.public_members_snapshot(state.me.server_id, link.peer_id, state.now_ms,
                                                              list(state.peer_channel.members),
                                                              state.channel_version))
