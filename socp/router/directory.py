"""The directory (SOCP §10 "directory functions"): key look-ups and login records.

Rules, all answered from the router's mirror (`state.users`, `state.accounts`), never
from the database:

- DIRECTORY_GET {user_id} from a connected user → DIRECTORY_ENTRY {user_id, pubkey,
  server_id, remote, version, revoked} for a user registered here or learned from
  gossip (remote: true, server_id = its home server); USER_NOT_FOUND otherwise. The
  node signs every frame it sends over its payload (SOCP §5), so the entry carries
  the directory's signature over the user id and its key: `get_pubkey` of §10.
- `GET /directory/<user_id>` over HTTP (DirectoryQueried) gets the same entry, signed
  the same way, addressed to `*` (there is no asker); a miss is answered without a
  signature, since the gateway turns it into a plain 404.
- LOGIN_REGISTER {privkey_store, pake_password} from a connected user, for its own id
  only (`core` checks `from`), on a connection opened by a signed USER_HELLO whose
  signature was never seen before (fresh proof that it holds the key, `PeerLink.proved_key`;
  `abuse_rules.user_hello_problem` makes every later hello of that id signed too, and
  remembers the signatures across restarts): checked for shape, stored
  (StoreWrite set_login), mirrored, answered ACK.
- A remote user's key learned from verified gossip is written through
  (StoreWrite bind_remote_user); the store never lets it override a local binding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from socp.protocol import frames
from socp.protocol import login as login_values
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import BROADCAST

from .accounts import LoginRecord
from .core_io import Action, QueryAnswer, StoreWrite, send_one
from .replies import error_to

if TYPE_CHECKING:
    from socp.store.records import UserRecord as StoredUser

    from .peer_links import PeerLink
    from .state import RouterState, UserRecord

REGISTERED_ACK = "LOGIN_REGISTER"   # ACK.msg_ref answering a LOGIN_REGISTER


def load_user(state: RouterState, user_id: str, stored: StoredUser) -> None:
    """Mirror what the directory needs of one user of the start-up snapshot."""
    accounts = state.accounts
    accounts.versions[user_id] = stored.version
    if stored.revoked:
        accounts.revoked.add(user_id)
    if stored.home_server is None and stored.privkey_store and stored.pake_password:
        accounts.logins[user_id] = LoginRecord(stored.privkey_store, stored.pake_password)


def record_changed(state: RouterState, user_id: str) -> None:
    """The user's row changed in a way the store counts (its version bumps too)."""
    versions = state.accounts.versions
    versions[user_id] = versions.get(user_id, 0) + 1


def from_user(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    if frame.type == T.DIRECTORY_GET:
        return [lookup(state, link, frame.payload["user_id"])]
    if frame.type == T.LOGIN_REGISTER:
        return register(state, link, frame)
    return [error_to(state, link.conn, ErrorCode.UNKNOWN_TYPE, f"{frame.type} is not handled here")]


def entry(state: RouterState, user_id: str, to: str) -> Envelope | None:
    """The DIRECTORY_ENTRY for `user_id` (unsigned: the verifiers sign it), or None."""
    record = state.users.get(user_id)
    if record is None or not record.pubkey:
        return None
    accounts = state.accounts
    home = record.home_server or state.me.server_id
    return frames.directory_entry(state.me.server_id, to, state.now_ms, user_id, record.pubkey, home,
                                  bool(record.home_server), accounts.versions.get(user_id, 1),
                                  user_id in accounts.revoked)


def not_found(user_id: str) -> str:
    return f"no key known for user {user_id}"


def lookup(state: RouterState, link: PeerLink, user_id: str) -> Action:
    found = entry(state, user_id, link.peer_id)
    if found is None:
        return error_to(state, link.conn, ErrorCode.USER_NOT_FOUND, not_found(user_id))
    return send_one(link.conn, found)


def query(state: RouterState, query_id: int, user_id: str) -> QueryAnswer:
    """An HTTP look-up: the same entry as DIRECTORY_GET gets, or a miss."""
    found = entry(state, user_id, BROADCAST)
    return QueryAnswer(query_id, found, "" if found is not None else not_found(user_id))


def register(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    user_id = link.peer_id
    record = state.users.get(user_id)
    if record is None or record.home_server:
        return [error_to(state, link.conn, ErrorCode.FORBIDDEN, "only a user registered here may store a login")]
    if not link.proved_key:
        # An unsigned hello proves nothing: whoever knows the public key could send it
        # and replace the owner's login record. Nor does the id having signed before:
        # the proof must be this connection's own.
        return [error_to(state, link.conn, ErrorCode.FORBIDDEN,
                         "store a login only on a connection opened with a signed USER_HELLO")]
    privkey_store, pake_password = frame.payload["privkey_store"], frame.payload["pake_password"]
    try:
        login_values.check_privkey_store(privkey_store)
        login_values.parse_verifier(pake_password)
    except login_values.LoginError as exc:
        return [error_to(state, link.conn, ErrorCode.MALFORMED, exc.detail)]
    state.accounts.logins[user_id] = LoginRecord(privkey_store, pake_password)
    state.accounts.lockouts.pop(user_id, None)   # a new password starts with a clean slate
    record_changed(state, user_id)
    return [StoreWrite("set_login", (user_id, privkey_store, pake_password)),
            send_one(link.conn, frames.ack(state.me.server_id, user_id, state.now_ms, REGISTERED_ACK))]


def remote_user_learned(state: RouterState, user_id: str, before: UserRecord | None) -> list[Action]:
    """Federation accepted a USER_ADVERTISE and updated `state.users[user_id]`; persist
    the remote user's key if something the directory shows changed."""
    record = state.users.get(user_id)
    if record is None or not record.home_server or not record.pubkey:
        return []
    if before is not None and (before.pubkey, before.home_server, before.display_name) == (
            record.pubkey, record.home_server, record.display_name):
        return []
    if before is None or before.home_server:
        record_changed(state, user_id)   # a local binding is not changed by gossip (the store agrees)
    meta: dict[str, Any] = {"display_name": record.display_name} if record.display_name else {}
    return [StoreWrite("bind_remote_user", (user_id, record.pubkey, record.home_server, meta))]
