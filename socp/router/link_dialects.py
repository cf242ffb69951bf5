"""Other teams' server-link habits, and the few frames we send only in their dialect
(issue #14, server links; docs/interop.md "Server links").

We always emit the standard's frames; these are extras a peer needs to work with
us, each sent only on a link whose dialect asks for it:

- G45 (`master_server_<uuid>` / `server_<uuid>` ids, `role` in its hello and
  welcome) keeps users' keys in a directory on its master: its clients look keys up
  there, so we register our users' keys with it (DB_REGISTER), and we ask it for the
  keys of its users (DB_GET_USER → DB_USER), since its USER_ADVERTISE carries none.
- G17 (`server_pub` and `snapshot` in its welcome, `ws_uri` in its hello) answers
  PUBKEY_REQUEST with PUBKEY_RESPONSE; its USER_ADVERTISE carries no key either.
- G56 needs nothing extra here (its adverts carry `meta.pubkey`).
- G101, only where the operator opted in for its pinned key (bootstrap `g101_link:
  true`): our link openings signed over the whole envelope (federation.py), our DM
  relays in its shape (`adapt_g101`); the gateway reads its frames (protocol/g101_link.py),
  and its USER_REMOVE, which names no server, is read here (`g101_remove_origin`).

Which dialect a link speaks is judged from its opening frames only (`of_opening`),
and recorded in the link book.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from socp.protocol import frames, g101_link
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T
from socp.protocol.key_forms import KeyForm, form_of, in_form

from .core_io import Action, Send

if TYPE_CHECKING:
    from socp.bootstrap_file import Introducer

    from .state import RouterState

G45, G17, G56, G101 = "g45", "g17", "g56", "g101"
G101_OPT_IN = "g101_link"   # the bootstrap key; also what a link row shows under it
# G101's USER_REMOVE says it is `from` this word, not its server id (its server.py
# cleanup_user), and names no server_id (protocol/g101_link.py then copies "server").
G101_REMOVER = g101_link.NAMELESS_SERVER

def of_opening(frame: Envelope) -> str:
    """The dialect a server hello or welcome shows; "" when it looks like ours."""
    payload = frame.payload
    if "role" in payload or frame.from_.startswith(("master_server_", "server_")):
        return G45
    # Our own SERVER_WELCOME carries server_pub too (for G17), beside its server lists.
    ours = "servers" in payload or "clients" in payload
    if not ours and ("server_pub" in payload or "snapshot" in payload or "ws_uri" in payload):
        return G17
    if (frame.type in (T.SERVER_WELCOME, T.SERVER_HELLO_JOIN) and "server_id" in payload and "pubkey" in payload
            and "servers" not in payload):
        return G101
    pubkey = payload.get("pubkey")
    if isinstance(pubkey, str) and form_of(pubkey) is not KeyForm.DER_B64URL and not frame.sig:
        return G56
    return ""


def key_lookup(dialect: str, me: str, server_id: str, now_ms: int, user_id: str) -> Envelope | None:
    """The frame that asks `server_id` for `user_id`'s key, in its dialect; None if
    that dialect has no such question (its adverts carry keys, or it has none)."""
    if dialect == G45:
        return frames.db_get_user(me, server_id, now_ms, user_id, f"key-{user_id}"[:128])
    if dialect == G17:
        return frames.pubkey_request(me, server_id, now_ms, user_id)
    return None


def key_answer(frame: Envelope) -> tuple[str, str]:
    """(user_id, pubkey or "") from DB_USER, USER_DB_USER, PUBKEY_RESPONSE or DB_REGISTER."""
    payload = frame.payload
    pubkey = payload.get("pubkey")
    if frame.type in (T.DB_USER, T.USER_DB_USER) and not payload.get("found"):
        pubkey = ""
    return payload["user_id"], pubkey if isinstance(pubkey, str) else ""


def register_users(state: RouterState, conn: int, server_id: str, user_ids: list[str]) -> list[Action]:
    """G45: put our users' keys in its master's directory, where its clients look."""
    actions: list[Action] = []
    for user_id in user_ids:
        record = state.users.get(user_id)
        if record is None or not record.pubkey:
            continue
        frame = frames.db_register(state.me.server_id, server_id, state.now_ms, user_id, record.pubkey)
        actions.append(Send(((conn, server_id),), frame))
    return actions


def user_joined(state: RouterState, user_id: str) -> list[Action]:
    """A user said hello here: register its key with every G45 peer linked now."""
    actions: list[Action] = []
    for server_id, conn in sorted(state.servers.items()):
        link = state.links.get(conn)
        if link is not None and state.linkbook.dialect_of(link.server_address) == G45:
            actions += register_users(state, conn, server_id, [user_id])
    return actions


def deliver_extras(state: RouterState, server_id: str, ts: int) -> dict[str, Any]:
    """Fields a peer needs in our SERVER_DELIVER beyond the standard's: G17 stamps the
    frame it hands its user with `payload.orig_ts` (else its own clock), and its
    client checks content_sig against that."""
    conn = state.servers.get(server_id)
    link = state.links.get(conn) if conn is not None else None
    if link is not None and state.linkbook.dialect_of(link.server_address) == G17:
        return {"orig_ts": ts}
    return {}


# Frames whose payload hands a user's key to a peer server, and where the key is.
_KEY_PATHS = {T.USER_ADVERTISE.value: ("meta", "pubkey"), T.SERVER_DELIVER.value: ("sender_pub",),
              T.MSG_PUBLIC_CHANNEL.value: ("sender_pub",)}


Adapt = Callable[[Action], list[Action]]


def adapter(state: RouterState) -> Adapt | None:
    """What turns one action into its copies for the links it goes on, each copy in
    the form its peers read (every other link gets the frame unchanged); None while
    no peer of another dialect is in the link book. core._hand_on calls it once per
    event and applies it in its one pass over the actions."""
    entries = state.linkbook.entries.values()
    steps: list[Adapt] = []
    if any(entry.dialect == G45 for entry in entries):
        steps.append(functools.partial(adapt_g45_id, state))
    if any(entry.dialect == G56 for entry in entries):
        steps.append(functools.partial(adapt_keys, state))
    if any(entry.opt_in == G101_OPT_IN for entry in entries):
        steps.append(functools.partial(adapt_g101, state))
    if not steps:
        return None

    def adapt(action: Action) -> list[Action]:
        copies = [action]
        for step in steps:
            copies = [adapted for copy in copies for adapted in step(copy)]
        return copies

    return adapt


def g45_alias(server_id: str) -> str:
    """The name we go by on a G45 link whose bootstrap entry opted in
    (`g45_server_alias: true`): G45 routes a user's messages only to a location whose
    id starts `server_` or `master_server_` (its own id shapes), and our id is a UUID.
    The reference says we emit UUID v4 ids (SOCP interop table, "ids"), so this is a
    departure the operator chooses per peer; the pinned key identifies us either way.
    Used on that link only, in `from` and in the `server_id` of our own adverts."""
    return f"server_{server_id}"


def record(state: RouterState, address: str, dialect: str) -> None:
    """Note whose habits the peer at `address` has, whether we go by our G45 alias
    with it (only a G45 peer whose address a bootstrap entry names with
    `g45_server_alias: true`), and which opt-in of its entry the link runs under.
    Shown in its link row (`goes_by`, `opt_in`)."""
    book = state.linkbook
    book.set_dialect(address, dialect, state.now_ms)
    entry = next((e for e in state.introducers if f"{e.host}:{e.port}" == address), None)
    spoken = book.dialect_of(address)
    aliased = entry is not None and entry.g45_alias and spoken == G45
    book.set_goes_by(address, g45_alias(state.me.server_id) if aliased else "")
    book.set_opt_in(address, _opt_in(entry, spoken))


def _opt_in(entry: Introducer | None, dialect: str) -> str:
    """The bootstrap key under which we depart from the reference on this link."""
    if entry is None:
        return ""
    if entry.g101_link and dialect == G101:
        return G101_OPT_IN
    if entry.g45_alias and dialect == G45:
        return "g45_server_alias"
    return "unsigned_link" if entry.unsigned_link else ""


def g101_remove_origin(state: RouterState, conn: int, peer_id: str, frame: Envelope) -> Envelope | None:
    """G101's USER_REMOVE (`from: "server"`, no server_id, unsigned), read as from the
    server at the other end of `conn`, or None where it may not be: only on a link
    opted in to G101's form (bootstrap `g101_link`), and only for a user that link's
    server is home to here (its own advert put it there), so "server" can take off
    no user of ours or of any other server. Anything else is left to the reference's
    rules (and refused there)."""
    if frame.type != T.USER_REMOVE.value or frame.from_ != G101_REMOVER:
        return None
    if frame.payload.get("server_id") != G101_REMOVER or _opt_in_of_conn(state, conn) != G101_OPT_IN:
        return None
    user_id = frame.payload.get("user_id")
    if not isinstance(user_id, str) or state.user_locations.get(user_id) != peer_id:
        return None
    return Envelope(type=frame.type, from_=peer_id, to=frame.to, ts=frame.ts,
                    payload={**frame.payload, "server_id": peer_id}, sig=frame.sig)


def speaks_g101(state: RouterState, pubkey: str) -> bool:
    """Is `pubkey` (as we write keys) pinned by a bootstrap entry with `g101_link:
    true`? Then our link openings to that server are signed G101's way (over the
    whole envelope, protocol/g101_link.py), the only form it checks."""
    return any(entry.g101_link and entry.pubkey == pubkey for entry in state.introducers)


def goes_by_alias(state: RouterState, address: str) -> bool:
    return bool(address) and bool(state.linkbook.goes_by(address))


def adapt_g45_id(state: RouterState, action: Action) -> list[Action]:
    """Our frames on G45 links: a user's FILE_* in G45's relay form on every G45 link;
    our own id replaced by our alias on the links that opted in."""
    me = state.me.server_id
    if not isinstance(action, Send) or (action.frame.from_ != me and action.frame.type not in _FILE_TYPES):
        return [action]
    alias = g45_alias(me)

    def aliased(conn: int) -> bool:
        return _dialect_of_conn(state, conn) == G45 and goes_by_alias(state, _address_of_conn(state, conn))

    def plain_g45(conn: int) -> bool:
        return _dialect_of_conn(state, conn) == G45 and not aliased(conn)

    adapted: list[Action] = []
    for part in _split_for(state, action, aliased, lambda frame: _as_alias(frame, me, alias)):
        if isinstance(part, Send) and part.frame is action.frame and action.frame.type in _FILE_TYPES:
            adapted += _split_for(state, part, plain_g45, lambda frame: _as_alias(frame, me, me))
        else:
            adapted.append(part)
    return adapted


def _split_for(state: RouterState, action: Send, chosen: Callable[[int], bool],
               rewrite: Callable[[Envelope], Envelope]) -> list[Action]:
    """`action` as it is for every target but the links `chosen` picks, which get
    `rewrite(frame)` instead."""
    ours = tuple(t for t in action.targets if chosen(t[0]))
    if not ours:
        return [action]
    rest = tuple(t for t in action.targets if t not in ours)
    split: list[Action] = [Send(rest, action.frame, action.whole_envelope)] if rest else []
    return split + [Send(ours, rewrite(action.frame), action.whole_envelope)]


_FILE_TYPES = frozenset({T.FILE_START.value, T.FILE_CHUNK.value, T.FILE_END.value})


def _as_alias(frame: Envelope, me: str, alias: str) -> Envelope:
    """Our frame under the name we go by on a G45 link (`alias`, which is `me` without
    the opt-in). A user's FILE_* goes as G45 relays one between its servers: from the
    server, the recipient in `payload.user_id`, the sender in FILE_START's `sender`
    (G45 checks every server frame with the key of its `from`)."""
    payload = frame.payload
    if payload.get("server_id") == me and alias != me:
        payload = {**payload, "server_id": alias}
    if frame.type in _FILE_TYPES and frame.from_ != me:
        payload = {**payload, "user_id": frame.to}
        if frame.type == T.FILE_START.value:
            payload["sender"] = frame.from_
    return Envelope(type=frame.type, from_=alias, to=frame.to, ts=frame.ts, payload=payload)


def adapt_keys(state: RouterState, action: Action) -> list[Action]:
    """G56's clients read a key only as base64url(PEM), and G56 passes our adverts
    and deliveries on to them as they are: the copy of such a frame for a G56 link
    carries the key in that form (same key; content_sig does not cover it). Every
    other link gets the frame unchanged."""
    path = _KEY_PATHS.get(action.frame.type) if isinstance(action, Send) else None
    if path is None or not isinstance(action, Send):
        return [action]
    return _split_for(state, action, lambda conn: _dialect_of_conn(state, conn) == G56,
                      functools.partial(_with_key_form, path=path, form=KeyForm.PEM_B64URL))


def adapt_g101(state: RouterState, action: Action) -> list[Action]:
    """Our SERVER_DELIVER on a link opted in to G101's form (bootstrap `g101_link`;
    a peer that only looks like G101 gets the reference's) goes as G101 relays a DM
    (g101_link.its_deliver), addressed to the user itself."""
    if not isinstance(action, Send) or action.frame.type != T.SERVER_DELIVER.value:
        return [action]
    ours = tuple(conn for conn, _ in action.targets if _opt_in_of_conn(state, conn) == G101_OPT_IN)
    if not ours or "user_id" not in action.frame.payload:
        return [action]
    rest = tuple(target for target in action.targets if target[0] not in ours)
    theirs = g101_link.its_deliver(action.frame)
    copies: list[Action] = [Send(rest, action.frame)] if rest else []
    return copies + [Send(tuple((conn, theirs.to) for conn in ours), theirs)]


def _address_of_conn(state: RouterState, conn: int) -> str:
    link = state.links.get(conn)
    return link.server_address if link is not None else ""


def _opt_in_of_conn(state: RouterState, conn: int) -> str:
    entry = state.linkbook.entries.get(_address_of_conn(state, conn))
    return entry.opt_in if entry is not None else ""


def _dialect_of_conn(state: RouterState, conn: int) -> str:
    address = _address_of_conn(state, conn)
    return state.linkbook.dialect_of(address) if address else ""


def _with_key_form(frame: Envelope, path: tuple[str, ...], form: KeyForm) -> Envelope:
    payload = dict(frame.payload)
    holder = payload
    for name in path[:-1]:
        inner = holder.get(name)
        if not isinstance(inner, dict):
            return frame
        holder[name] = inner = dict(inner)
        holder = inner
    key = holder.get(path[-1])
    if not isinstance(key, str) or not key:
        return frame
    holder[path[-1]] = in_form(key, form)
    return Envelope(type=frame.type, from_=frame.from_, to=frame.to, ts=frame.ts, payload=payload)


def seen_key(state: RouterState, address: str, frame: Envelope, payload_digest: bytes) -> tuple[Any, ...]:
    """The duplicate-cache key of a frame from the peer server at `address`. G45 sends
    a public message once per server id it knows for us (our id and, with the alias
    opt-in, `server_<our id>`), each copy with its own `to` and a new envelope `ts`
    (seen live: shown twice); the payload, the user's post with its own `from`, `ts`
    and signature, is the same: one post, one key."""
    if frame.type == T.MSG_PUBLIC_CHANNEL and address and state.linkbook.dialect_of(address) == G45:
        return ("g45-public", frame.from_, payload_digest)
    return (frame.ts, frame.from_, frame.to, payload_digest)


def orig_ts(payload: dict[str, Any], ts: int) -> int:
    """G17 stamps SERVER_DELIVER with its own time and keeps the sender's in
    `payload.orig_ts`; content_sig covers the sender's."""
    value = payload.get("orig_ts")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else ts
