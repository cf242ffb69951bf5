"""The router's defences against abuse (SOCP §8, §13): pure rules over its own table.

`Guard` is one more router table (it lives in `RouterState.guard`). The rules make no
frames: each answers `None` (go on) or a problem, `(ErrorCode, detail)` (an empty
detail: drop the frame without an answer), or for a user frame's freshness
(`replay_problem`) `(STALE | AHEAD | DUPLICATE | RESEND, detail)`. `defences.py` turns
problems into the actions that replace the normal handling (an ERROR, a close, or
nothing at all), and `user_acks.py` the freshness answers of acknowledged frames:

- rate limits per user (kept across reconnects) and per peer server, token buckets
  on the router's clock; past its own rate, a user's DM or public message may take a
  token from a spare all users share, refilled as fast as the node signs (issue #18:
  a lone sender may use an idle node; under contention the spare runs dry and the
  fair share of signatures decides); the first frame over the limit is answered RATE_LIMITED
  with a retry hint; of the rest of that burst, acknowledged frames are named
  together by one ERROR per interval (refusals.py), others dropped without an answer;
- a budget of ERROR answers per connection and per node: every answer costs an
  RSA-4096 signature (the costliest thing a node does), so garbage must not buy
  signatures; and the same refusal (a stale ts, a duplicate) is answered at most once per
  `repeat_answer_ms` per connection, whatever the budget (`refusal_answer_due`);
- freshness of server frames: a frame with effects whose `ts` is outside the
  window of `replay_problem` is refused, and gossip the federation rules do
  not deduplicate themselves (USER_REMOVE, SERVER_ANNOUNCE, PUBLIC_CHANNEL_ADD) is
  deduplicated here; a server's opening hello must be fresh and unseen too;
- proof of possession for USER_HELLO (see `user_hello_problem`), kept across
  restarts in the store (which ids sign, and the signatures already used);
- unfinished file transfers per sender, local or relayed by a server: bounded in
  number, forgotten when idle, and a chunk or end needs an open transfer.

Every table here is bounded (STYLE §5).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from socp.protocol.acks import msg_ref_from_digest
from socp.protocol.crypto import decode_public_key, normalise_public_key
from socp.protocol.encoding import b64url_decode
from socp.protocol.envelope import Envelope, parse_obj
from socp.protocol.errors import ErrorCode, SocpError
from socp.protocol.frame_types import FrameType as T
from socp.protocol.signing import verify_transport
from socp.ratelimit import KeyedBuckets, TokenBucket, retry_hint

from .core_io import StoreWrite
from .replay_log import ReplayLog
from .seen import SeenCache

# A hello submitted again after a router restart (user_hello_problem) passes if its
# signature was first used this recently: the old router's last moments, its restart.
RESUBMITTED_HELLO_MS = 15_000
# Replay window: the same as for user frames (replay_problem).
MAX_AGE_MS = 10 * 60 * 1000
MAX_SKEW_AHEAD_MS = 2 * 60 * 1000

# Server frames that change the router's tables or reach users: they must be fresh.
SERVER_EFFECT_TYPES = frozenset({
    T.USER_ADVERTISE, T.USER_REMOVE, T.SERVER_DELIVER, T.SERVER_ANNOUNCE, T.MSG_PUBLIC_CHANNEL,
    T.PUBLIC_CHANNEL_KEY_SHARE, T.PUBLIC_CHANNEL_ADD, T.FILE_START, T.FILE_CHUNK, T.FILE_END,
})
# ...and those of them that federation does not already run through `state.seen`.
# (USER_REMOVE is deduplicated in federation, after its origin's signature is
# checked: a relay could otherwise plant the key of a remove it guessed, and the
# genuine remove would then be dropped as its copy.)
SERVER_DEDUP_HERE = frozenset({T.SERVER_ANNOUNCE, T.PUBLIC_CHANNEL_ADD})
FILE_TYPES = frozenset({T.FILE_START, T.FILE_CHUNK, T.FILE_END})
# Refusals answered at most once per `repeat_answer_ms` per connection: a ts too old,
# a ts ahead of our clock (each tells the sender something else), a copy.
STALE, AHEAD, DUPLICATE = "stale", "ahead", "duplicate"
REFUSALS = (STALE, AHEAD, DUPLICATE)
# A frame stamped before an unclean restart whose copy the node may have forgotten
# (replay_log.py): answered ERROR RESEND, "stamp it afresh and send it again".
RESEND = "resend"
RESEND_DETAIL = ("the server restarted after a crash and cannot tell this frame from a copy: "
                 "send it again with a fresh ts (and content_sig)")
# What `refusal_answer_due` is asked about: these refusals, and refused frames named by
# their ERROR code (refusals.py).
ANSWER_KINDS = (*REFUSALS, RESEND, *(code.value for code in ErrorCode))


def refusal_code(refusal: str) -> ErrorCode:
    """The ERROR code of a refusal of `replay_problem`."""
    return ErrorCode.RESEND if refusal == RESEND else ErrorCode.REPLAY


def window_refusal(ts: int, now_ms: int) -> str:
    """STALE or AHEAD if `ts` is outside the replay window, else ""."""
    age = now_ms - ts
    if age > MAX_AGE_MS:
        return STALE
    if -age > MAX_SKEW_AHEAD_MS:
        return AHEAD
    return ""


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Defaults sized for a node whose verifiers sign ~100 frames per second in all:
    one user may use a good share of that for a while, not all of it for ever."""

    rate_limits: bool = True           # False: no token buckets (pure tests on a frozen clock)
    # A user's own rate is above one connection's (socp/config.py frame_rate, 200/s), so a
    # lone user's file on one connection is held by the gateway, which lends an idle
    # node's spare, not here (issue #16: 1 MiB within 10 s; 100/s made it 14.8 s).
    user_rate: float = 250.0           # frames per second per user, after its hello
    user_burst: int = 1000
    user_spare: bool = True            # DMs and public messages past user_rate may use the spare
    server_rate: float = 1000.0        # frames per second per peer server (all its users)
    server_burst: int = 5000
    error_rate: float = 2.0            # ERROR answers per second per connection
    error_burst: int = 10
    node_error_rate: float = 30.0      # ERROR answers per second, all connections together
    node_error_burst: int = 100
    max_buckets: int = 100_000         # users / servers remembered (least recently seen go)
    transfers_per_sender: int = 8      # unfinished file transfers per sender (local, or relayed)
    transfer_idle_ms: int = 120_000    # a transfer silent this long is forgotten
    repeat_answer_ms: int = 1000       # the same refusal, answered at most once this often per connection
    # ERRORs naming held refusals (refusals.py), all connections together: a few per
    # cent of what even a slow node signs. Past it the refusals stay held, and one
    # later ERROR names more of them (issue #15 item 4: 30 flooders cost 60 a second).
    refusal_answer_rate: float = 40.0
    refusal_answer_burst: int = 80
    hello_sigs_per_user: int = 64      # signed hellos remembered per user id (the newest)
    hello_sig_ttl_ms: int = 30 * 24 * 3600 * 1000
    # Presence from linked servers (issue #15 weakness 3): users one server may have
    # here at once, and its USER_ADVERTISE / USER_REMOVE per second (a join's catch-up
    # of a full server fits in the burst).
    users_per_server: int = 20_000
    presence_rate: float = 1000.0
    presence_burst: int = 20_000


