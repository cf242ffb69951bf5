"""G17's register-then-login, mapped onto our login records (docs/store-and-login.md).

G17's client opens a connection and, before any hello, either registers a new user

    LOCAL_REGISTER (or REGISTER) {pubkey, privkey_store, pake_password}  -->
                                                  <--  ACK {msg_ref: "REGISTER_OK"}

or logs in with the password itself, then says its hello on the same connection:

    LOGIN_REQUEST {password}                   -->
                                               <--  LOGIN_SUCCESS {pubkey, privkey_store}
                                               or   LOGIN_FAIL {code, detail}
    USER_HELLO {pubkey, ...}                   -->  (users.hello, as for anyone)

Where the fields allow, this is our own login (roaming_login.py) in another dialect: the
registration becomes the user's key binding and login record (`bind_user`,
`set_login`; the record's `pake_password` is G17's argon2id hash, which our own
challenge flow treats as no login), and a password login obeys the same lockouts per
user id and per address. What differs, and why it is confined to this dialect:

- G17's client sends the password in clear, so the node checks an argon2id hash
  (`socp.protocol.password_hash`); each check costs the router ~0.3 s, so password
  checks draw `CHECK_COST` tokens from the node-wide login bucket (one a second);
- a registration binds a new user id to a key without proof that the client holds
  it, exactly as an unsigned USER_HELLO does for a new id; an id already known here
  (bound, registered or remote) is refused NAME_IN_USE;
- the connection stays open after LOGIN_SUCCESS or LOGIN_FAIL (G17's client goes on
  to its hello, or asks again); lockouts still bound the guesses.

Anything else answers an ERROR that says what we support, then closes.
"""

from __future__ import annotations

from socp.protocol import frames
from socp.protocol import password_hash as values
from socp.protocol.crypto import normalise_public_key
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode, SocpError
from socp.protocol.frame_types import PEER_REGISTER_TYPES
from socp.protocol.frame_types import FrameType as T
from socp.ratelimit import retry_hint

from . import directory, peer_channel, roaming_login
from .accounts import LoginRecord
from .core_io import Action, StoreWrite, send_one
from .peer_links import PeerLink
from .replies import refuse_and_close
from .state import RouterState, UserRecord

REGISTERED = "REGISTER_OK"     # ACK.msg_ref G17's client waits for
CHECK_COST = 20                # login-bucket tokens per password check (the bucket refills 20/s)
FAILED = "login failed: wrong user id or password"
SUPPORTED = ("this node logs in with LOGIN_REQUEST {user_id} then LOGIN_PROOF, or, for G17's client, "
             "LOGIN_REQUEST {password} after LOCAL_REGISTER")


def from_new_connection(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """A password frame on a connection that has not said hello: ours or G17's."""
    if frame.type in PEER_REGISTER_TYPES:
        return register(state, link, frame)
    if frame.type == T.LOGIN_REQUEST and "password" in frame.payload:
        return password_login(state, link, frame)
    if frame.type == T.LOGIN_REQUEST and "user_id" not in frame.payload:
        return refuse_and_close(state, link.conn, ErrorCode.MALFORMED, SUPPORTED)
    return roaming_login.from_new_connection(state, link, frame)


def register(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    user_id, payload = frame.from_, frame.payload
    if link.peer_id:
        return refuse_and_close(state, link.conn, ErrorCode.FORBIDDEN, "one registration per connection")
    if user_id in state.users or user_id in state.accounts.logins:
        return refuse_and_close(state, link.conn, ErrorCode.NAME_IN_USE, "this user id is registered already")
    try:
        values.parse_argon2(payload["pake_password"])
        pubkey = normalise_public_key(payload["pubkey"])
    except SocpError as exc:
        return refuse_and_close(state, link.conn, exc.code, exc.detail)
    link.peer_id = user_id
    state.users[user_id] = UserRecord(pubkey=pubkey)
    state.accounts.logins[user_id] = LoginRecord(payload["privkey_store"], payload["pake_password"])
    directory.record_changed(state, user_id)
    return [StoreWrite("bind_user", (user_id, pubkey, {})),
            StoreWrite("set_login", (user_id, payload["privkey_store"], payload["pake_password"])),
            send_one(link.conn, frames.ack(state.me.server_id, user_id, state.now_ms, REGISTERED))]


def password_login(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    user_id = frame.from_
    accounts = state.accounts
    waiting = roaming_login.lockout_detail(state, link, user_id)
    if waiting:
        return [_fail(state, link, user_id, ErrorCode.RATE_LIMITED, waiting)]
    bucket = accounts.bucket()
    if not bucket.take(CHECK_COST):
        return [_fail(state, link, user_id, ErrorCode.RATE_LIMITED,
                      "too many logins on this server now; " + retry_hint(bucket.retry_after(CHECK_COST)))]
    record = accounts.logins.get(user_id)
    user = state.users.get(user_id)
    may_log_in = record is not None and user is not None and not user.home_server and user_id not in accounts.revoked
    stored = None
    if may_log_in and record is not None:
        try:
            stored = values.parse_argon2(record.pake_password)
        except values.PeerLoginError:
            stored = None   # one of our own records: it logs in with a proof, not a password
    if stored is None or user is None or record is None or not values.check_password(stored, frame.payload["password"]):
        roaming_login.count_failed_login(state, link, user_id)
        return [_fail(state, link, user_id, ErrorCode.FORBIDDEN, FAILED)]
    accounts.logins_ok += 1
    accounts.lockouts.pop(user_id, None)
    peer_channel.logged_in(state.peer_channel, link.conn)   # its hello gets the group key
    return [send_one(link.conn, frames.login_success(state.me.server_id, user_id, state.now_ms, user.pubkey,
                                                     record.privkey_store))]


def _fail(state: RouterState, link: PeerLink, user_id: str, code: ErrorCode, detail: str) -> Action:
    return send_one(link.conn, frames.login_fail(state.me.server_id, user_id, state.now_ms, code, detail))
