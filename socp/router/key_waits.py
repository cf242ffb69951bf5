"""Key look-ups for a user whose server advertises no key (G45, G17): ask, then answer.

G45's and G17's servers advertise their users without a key; we ask the user's server
(`ask_key`: DB_GET_USER or PUBKEY_REQUEST) when the advert comes. G17 answers from its
own user table, which its users fill with a REGISTER; a client that registers after its
hello (ours does: it waits for the server to name itself) is advertised first, so the
answer to that first question is `pubkey: null`, and nothing asked again: every later
look-up of that user missed ("no key known for user ...", issue #14, G17 (c)).

So a local user's look-up (DIRECTORY_GET, PUBKEY_REQUEST, USER_DB_GET) of such a user
asks its server again, and is held until the answer comes (`answer_held`), then
answered as it would have been with what we know by then. Bounded: at most
`HELD_PER_USER` look-ups per wanted user (more are answered at once) and `HELD_USERS`
users (the oldest wait is answered when a new one needs room). A user whose server
has no key question (our own dialect: adverts carry keys) is answered at once.
"""

from __future__ import annotations

from socp.ipc.link_state import LinkState
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T

from . import client_dialects, directory, link_dialects
from .core_io import Action, send_one
from .peer_links import PeerLink
from .state import RouterState

KEY_LOOKUPS_LIMIT = 10_000     # users whose key we asked a server for and still wait on
HELD_USERS = 1_000             # users with look-ups held for their key
HELD_PER_USER = 8              # look-ups held per wanted user


def ask_key(state: RouterState, link: PeerLink, user_id: str) -> list[Action]:
    """A user we know only by id: ask its server for the key, in its own dialect."""
    record = state.users.get(user_id)
    if (record is not None and record.pubkey) or state.key_lookups.get(user_id) == link.peer_id:
        return []
    question = link_dialects.key_lookup(state.linkbook.dialect_of(link.server_address), state.me.server_id,
                                        link.peer_id, state.now_ms, user_id)
    if question is None:
        return []
    if len(state.key_lookups) >= KEY_LOOKUPS_LIMIT:
        state.key_lookups.pop(next(iter(state.key_lookups)))
    state.key_lookups[user_id] = link.peer_id
    return [send_one(link.conn, question)]


def lookup(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """A local user asks for `frame.payload["user_id"]`'s key: answer now, or, for a
    keyless user of a linked server we can ask, ask and hold the answer."""
    wanted = frame.payload["user_id"]
    record = state.users.get(wanted)
    server_link = _home_link(state, wanted)
    if (record is not None and record.pubkey) or server_link is None:
        return [_answer(state, link, frame)]
    if len(state.held_key_lookups.get(wanted, ())) >= HELD_PER_USER:
        return [_answer(state, link, frame)]
    asked = ask_key(state, server_link, wanted)
    if not asked and state.key_lookups.get(wanted) != server_link.peer_id:
        return [_answer(state, link, frame)]   # its dialect has no key question
    evicted: list[Action] = []
    if wanted not in state.held_key_lookups and len(state.held_key_lookups) >= HELD_USERS:
        # The oldest wait is answered now with what we know (a server that never answers
        # must not keep the table full).
        evicted = answer_held(state, next(iter(state.held_key_lookups)))
    state.held_key_lookups.setdefault(wanted, []).append((link.conn, frame))
    return evicted + asked


def answer_held(state: RouterState, user_id: str) -> list[Action]:
    """The user's server answered (with a key or without): answer the look-ups held for it."""
    actions: list[Action] = []
    for conn, frame in state.held_key_lookups.pop(user_id, []):
        link = state.links.get(conn)
        if link is not None and link.state is LinkState.USER and link.peer_id == frame.from_:
            actions.append(_answer(state, link, frame))
    return actions


def _home_link(state: RouterState, user_id: str) -> PeerLink | None:
    """The link to the server `user_id` is at, if it is a linked server."""
    conn = state.servers.get(state.user_locations.get(user_id) or "")
    link = state.links.get(conn) if conn is not None else None
    return link if link is not None and link.state is LinkState.JOINED else None


def _answer(state: RouterState, link: PeerLink, frame: Envelope) -> Action:
    if frame.type == T.DIRECTORY_GET:
        return directory.lookup(state, link, frame.payload["user_id"])
    return client_dialects.key_lookup(state, link, frame)