@dataclass(slots=True)
class Guard:
    settings: LimitSettings = field(default_factory=LimitSettings)
    now_ms: int = 0                                                      # the router's clock
    user_buckets: KeyedBuckets = field(init=False)
    server_buckets: KeyedBuckets = field(init=False)
    presence_buckets: KeyedBuckets = field(init=False)                   # origin server -> changes left
    user_spare: TokenBucket | None = None                                # shared by every user, made on first use
    from_spare: int = 0                                                  # frames admitted on a spare token
    error_buckets: dict[int, TokenBucket] = field(default_factory=dict)  # conn -> answers left
    node_errors: TokenBucket | None = None
    refusal_answers: TokenBucket | None = None                           # ERRORs naming held refusals, node-wide
    limited: set[tuple[str, str]] = field(default_factory=set)          # in a refused burst now
    transfers: dict[str, OrderedDict[str, int]] = field(default_factory=dict)  # sender -> file_id -> last ms
    # Ids that proved possession with a signed hello, and the signatures they used.
    # Both are loaded from the store at start (a restart must not forget them) and
    # grow with the users bound here, never evicted to make room for strangers.
    hello_signers: set[str] = field(default_factory=set)
    hello_sigs: dict[str, OrderedDict[bytes, int]] = field(default_factory=dict)   # user -> digest -> ms
    answered: dict[tuple[int, str], int] = field(default_factory=dict)  # (conn, refusal) -> ms answered
    dropped_frames: int = 0                                              # counters you can read
    dropped_errors: int = 0
    unanswered_refusals: int = 0

    def __post_init__(self) -> None:
        s = self.settings
        self.user_buckets = KeyedBuckets(s.user_rate, s.user_burst, self.clock, s.max_buckets)
        self.server_buckets = KeyedBuckets(s.server_rate, s.server_burst, self.clock, s.max_buckets)
        self.presence_buckets = KeyedBuckets(s.presence_rate, s.presence_burst, self.clock, s.max_buckets)
        self.node_errors = TokenBucket(s.node_error_rate, s.node_error_burst, self.clock)
        self.refusal_answers = TokenBucket(s.refusal_answer_rate, s.refusal_answer_burst, self.clock)

    @classmethod
    def without_rate_limits(cls) -> Guard:
        """Every rule but the token buckets: the default of a bare RouterState, whose
        tests freeze `now_ms`. The node's driver installs a full `Guard()`."""
        return cls(LimitSettings(rate_limits=False))

    def clock(self) -> float:
        return self.now_ms / 1000.0

    def tick(self, now_ms: int) -> None:
        """Forget idle transfers (a transfer that never ends ends here)."""
        self.now_ms = now_ms
        horizon = now_ms - self.settings.transfer_idle_ms
        for sender in list(self.transfers):
            open_files = self.transfers[sender]
            for file_id in [f for f, last in open_files.items() if last < horizon]:
                del open_files[file_id]
            if not open_files:
                del self.transfers[sender]

    def forget_conn(self, conn: int) -> None:
        self.error_buckets.pop(conn, None)
        for refusal in ANSWER_KINDS:
            self.answered.pop((conn, refusal), None)

    def forget_sender(self, user_id: str) -> None:
        """A user's connection ended: its unfinished uploads cannot go on."""
        self.transfers.pop(user_id, None)


