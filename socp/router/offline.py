"""DMs for offline users who have an account here (issue #19 item 4).

A user with a password login on this node (`accounts.logins`) who is not connected
still receives direct messages: the router keeps what it received (the ciphertext,
the sender's key and content signature, exactly as they came: the node cannot read
them), writes each to the store (table `held_messages`), and hands them over, oldest
first, the next time that user says hello. Users who only ever said an unsigned hello
have no account: a DM to them while they are away is refused as before.

Bounded per user (STYLE §5) by count, bytes and age (`HeldBounds`): a message that
would pass a bound is refused with an ERROR to its sender (OVERLOADED), and one older
than `max_age_ms` is dropped instead of delivered. Held ids grow with the clock, so an
id is never reused across router restarts even when the old rows are gone.

Public channel messages posted while such a user is away are held the same way (the
envelope as it came, under `PUBLIC`), within the same bounds; a full queue skips that
user without an ERROR to the poster, whose message reached everyone else. File
transfers to such a user (FILE_START, FILE_CHUNK, FILE_END) are held as envelopes
too; a FILE_START is refused unless the whole file fits.

Across nodes (docs/deploy.md §11): when a user with an account here leaves, our
USER_REMOVE carries the optional payload field `held_here: true` (peers ignore unknown
payload fields, SOCP §2), and so does one USER_REMOVE per such user sent on each new
server link. A node that receives it, from the server it already knows as that user's
home (learned from an advertisement that passed the identity rules of issue #15),
remembers the user as away at that server (`HeldMessages.elsewhere`) and routes DMs
for the user there instead of answering USER_NOT_FOUND; the home server holds them.

Pure table logic; users.py routes what `take` returns, snapshot.py loads the table from
the store snapshot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from socp.protocol import frames
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode
from socp.protocol.frame_types import FrameType as T
from socp.store.records import HeldMessage

from .core_io import Action, StoreWrite
from .replies import error_to
from .state import LOCAL, NO_ORIGIN, RouterState

HELD_MARK = "held_here"        # optional USER_REMOVE payload field: "its home server holds DMs for it"
PUBLIC = "public"              # a held message that is a public channel envelope, kept whole
FILE = "file"                  # a held message that is a FILE_* envelope for the user, kept whole
CHUNK_PLAINTEXT = 446          # bytes of a file per FILE_CHUNK (one OAEP block, SOCP §7.4)
CHUNK_STORED = 1_024           # room a held FILE_CHUNK takes at most (683 base64 chars and its envelope)
OPEN_FILES_LIMIT = 10_000      # transfers to away users being held at once
# Optional ERROR payload field from a home server: {"user_id", "sender"} of a DM it
# could not hold, so that the sender's server can tell its user (`home_refused`).
REFUSED_FOR = "refused_for"
ELSEWHERE_LIMIT = 100_000      # remote users remembered as away at their home server
MARKS_PER_LINK = 1_000         # away users announced on a new server link (each frame is signed)


@dataclass(frozen=True, slots=True)
class HeldBounds:
    max_count: int = 500                      # messages held per user
    max_bytes: int = 4 * 1024 * 1024          # their size (as stored) per user
    max_age_ms: int = 30 * 24 * 3_600_000     # older ones are dropped, not delivered


@dataclass(slots=True)
class Held:
    held_id: int
    held_at: int              # ms
    message: dict[str, Any]   # {"sender", "ts", "payload", "extra"}: route_to_user's arguments
    size: int                 # bytes as stored


@dataclass(slots=True)
class HeldMessages:
    """user_id -> messages waiting for them, oldest first; and the bytes each holds."""

    by_user: dict[str, deque[Held]] = field(default_factory=dict)
    bytes_by_user: dict[str, int] = field(default_factory=dict)
    bounds: HeldBounds = field(default_factory=HeldBounds)
    last_id: int = 0
    # Remote users away whose home server said it holds their DMs: user_id -> server id.
    elsewhere: dict[str, str] = field(default_factory=dict)
    # Files whose FILE_START is held and whose FILE_END is not yet: (user_id, file_id).
    open_files: dict[tuple[str, str], None] = field(default_factory=dict)

    def next_id(self, now_ms: int) -> int:
        self.last_id = max(self.last_id + 1, now_ms * 1000)
        return self.last_id

    def add(self, user_id: str, held: Held) -> None:
        self.by_user.setdefault(user_id, deque()).append(held)
        self.bytes_by_user[user_id] = self.bytes_by_user.get(user_id, 0) + held.size
        self.last_id = max(self.last_id, held.held_id)

    def count(self, user_id: str) -> int:
        return len(self.by_user.get(user_id, ()))

    def pop_all(self, user_id: str) -> list[Held]:
        self.bytes_by_user.pop(user_id, None)
        return list(self.by_user.pop(user_id, ()))

    def expire(self, user_id: str, now_ms: int) -> list[int]:
        """Drop the user's messages past the age bound; their ids, for the store."""
        queue = self.by_user.get(user_id)
        expired: list[int] = []
        while queue and now_ms - queue[0].held_at > self.bounds.max_age_ms:
            held = queue.popleft()
            self.bytes_by_user[user_id] -= held.size
            expired.append(held.held_id)
        if queue is not None and not queue:
            self.pop_all(user_id)
        return expired


