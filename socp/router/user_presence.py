"""Presence pushed to local users (interop table, "presence to users").

Some clients learn who is online, and their keys, only from USER_ADVERTISE frames
their server pushes to them (G56's has no list request): so every local user gets

- at its hello, a USER_ADVERTISE {user_id, server_id, meta: {pubkey, name}} for every
  user it may address (the catch-up);
- on every later change, a USER_ADVERTISE for a user who came (or whose key or
  server changed), or a USER_REMOVE {user_id, server_id} for one who left.

Batched: hellos, leaves and relayed presence only mark users (`joined`, `left`,
`watched`/`note_moves`); `flush` runs once per batch of router events (with
`announce_joins`). Each change is then one frame to every user, and each catch-up
advert one frame to all of the batch's newcomers, one signature per key form,
instead of a round of pushes per hello.

The key in meta.pubkey is in the encoding each recipient's hello used (key_forms).

Our own client and the bench (hello `client` in OWN_CLIENTS) get no pushes: they ask
LIST_REQUEST and the directory instead, and pushing every hello to every user is
n^2 frames for n users (the bench's 1,280 users would get 1.6 million).
"""

from __future__ import annotations

from typing import Any

from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import BROADCAST
from socp.protocol.key_forms import KeyForm, in_form

from .core_io import Action, Event, FrameIn, Send
from .state import LOCAL, RouterState

_PRESENCE_TYPES = frozenset({T.USER_ADVERTISE, T.USER_REMOVE})

Watched = tuple[str, str | None, str] | None     # (user_id, location, pubkey) before an event

OWN_CLIENTS = frozenset({"socp-cli", "socp-bench"})   # USER_HELLO `client` of socp's client and bench


def joined(state: RouterState, user_id: str, conn: int, client: object) -> None:
    """A local user said hello: everyone is told, and it gets the catch-up unless
    it is one of ours."""
    state.presence_changed[user_id] = None
    if client not in OWN_CLIENTS:
        state.presence_listeners.add(conn)
        state.presence_newcomers[user_id] = None


def left(state: RouterState, user_id: str) -> None:
    state.presence_newcomers.pop(user_id, None)
    state.presence_changed[user_id] = None


def watched(state: RouterState, event: Event) -> Watched:
    """Before the router applies `event`: where is the user a presence frame names?"""
    if not isinstance(event, FrameIn) or event.frame.type not in _PRESENCE_TYPES:
        return None
    link = state.links.get(event.conn)
    user_id = event.frame.payload.get("user_id")
    if link is None or not link.is_server or not isinstance(user_id, str):
        return None
    record = state.users.get(user_id)
    return user_id, state.user_locations.get(user_id), record.pubkey if record else ""


def note_moves(state: RouterState, before: Watched) -> None:
    """After it: mark the user if federation moved it, removed it, or changed its key."""
    if before is None:
        return
    user_id, location, pubkey = before
    record = state.users.get(user_id)
    if state.user_locations.get(user_id) != location or (record.pubkey if record else "") != pubkey:
        state.presence_changed[user_id] = None


def flush(state: RouterState) -> list[Action]:
    """The pushes for everything marked since the last flush."""
    if not state.presence_changed and not state.presence_newcomers:
        return []
    changed, state.presence_changed = state.presence_changed, {}
    newcomers, state.presence_newcomers = state.presence_newcomers, {}
    listening = _listening_users(state)
    if not listening:
        return []
    fresh = {user_id: conn for user_id, conn in listening.items() if user_id in newcomers}
    others = {user_id: conn for user_id, conn in listening.items() if user_id not in fresh}
    actions: list[Action] = []
    for user_id in changed:   # newcomers learn these from their catch-up
        conns = [conn for other, conn in others.items() if other != user_id]
        actions += _tell(state, user_id, conns)
    if fresh:
        for user_id in sorted(state.user_locations):
            conns = [conn for newcomer, conn in fresh.items() if newcomer != user_id]
            actions += _tell(state, user_id, conns)
    return actions


def _listening_users(state: RouterState) -> dict[str, int]:
    """Local users that get pushes, by user id, in the order they connected. Found
    from the listeners, not by a walk over every local user: flush runs after every
    batch, and a node with 10,000 users of our own client and none listening would
    otherwise walk them all for each presence change a resync brings."""
    listening: list[tuple[int, str]] = []
    for conn in state.presence_listeners:
        link = state.links.get(conn)
        if link is not None and state.local_users.get(link.peer_id) == conn:
            listening.append((conn, link.peer_id))
    return {user_id: conn for conn, user_id in sorted(listening)}


def _tell(state: RouterState, user_id: str, conns: list[int]) -> list[Action]:
    """USER_ADVERTISE if the user is present, else USER_REMOVE, to `conns`. A user
    whose key no server gave (G17's adverts carry none) is advertised without one."""
    if not conns:
        return []
    me = state.me.server_id
    location = state.user_locations.get(user_id)
    if location is None:
        payload: dict[str, Any] = {"user_id": user_id, "server_id": me}
        return [Send(tuple((conn, BROADCAST) for conn in conns),
                     Envelope(type=T.USER_REMOVE.value, from_=me, to=BROADCAST, ts=state.now_ms, payload=payload))]
    record = state.users.get(user_id)
    pubkey = record.pubkey if record is not None else ""
    by_form: dict[KeyForm, list[int]] = {}
    for conn in conns:
        form = state.key_forms.get(conn, KeyForm.DER_B64URL) if pubkey else KeyForm.DER_B64URL
        by_form.setdefault(form, []).append(conn)
    home = me if location == LOCAL else location
    actions: list[Action] = []
    for form, targets in by_form.items():
        meta: dict[str, Any] = {"pubkey": in_form(pubkey, form)} if pubkey else {}
        if record is not None and record.display_name:
            meta["name"] = meta["display_name"] = record.display_name
        payload = {"user_id": user_id, "server_id": home, "meta": meta}
        actions.append(Send(tuple((conn, BROADCAST) for conn in targets),
                            Envelope(type=T.USER_ADVERTISE.value, from_=me, to=BROADCAST, ts=state.now_ms,
                                     payload=payload)))
    return actions