# --- rate limits -------------------------------------------------------------------------


def _over_limit(guard: Guard, kind: str, key: str, buckets: KeyedBuckets, what: str,
                every_time: bool = False) -> tuple[ErrorCode, str] | None:
    """None if `key`'s bucket has a token; else the RATE_LIMITED answer, with its detail
    once per burst (or `every_time`: the caller names each refused frame itself)."""
    if buckets.take(key):
        guard.limited.discard((kind, key))
        return None
    guard.dropped_frames += 1
    told = (kind, key) in guard.limited
    guard.limited.add((kind, key))
    if told and not every_time:
        return ErrorCode.RATE_LIMITED, ""          # already told: drop without an answer
    return ErrorCode.RATE_LIMITED, (f"too many frames: at most {buckets.rate:g} per second per {what}; "
                                    + retry_hint(buckets.retry_after(key)))


def user_rate_problem(guard: Guard, user_id: str, every_time: bool = False,
                      spare_per_s: float = 0.0) -> tuple[ErrorCode, str] | None:
    """The user's rate limit. `every_time`: for acknowledged frames, each of which must
    be named when refused (refusals.py decides how often that costs an ERROR).
    `spare_per_s` > 0: a frame past the user's own rate may take a token from the
    spare every user shares, which refills at that rate (the node's signatures per
    second) and holds at most one second of it."""
    s = guard.settings
    if not s.rate_limits:
        return None
    if spare_per_s > 0 and s.user_spare and guard.user_buckets.tokens(user_id) < 1 and _take_spare(guard, spare_per_s):
        guard.limited.discard(("user", user_id))
        return None
    return _over_limit(guard, "user", user_id, guard.user_buckets, "user", every_time)


