"""What the router mirrors of the directory (SOCP §10) and its logins in flight.

One more router table, `RouterState.accounts`, loaded once from the store snapshot
and kept current by the rules in `directory.py` and `roaming_login.py` (which also write
through to the store). The keys themselves stay in `RouterState.users`; this holds
what only the directory and login need:

    versions     user_id -> record version (bumps on key, login or display changes)
    revoked      user ids whose key is revoked (set by an operator in the database)
    logins       user_id -> the encrypted key blob and password verifier (local users)
    challenges   conn -> the nonce sent on that connection, until its proof or expiry
    lockouts     user_id -> failed logins, and until when the id is locked
    address_failures  address key -> when its recent failed logins happened (any ids)

Every table that strangers can grow is bounded (STYLE §5): challenges by count and
age, lockouts and addresses by count (least recently failed go first), each
address's failures by `address_failures` (only the latest ones matter).
"""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from socp.ratelimit import TokenBucket


@dataclass(frozen=True, slots=True)
class LoginSettings:
    free_failures: int = 5                     # wrong passwords per user id before a lockout
    lockout_ms: int = 30_000                   # the first lockout; doubles with each further failure
    max_lockout_ms: int = 3_600_000
    forget_failures_ms: int = 24 * 3_600_000   # failures this old no longer count
    challenge_ttl_ms: int = 60_000             # a proof must come this soon after its challenge
    max_challenges: int = 10_000               # challenges outstanding, all connections
    max_lockouts: int = 100_000                # user ids with failures remembered
    challenge_rate: float = 20.0               # challenges per second, node-wide: each costs a signature
    challenge_burst: int = 100
    address_failures: int = 20                 # wrong passwords per address, any user ids, per window...
    address_window_ms: int = 15 * 60_000       # ...after which the address waits for the oldest to age out
    max_addresses: int = 100_000               # addresses with failures remembered


@dataclass(slots=True)
class LoginRecord:
    privkey_store: str                         # the client-encrypted private key (opaque here)
    pake_password: str                         # the verifier (socp.protocol.login)


@dataclass(slots=True)
class Challenge:
    user_id: str
    nonce: bytes
    expires_at_ms: int


@dataclass(slots=True)
class Lockout:
    failures: int = 0
    last_failure_ms: int = 0
    locked_until_ms: int = 0


@dataclass(slots=True)
class Accounts:
    settings: LoginSettings = field(default_factory=LoginSettings)
    versions: dict[str, int] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    logins: dict[str, LoginRecord] = field(default_factory=dict)
    challenges: OrderedDict[int, Challenge] = field(default_factory=OrderedDict)
    lockouts: OrderedDict[str, Lockout] = field(default_factory=OrderedDict)
    address_failures: OrderedDict[str, deque[int]] = field(default_factory=OrderedDict)  # key -> failure ms
    # Injected so that tests are deterministic; os.urandom on a node.
    random_bytes: Callable[[int], bytes] = os.urandom
    # Keys the decoy salt of ids with no login here (no user enumeration). Random per
    # router start: someone comparing challenges across a restart can tell a decoy.
    decoy_secret: bytes = field(default_factory=lambda: os.urandom(32))
    now_ms: int = 0                            # the router's clock, set before each rule
    challenge_bucket: TokenBucket | None = None
    logins_ok: int = 0                         # counters you can read
    logins_failed: int = 0
    logins_locked: int = 0
    addresses_locked: int = 0

    def clock(self) -> float:
        return self.now_ms / 1000.0

    def bucket(self) -> TokenBucket:
        if self.challenge_bucket is None:
            s = self.settings
            self.challenge_bucket = TokenBucket(s.challenge_rate, s.challenge_burst, self.clock)
        return self.challenge_bucket