def has_account(state: RouterState, user_id: str) -> bool:
    return user_id in state.accounts.logins


def hold(state: RouterState, target: str, sender: str, ts: int, payload: dict[str, Any],
         extra: dict[str, Any], origin_conn: int) -> list[Action]:
    """Keep a DM for `target` (offline, with an account here), or refuse it by a bound."""
    message = {"sender": sender, "ts": ts, "payload": payload, "extra": extra}
    kept, actions = _keep(state, target, message)
    if not kept and origin_conn != NO_ORIGIN:
        count, used = state.held.count(target), state.held.bytes_by_user.get(target, 0)
        refusal = error_to(state, origin_conn, ErrorCode.OVERLOADED,
                           f"user {target} is offline and already has {count} messages ({used} bytes) "
                           "waiting: no room for more until they log in")
        origin = state.links.get(origin_conn)
        if origin is not None and not origin.is_user:   # a server's user sent it: name who, for them
            named = {**refusal.frame.payload, REFUSED_FOR: {"user_id": target, "sender": sender}}
            refusal = replace(refusal, frame=replace(refusal.frame, payload=named))
        actions.append(refusal)
    return actions


def hold_public(state: RouterState, frame: Envelope) -> list[Action]:
    """A public channel message: kept for every account holder of this node who is not
    online anywhere (its poster excepted); a user whose queue is full misses it."""
    away = [user_id for user_id in state.accounts.logins
            if user_id not in state.user_locations and user_id != frame.from_]
    if not away or frame.type != T.MSG_PUBLIC_CHANNEL:
        return []
    message = {PUBLIC: {"type": frame.type, "from": frame.from_, "to": frame.to, "ts": frame.ts,
                        "payload": frame.payload}}
    actions: list[Action] = []
    for user_id in sorted(away):
        actions += _keep(state, user_id, message)[1]
    return actions