def _take_spare(guard: Guard, per_s: float) -> bool:
    spare = guard.user_spare
    if spare is None:
        spare = guard.user_spare = TokenBucket(per_s, max(1.0, per_s), guard.clock)
    else:
        # The measured capacity moves: the refill follows it (tokens already there stay).
        spare.rate, spare.burst = per_s, max(1.0, per_s)
    if spare.take():
        guard.from_spare += 1
        return True
    return False


# Presence has its own bucket (presence_problem), sized for the snapshot a server
# sends a newly linked one: 10,000 users are 10,000 adverts at once, past the
# per-server frame burst.
_OWN_BUCKET = frozenset({T.USER_ADVERTISE, T.USER_REMOVE})


def server_rate_problem(guard: Guard, server_key: str, frame_type: str = "") -> tuple[ErrorCode, str] | None:
    s = guard.settings
    if not s.rate_limits or frame_type in _OWN_BUCKET:
        return None
    return _over_limit(guard, "server", server_key, guard.server_buckets, "server")


def presence_problem(guard: Guard, server_id: str, users_there: int, new_user: bool,
                     changes: bool = True) -> str | None:
    """Why a presence change from `server_id` is not applied, or None (issue #15
    weakness 3: one server must not fill every node's tables and /list answers).
    The user cap holds even without rate limits (tests freeze the clock). An advert
    that `changes` nothing here (the snapshot of a link that came back, sent again
    when both ends dialled) costs no presence token: only churn is rate limited."""
    s = guard.settings
    if new_user and users_there >= s.users_per_server:
        return f"server {server_id} already has {users_there} users here, the most one server may have"
    if s.rate_limits and changes and not guard.presence_buckets.take(server_id):
        return f"server {server_id} changes presence faster than {s.presence_rate:g} per second"
    return None


def error_allowed(guard: Guard, conn: int) -> bool:
    """May the router spend a signature on one more ERROR to `conn`?"""
    s = guard.settings
    if not s.rate_limits:
        return True
    bucket = guard.error_buckets.get(conn)
    if bucket is None:
        bucket = guard.error_buckets[conn] = TokenBucket(s.error_rate, s.error_burst, guard.clock)
    assert guard.node_errors is not None
    if bucket.tokens >= 1 and guard.node_errors.take():
        bucket.take()
        return True
    guard.dropped_errors += 1
    return False


def held_refusal_answer_due(guard: Guard, conn: int, refusal: str) -> bool:
    """May `conn` be told now of the refused frames held under `refusal` (refusals.py)?
    When its interval is over (`refusal_answer_due`) and the node's budget of such
    answers has a token, which this takes."""
    if not guard.settings.rate_limits:
        return True
    assert guard.refusal_answers is not None
    if guard.refusal_answers.tokens < 1 or not refusal_answer_due(guard, conn, refusal):
        return False
    guard.refusal_answers.take()
    return True


def refusal_answer_budget_left(guard: Guard) -> bool:
    """False while the node's budget of answers to held refusals is spent."""
    return not guard.settings.rate_limits or (guard.refusal_answers is not None and guard.refusal_answers.tokens >= 1)


def last_answered_ms(guard: Guard, conn: int, refusal: str) -> int:
    """When `conn` was last told of this refusal (0: never): the longest-waiting goes first."""
    return guard.answered.get((conn, refusal), 0)


