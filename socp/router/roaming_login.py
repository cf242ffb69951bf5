"""Password login that roams (SOCP §10 "recommended login"; socp.protocol.login).

A connection with no key yet opens with LOGIN_REQUEST instead of USER_HELLO. The
gateway gives it no role, so its frames reach the router while the link awaits a
hello; the whole exchange happens in that state, and the connection is closed after
it (the client then says a signed USER_HELLO on a new connection):

    client                                  node
    LOGIN_REQUEST {user_id}            -->
                                       <--  LOGIN_CHALLENGE {nonce, salt, params}
    LOGIN_PROOF {user_id, proof}       -->
                                       <--  LOGIN_BLOB {user_id, privkey_store, pubkey}, close 1000
                                       or   ERROR FORBIDDEN "login failed: ...", close 1008
                                       or   ERROR RATE_LIMITED "... retry after N ms ...", close 1008

Rules:
- one login per connection: a second LOGIN_REQUEST, or a proof without a challenge
  on this connection, closes it;
- the nonce is fresh per connection (`accounts.random_bytes`), so a proof an
  eavesdropper saw is worth nothing on the next connection;
- no user enumeration: an id with no login here (unknown, remote, revoked) gets a
  challenge of the same shape, with a salt that is stable for that id (keyed by a
  secret of this router), the default params, and after any proof the same ERROR as
  a wrong password;
- wrong passwords are limited per user id: after `free_failures` failures the id is
  locked for `lockout_ms`, doubling with each further failure up to
  `max_lockout_ms`; while locked, LOGIN_REQUEST and LOGIN_PROOF are answered
  RATE_LIMITED with the retry time. A success clears the count;
- wrong passwords are also limited per remote address, whatever ids they try (one
  guesser spraying many ids): the gateway announces a login connection with its
  address (ipc LinkOpened, `link_accepted` here). After `address_failures` failures
  within `address_window_ms`, the address's LOGIN_REQUEST and LOGIN_PROOF are
  answered RATE_LIMITED until the oldest of them ages out of the window, for every
  id alike, known or not, right password or not (an answer that differed would tell
  a guesser which password is right). A success does not clear an address's count:
  a guesser with one account of its own could otherwise reset it between guesses.
  IPv6 addresses count per /64, the block one host usually holds;
- every challenge costs the node a signature, so challenges are also limited
  node-wide (a token bucket), answered RATE_LIMITED when it is empty.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections import deque

from socp.ipc.link_state import LinkState
from socp.ipc.messages import CLOSE_NORMAL, CLOSE_POLICY_VIOLATION
from socp.protocol import frames
from socp.protocol import login as login_values
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode
from socp.protocol.frame_types import FrameType as T
from socp.ratelimit import retry_hint

from .accounts import Accounts, Challenge, Lockout
from .core_io import Action, Close, send_one
from .peer_links import PeerLink
from .state import RouterState

FAILED = "login failed: wrong user id or password"


def link_accepted(state: RouterState, conn: int, address: str) -> list[Action]:
    """The gateway accepted a connection that opens with a login, from `address`."""
    state.links[conn] = PeerLink(conn=conn, state=LinkState.AWAITING_HELLO, last_heard_ms=state.now_ms,
                             address=address_key(address))
    return []


def address_key(address: str) -> str:
    """What failures are counted under: an IPv4 address, or an IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def from_new_connection(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """LOGIN_REQUEST or LOGIN_PROOF on a link that has not said hello."""
    accounts = state.accounts
    accounts.now_ms = state.now_ms
    if frame.type == T.LOGIN_REQUEST:
        return _request(state, link, frame)
    if frame.type == T.LOGIN_PROOF:
        return _proof(state, link, frame)
    return _refuse(state, link, frame.from_, ErrorCode.FORBIDDEN, f"{frame.type} does not belong to a login")


def _request(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    accounts = state.accounts
    user_id = frame.payload["user_id"]
    if frame.from_ != user_id:
        return _refuse(state, link, frame.from_, ErrorCode.FORBIDDEN, "`from` must be the user id logging in")
    if link.conn in accounts.challenges:
        return _refuse(state, link, user_id, ErrorCode.FORBIDDEN, "one login per connection")
    refused = _locked(state, link, user_id)
    if refused is not None:
        return refused
    bucket = accounts.bucket()
    if not bucket.take():
        return _refuse(state, link, user_id, ErrorCode.RATE_LIMITED,
                       "too many logins on this server now; " + retry_hint(bucket.retry_after()))
    nonce = accounts.random_bytes(login_values.NONCE_BYTES)
    _remember_challenge(accounts, link.conn, Challenge(user_id, nonce,
                                                       state.now_ms + accounts.settings.challenge_ttl_ms))
    verifier, _ = _verifier_for(state, user_id)
    fields = login_values.challenge_fields(verifier, nonce)
    challenge = frames.login_challenge(state.me.server_id, user_id, state.now_ms, fields["nonce"], fields["salt"],
                                       fields["params"])
    return [send_one(link.conn, challenge)]


def _proof(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    accounts = state.accounts
    user_id = frame.payload["user_id"]
    challenge = accounts.challenges.pop(link.conn, None)
    if challenge is None or challenge.user_id != user_id or frame.from_ != user_id:
        return _refuse(state, link, user_id, ErrorCode.FORBIDDEN, "LOGIN_PROOF must answer this connection's challenge")
    if state.now_ms > challenge.expires_at_ms:
        return _refuse(state, link, user_id, ErrorCode.TIMEOUT, "the login challenge expired; start again")
    refused = _locked(state, link, user_id)
    if refused is not None:
        return refused
    verifier, real = _verifier_for(state, user_id)
    # The check runs for decoys too, so both answers take the same time.
    proof_ok = login_values.check_proof(verifier, frame.payload["proof"], challenge.nonce, user_id,
                                        state.me.server_id)
    if not (proof_ok and real):
        accounts.logins_failed += 1
        _count_failure(accounts, user_id)
        if link.address:
            _count_address_failure(accounts, link.address)
        return _refuse(state, link, user_id, ErrorCode.FORBIDDEN, FAILED)
    accounts.logins_ok += 1
    accounts.lockouts.pop(user_id, None)
    record = accounts.logins[user_id]
    blob = frames.login_blob(state.me.server_id, user_id, state.now_ms, record.privkey_store,
                             state.users[user_id].pubkey)
    link.move(LinkState.CLOSING)
    return [send_one(link.conn, blob), Close(link.conn, CLOSE_NORMAL, "login done: say USER_HELLO on a new connection")]


# --- verifiers, decoys and lockouts ----------------------------------------------------------


def _verifier_for(state: RouterState, user_id: str) -> tuple[login_values.Verifier, bool]:
    """(verifier, True) for a user that may log in here; else (a decoy, False)."""
    accounts = state.accounts
    record = accounts.logins.get(user_id)
    user = state.users.get(user_id)
    if record is not None and user is not None and not user.home_server and user_id not in accounts.revoked:
        try:
            return login_values.parse_verifier(record.pake_password), True
        except login_values.LoginError:
            pass   # a damaged record logs nobody in; answer like any other id
    return _decoy(accounts, user_id), False


def _decoy(accounts: Accounts, user_id: str) -> login_values.Verifier:
    """The same salt for the same id every time, as a real record would give."""
    digest = hmac.new(accounts.decoy_secret, b"decoy\x00" + user_id.encode("utf-8"), hashlib.sha256).digest()
    return login_values.Verifier(login_values.DEFAULT_PARAMS, digest[:login_values.SALT_BYTES],
                                 hashlib.sha256(digest).digest())


def _remember_challenge(accounts: Accounts, conn: int, challenge: Challenge) -> None:
    challenges = accounts.challenges
    # Insertion order is expiry order (one TTL): sweep the expired, then bound the count.
    while challenges and next(iter(challenges.values())).expires_at_ms < accounts.now_ms:
        challenges.popitem(last=False)
    challenges[conn] = challenge
    while len(challenges) > accounts.settings.max_challenges:
        challenges.popitem(last=False)


def _locked(state: RouterState, link: PeerLink, user_id: str) -> list[Action] | None:
    """RATE_LIMITED and close if the address or the id is locked; None otherwise."""
    accounts = state.accounts
    if link.address:
        locked = _address_locked_for_ms(accounts, link.address)
        if locked:
            detail = "too many failed logins from your address; " + retry_hint(locked / 1000)
            return _refuse(state, link, user_id, ErrorCode.RATE_LIMITED, detail)
    locked = _locked_for_ms(accounts, user_id)
    if locked:
        return _refuse(state, link, user_id, ErrorCode.RATE_LIMITED, _locked_detail(locked))
    return None


def _address_locked_for_ms(accounts: Accounts, address: str) -> int:
    """How long `address` must still wait: until the oldest of its last
    `address_failures` failures leaves the window (0 if fewer are in it)."""
    failures = accounts.address_failures.get(address)
    if failures is None:
        return 0
    s = accounts.settings
    horizon = accounts.now_ms - s.address_window_ms
    while failures and failures[0] <= horizon:
        failures.popleft()
    if not failures:
        del accounts.address_failures[address]
        return 0
    if len(failures) < s.address_failures:
        return 0
    return failures[0] + s.address_window_ms - accounts.now_ms


def _count_address_failure(accounts: Accounts, address: str) -> None:
    s = accounts.settings
    failures = accounts.address_failures.pop(address, None)
    if failures is None:
        failures = deque(maxlen=s.address_failures)
    failures.append(accounts.now_ms)
    accounts.address_failures[address] = failures   # most recently failed last
    if len(failures) == s.address_failures and failures[0] > accounts.now_ms - s.address_window_ms:
        accounts.addresses_locked += 1
    while len(accounts.address_failures) > s.max_addresses:
        accounts.address_failures.popitem(last=False)


def _locked_for_ms(accounts: Accounts, user_id: str) -> int:
    lockout = accounts.lockouts.get(user_id)
    if lockout is None:
        return 0
    return max(0, lockout.locked_until_ms - accounts.now_ms)


def _locked_detail(remaining_ms: int) -> str:
    return "too many failed logins for this user id; " + retry_hint(remaining_ms / 1000)


def _count_failure(accounts: Accounts, user_id: str) -> None:
    s = accounts.settings
    now = accounts.now_ms
    lockout = accounts.lockouts.pop(user_id, None)
    if lockout is None or now - lockout.last_failure_ms > s.forget_failures_ms:
        lockout = Lockout()
    lockout.failures += 1
    lockout.last_failure_ms = now
    beyond = lockout.failures - s.free_failures
    if beyond >= 0:
        accounts.logins_locked += 1
        lockout.locked_until_ms = now + min(s.max_lockout_ms, s.lockout_ms * 2 ** min(beyond, 32))
    accounts.lockouts[user_id] = lockout   # most recently failed last
    while len(accounts.lockouts) > s.max_lockouts:
        accounts.lockouts.popitem(last=False)


def _refuse(state: RouterState, link: PeerLink, to: str, code: ErrorCode, detail: str) -> list[Action]:
    """ERROR then close; addressed to the id logging in (the link has no peer id yet)."""
    if link.state is not LinkState.CLOSING:
        link.move(LinkState.CLOSING)
    state.accounts.challenges.pop(link.conn, None)
    error = frames.error(state.me.server_id, to, state.now_ms, code, detail)
    return [send_one(link.conn, error), Close(link.conn, CLOSE_POLICY_VIOLATION, detail[:120])]



# --- for the other login dialect (peer_login.py) --------------------------------------------


def lockout_detail(state: RouterState, link: PeerLink, user_id: str) -> str:
    """The same lockout rules, per id and per address, for G17's password login:
    why this login must wait, or "" if it may go ahead."""
    accounts = state.accounts
    accounts.now_ms = state.now_ms
    if link.address:
        locked = _address_locked_for_ms(accounts, link.address)
        if locked:
            return "too many failed logins from your address; " + retry_hint(locked / 1000)
    locked = _locked_for_ms(accounts, user_id)
    return _locked_detail(locked) if locked else ""


def count_failed_login(state: RouterState, link: PeerLink, user_id: str) -> None:
    accounts = state.accounts
    accounts.logins_failed += 1
    _count_failure(accounts, user_id)
    if link.address:
        _count_address_failure(accounts, link.address)