def hold_file_frame(state: RouterState, frame: Envelope, origin_conn: int) -> list[Action]:
    """A FILE_* frame for `frame.to` (away, with an account here), kept whole. A
    FILE_START is refused unless the whole file fits the bounds, so that a file held is
    (short of other messages filling the room meanwhile) a whole file."""
    target = frame.to
    table = state.held
    transfer = (target, str(frame.payload.get("file_id")))
    if frame.type != T.FILE_START and transfer not in table.open_files:
        return [error_to(state, origin_conn, ErrorCode.OVERLOADED,
                         f"user {target} is offline and this file's FILE_START was not kept for them")
                ] if origin_conn != NO_ORIGIN else []
    if frame.type == T.FILE_START:
        size = frame.payload.get("size")
        chunks = -(-size // CHUNK_PLAINTEXT) if isinstance(size, int) and size > 0 else 0
        count, used = table.count(target), table.bytes_by_user.get(target, 0)
        if count + chunks + 2 > table.bounds.max_count or used + (chunks + 2) * CHUNK_STORED > table.bounds.max_bytes:
            return [error_to(state, origin_conn, ErrorCode.OVERLOADED,
                             f"user {target} is offline and a file of {size} bytes does not fit in the room left "
                             f"for them ({count} messages, {used} bytes waiting)")] if origin_conn != NO_ORIGIN else []
    message = {FILE: {"type": frame.type, "from": frame.from_, "to": frame.to, "ts": frame.ts,
                      "payload": frame.payload}}
    kept, actions = _keep(state, target, message)
    if kept and frame.type == T.FILE_START:
        if len(table.open_files) >= OPEN_FILES_LIMIT:
            table.open_files.pop(next(iter(table.open_files)))
        table.open_files[transfer] = None
    elif frame.type == T.FILE_END or not kept:
        table.open_files.pop(transfer, None)   # a file missing a chunk is not held on
    if not kept and origin_conn != NO_ORIGIN:
        actions.append(error_to(state, origin_conn, ErrorCode.OVERLOADED,
                                f"user {target} is offline and has no room left for this {frame.type}"))
    return actions


def held_here(state: RouterState, user_id: str) -> bool:
    """Away (not online anywhere we know) with an account here: frames for it are held."""
    return user_id not in state.user_locations and has_account(state, user_id)


def public_envelope(message: dict[str, Any]) -> Envelope | None:
    """The envelope a held public message or file frame carries, or None for a DM."""
    kept = message.get(PUBLIC) or message.get(FILE)
    if not isinstance(kept, dict):
        return None
    return Envelope(type=kept["type"], from_=kept["from"], to=kept["to"], ts=kept["ts"], payload=kept["payload"])


def _keep(state: RouterState, target: str, message: dict[str, Any]) -> tuple[bool, list[Action]]:
    table = state.held
    actions: list[Action] = []
    expired = table.expire(target, state.now_ms)
    if expired:
        actions.append(StoreWrite("drop_held", (target, expired)))
    size = len(orjson.dumps(message))
    count, used = table.count(target), table.bytes_by_user.get(target, 0)
    bounds = table.bounds
    if count >= bounds.max_count or used + size > bounds.max_bytes:
        return False, actions
    held = Held(table.next_id(state.now_ms), state.now_ms, message, size)
    table.add(target, held)
    actions.append(StoreWrite("hold_message", (target, held.held_id, held.held_at, message)))
    return True, actions


def take(state: RouterState, user_id: str) -> tuple[list[dict[str, Any]], list[Action]]:
    """The user is back: their messages to deliver (oldest first), and the store write
    that forgets them (and any too old to deliver)."""
    table = state.held
    table.elsewhere.pop(user_id, None)     # back here: no longer away at another server
    for transfer in [t for t in table.open_files if t[0] == user_id]:
        del table.open_files[transfer]     # the rest of the file reaches the user directly
    expired = table.expire(user_id, state.now_ms)
    waiting = table.pop_all(user_id)
    gone = expired + [held.held_id for held in waiting]
    writes: list[Action] = [StoreWrite("drop_held", (user_id, gone))] if gone else []
    return [held.message for held in waiting], writes


def load(state: RouterState, rows: Iterable[HeldMessage]) -> None:
    """From the store snapshot at start (oldest first per user)."""
    for row in rows:
        size = len(orjson.dumps(row.message))
        state.held.add(row.recipient, Held(row.held_id, row.held_at, row.message, size))
        kept = row.message.get(FILE)
        if isinstance(kept, dict) and isinstance(kept.get("payload"), dict):
            transfer = (row.recipient, str(kept["payload"].get("file_id")))
            if kept.get("type") == T.FILE_START:
                state.held.open_files[transfer] = None
            elif kept.get("type") == T.FILE_END:
                state.held.open_files.pop(transfer, None)


# --- across nodes ------------------------------------------------------------------------


def remove_frame(state: RouterState, user_id: str) -> Envelope:
    """USER_REMOVE for a user who left; marked when this node holds their DMs."""
    frame = frames.user_remove(state.me.server_id, state.now_ms, user_id)
    if not has_account(state, user_id):
        return frame
    return replace(frame, payload={**frame.payload, HELD_MARK: True})


def away_marks(state: RouterState) -> list[Envelope]:
    """For a new server link: a marked USER_REMOVE per account holder who is not online
    (bounded: each costs a signature). Peers that never knew the user ignore it (§6.2)."""
    away = sorted(user_id for user_id in state.accounts.logins if user_id not in state.user_locations)
    return [remove_frame(state, user_id) for user_id in away[:MARKS_PER_LINK]]


def remote_removed(state: RouterState, server_id: str, user_id: str, payload: dict[str, Any]) -> bool:
    """A USER_REMOVE from `server_id` (already authenticated as its own): remember the
    user as away there when marked and that server is its known home. True if this
    changed what we know (the frame is then worth gossiping on)."""
    table = state.held
    if payload.get(HELD_MARK) is not True:
        return table.elsewhere.get(user_id) == server_id and table.elsewhere.pop(user_id) is not None
    record = state.users.get(user_id)
    # Only the home this node learned from an accepted advertisement may hold for a user.
    if record is None or record.home_server != server_id or has_account(state, user_id):
        return False
    location = state.user_locations.get(user_id)
    if location == LOCAL or (location is not None and location != server_id and location in state.servers):
        return False   # online somewhere else: that server answers for it
    if table.elsewhere.get(user_id) == server_id:
        return False
    if user_id not in table.elsewhere and len(table.elsewhere) >= ELSEWHERE_LIMIT:
        table.elsewhere.pop(next(iter(table.elsewhere)))
    table.elsewhere[user_id] = server_id
    return True


def advertised(state: RouterState, user_id: str) -> None:
    """The user is online at some server again: route by its location."""
    state.held.elsewhere.pop(user_id, None)


def holding_home(state: RouterState, user_id: str) -> str | None:
    """The remote server that holds DMs for this away user, if any (never ourselves)."""
    if has_account(state, user_id):
        return None
    return state.held.elsewhere.get(user_id)


def home_refused(state: RouterState, server_id: str, frame: Envelope) -> list[Action]:
    """An ERROR from a linked server naming a DM it could not hold (REFUSED_FOR): tell
    our user who sent it, if that server is the one we routed the recipient's DMs to."""
    refused = frame.payload.get(REFUSED_FOR)
    if not isinstance(refused, dict):
        return []
    user_id, sender = refused.get("user_id"), refused.get("sender")
    if not isinstance(user_id, str) or not isinstance(sender, str) or state.held.elsewhere.get(user_id) != server_id:
        return []
    conn = state.local_users.get(sender)
    if conn is None:
        return []
    return [error_to(state, conn, ErrorCode.OVERLOADED,
                     f"user {user_id} is offline and their home server has no room left for them: "
                     "a message you sent them was not kept")]