def refusal_answer_due(guard: Guard, conn: int, refusal: str) -> bool:
    """May `conn` be told of this refusal (STALE, AHEAD, DUPLICATE) now? Once per interval:
    a flood of stale or copied frames must not buy one signed ERROR each, and the
    first answer already says what is wrong. The rest are dropped, counted."""
    if not guard.settings.rate_limits:
        return True
    key = (conn, refusal)
    last = guard.answered.get(key)
    if last is not None and guard.now_ms - last < guard.settings.repeat_answer_ms:
        guard.unanswered_refusals += 1
        return False
    guard.answered[key] = guard.now_ms
    return True


# --- freshness ---------------------------------------------------------------------------


def stale(frame: Envelope, now_ms: int) -> bool:
    return bool(window_refusal(frame.ts, now_ms))


def replay_problem(seen: SeenCache, frame: Envelope, payload_digest: bytes,
                   now_ms: int, log: ReplayLog | None = None) -> tuple[str, str] | None:
    """Check-and-add a user's frame in the duplicate cache (SOCP §8 seen_ids): None if
    it is fresh; else (STALE, AHEAD, DUPLICATE or RESEND, why it is refused). With
    `log`, keys of frames seen before a restart count too, and the key of a fresh
    frame is kept for the next restart (replay_log.py)."""
    outside = window_refusal(frame.ts, now_ms)
    if outside:
        return outside, "timestamp outside the accepted window (check your clock)"
    if seen.too_old(frame.ts):
        # The cache overflowed and can no longer tell a copy this old from a new frame.
        return STALE, "timestamp before the window the duplicate cache still covers: send it again with a fresh ts"
    ref = msg_ref_from_digest(frame.ts, frame.from_, frame.to, payload_digest) if log is not None else ""
    if log is not None and log.seen_before_restart(ref):
        return DUPLICATE, "duplicate frame ignored"
    key = (frame.ts, frame.from_, frame.to, payload_digest)
    if not seen.check_and_add(key, now_ms, ts=frame.ts):
        return DUPLICATE, "duplicate frame ignored"
    if log is not None:
        if log.doubtful(frame.ts, now_ms):
            seen.discard(key)
            log.doubted += 1
            return RESEND, RESEND_DETAIL
        log.note(ref, frame.ts, now_ms)
    return None


def server_frame_problem(guard: Guard, seen: SeenCache, frame: Envelope,
                         payload_digest: bytes) -> tuple[ErrorCode, str] | None:
    """A server frame with effects must be fresh, and seen once (SOCP §8, §13)."""
    if frame.type not in SERVER_EFFECT_TYPES:
        return None
    if stale(frame, guard.now_ms):
        return ErrorCode.REPLAY, f"{frame.type}: timestamp outside the accepted window"
    if frame.type in SERVER_DEDUP_HERE:
        # Own key space: federation's own entries (other types) are never confused with these.
        if not seen.check_and_add(("guard", frame.type, frame.ts, frame.from_, frame.to, payload_digest), guard.now_ms,
                                  ts=frame.ts):
            return ErrorCode.REPLAY, ""            # a duplicate: drop, as §8 says, silently
    return None


def server_hello_problem(guard: Guard, seen: SeenCache, frame: Envelope,
                         payload_digest: bytes) -> tuple[ErrorCode, str] | None:
    """A server hello carries no nonce, so a captured one could open a link in the
    name of its server; the window and the duplicate cache (whose lifetime is longer
    than the window) leave no time in which a copy is accepted."""
    if stale(frame, guard.now_ms):
        return ErrorCode.REPLAY, "server hello: timestamp outside the accepted window (check your clock)"
    if not seen.check_and_add(("hello", frame.ts, frame.from_, frame.to, payload_digest, frame.sig), guard.now_ms,
                              ts=frame.ts):
        return ErrorCode.REPLAY, "server hello seen before: a replayed hello opens nothing"
    return None


# --- proof of possession for USER_HELLO ---------------------------------------------------


def user_hello_problem(guard: Guard, frame: Envelope, registered_here: bool,
                       resubmitted: bool = False) -> tuple[ErrorCode, str] | None:
    """Who may connect as a user id that is already registered here?

    The interop table lets a hello be unsigned, and its signature covers the payload
    only (no ts, no nonce), so neither proves that the sender holds the key *now*.
    What does: RSASSA-PSS signatures are randomised, so the holder of the key signs
    every hello differently, while a copied hello repeats its bytes. (Its `ts` is no
    help: it is not signed, so a copier sets it to anything.) Rules:

    - a signed hello whose signature was seen before is a replay: refused;
    - an id that has once proved possession with a signed hello must keep signing:
      an unsigned hello for it is refused (it would let anyone who knows the public
      key take the id over while its owner is away);
    - ids whose clients never sign (peers that send unsigned hellos) keep working.

    The node persists both (`user_hello_accepted`'s StoreWrite) and reloads them at
    start, so a restart reopens neither hole. One exception: a hello the gateway
    submits again after a router restart, on the connection that sent it
    (`resubmitted`; recovery.py), may carry a signature the old router noted as used
    when it accepted that very hello, just before it died. Refusing it would close a
    user who did nothing wrong; so such a hello passes if its signature was first used
    at most RESUBMITTED_HELLO_MS ago. (The residue: a copy of a hello used that
    recently, sent on a connection opened just before a router crash and not applied
    before it, is let through once.)
    """
    user_id = frame.from_
    if frame.sig:
        digest = hello_sig_digest(frame.sig)
        if not _note_hello_sig(guard, user_id, digest, guard.now_ms):
            first_used = guard.hello_sigs[user_id].get(digest, 0)
            if not (resubmitted and guard.now_ms - first_used <= RESUBMITTED_HELLO_MS):
                return ErrorCode.REPLAY, "this signed hello was used before: sign a fresh one"
        return None
    if registered_here and user_id in guard.hello_signers:
        return ErrorCode.INVALID_SIG, "this user id signs its hellos: an unsigned hello cannot claim it"
    return None


def user_hello_accepted(guard: Guard, frame: Envelope) -> list[StoreWrite]:
    """The hello was accepted; a signed one marks its id as one that signs, and the
    store keeps that and the signature (returned as the write to make)."""
    if not frame.sig:
        return []
    guard.hello_signers.add(frame.from_)
    forget_before = guard.now_ms - guard.settings.hello_sig_ttl_ms
    return [StoreWrite("note_signed_hello", (frame.from_, hello_sig_digest(frame.sig).hex(), guard.now_ms,
                                             forget_before, guard.settings.hello_sigs_per_user))]


def carried_hello_problem(user_id: str, pubkey: str, proof: Any) -> str | None:
    """Is `proof` (an advertisement's `meta.hello`) a USER_HELLO of `user_id`, signed
    with `pubkey`, the key bound to the id? None if so."""
    if not isinstance(proof, dict):
        return "the advertisement carries no signed hello of the user"
    try:
        hello = parse_obj(proof)
    except SocpError as exc:
        return f"its signed hello is malformed: {exc.detail}"
    if hello.type != T.USER_HELLO or hello.from_ != user_id or not hello.sig:
        return "the carried frame is not a signed USER_HELLO of that user"
    try:
        if normalise_public_key(hello.payload["pubkey"]) != pubkey:
            return "the carried hello names another key"
        verify_transport(decode_public_key(pubkey), hello, proof)
    except SocpError:
        return "the carried hello's signature does not verify with the user's key"
    return None


def home_move_problem(guard: Guard, user_id: str, pubkey: str, proof: Any) -> str | None:
    """May another server become the home of `user_id`, an id that signs its hellos?
    Only with the user's own proof (issue #15 weakness 2): the signed hello it said at
    that server, carried in the advertisement, never used before. Each server carries
    the hello it accepted in every advertisement, so every node notes every signature
    and a captured hello cannot serve twice. None if it may."""
    problem = carried_hello_problem(user_id, pubkey, proof)
    if problem is not None:
        return f"the user signs its hellos, and {problem}"
    if not _note_hello_sig(guard, user_id, hello_sig_digest(proof["sig"]), guard.now_ms):
        return "the carried hello was used before"
    return None


def hello_sig_digest(sig: str) -> bytes:
    """What identifies a signature: a digest of its bytes, so another base64 spelling
    of the same signature is the same signature."""
    try:
        raw = b64url_decode(sig)
    except SocpError:
        raw = sig.encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).digest()[:16]


def load_hello_proofs(guard: Guard, signers: Iterable[str], signatures: Iterable[tuple[str, bytes, int]]) -> None:
    """What the store kept of earlier hellos (start-up snapshot)."""
    guard.hello_signers.update(signers)
    for user_id, digest, seen_at_ms in sorted(signatures, key=lambda row: row[2]):
        _note_hello_sig(guard, user_id, digest, seen_at_ms)


def _note_hello_sig(guard: Guard, user_id: str, digest: bytes, seen_at_ms: int) -> bool:
    """Check-and-add one signature of `user_id`; False if it was used before. Each id
    keeps its newest `hello_sigs_per_user` for `hello_sig_ttl_ms`."""
    s = guard.settings
    used = guard.hello_sigs.get(user_id)
    if used is None:
        used = guard.hello_sigs[user_id] = OrderedDict()
    horizon = guard.now_ms - s.hello_sig_ttl_ms
    while used and next(iter(used.values())) < horizon:
        used.popitem(last=False)
    if digest in used:
        return False
    used[digest] = seen_at_ms
    while len(used) > s.hello_sigs_per_user:
        used.popitem(last=False)
    return True


# --- file transfers (SOCP §7.4) -----------------------------------------------------------


def relayed_sender(user_id: str) -> str:
    """Whose transfers a relayed file frame counts under: its sender, apart from our
    own users (a server cannot use up the quota of a user of ours by naming it)."""
    return "relayed:" + user_id


def file_problem(guard: Guard, sender: str, frame: Envelope) -> tuple[ErrorCode, str] | None:
    """Bound the unfinished uploads of one sender; chunks need an open transfer."""
    file_id = frame.payload.get("file_id")
    if not isinstance(file_id, str):
        return ErrorCode.MALFORMED, "file_id must be a string"
    open_files = guard.transfers.get(sender)
    if frame.type == T.FILE_START:
        if open_files is not None and file_id in open_files:
            return ErrorCode.FORBIDDEN, "a transfer with this file_id is already open"
        limit = guard.settings.transfers_per_sender
        if open_files is None and len(guard.transfers) >= guard.settings.max_buckets:
            # Senders a server names are not bounded by our user table: bound them here.
            return ErrorCode.RATE_LIMITED, ("too many file transfers open on this server; "
                                            + retry_hint(guard.settings.transfer_idle_ms / 1000))
        if open_files is not None and len(open_files) >= limit:
            idle_s = guard.settings.transfer_idle_ms // 1000
            return ErrorCode.RATE_LIMITED, (f"at most {limit} unfinished file transfers at once; finish one, "
                                            f"or let one sit idle for {idle_s} s; "
                                            + retry_hint(guard.settings.transfer_idle_ms / 1000))
        guard.transfers.setdefault(sender, OrderedDict())[file_id] = guard.now_ms
        return None
    if open_files is None or file_id not in open_files:
        return ErrorCode.FORBIDDEN, f"{frame.type} for no open transfer: send FILE_START first"
    if frame.type == T.FILE_END:
        del open_files[file_id]
        if not open_files:
            del guard.transfers[sender]
    else:
        open_files[file_id] = guard.now_ms
    return None
