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

Pure table logic; users.py routes what `take` returns, snapshot.py loads the table from
the store snapshot (snapshot.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from socp.protocol.errors import ErrorCode
from socp.store.records import HeldMessage

from .events import Action, StoreWrite
from .replies import error_to
from .state import NO_ORIGIN, RouterState


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
    table = state.held
    actions: list[Action] = []
    expired = table.expire(target, state.now_ms)
    if expired:
        actions.append(StoreWrite("drop_held", (target, expired)))
    message = {"sender": sender, "ts": ts, "payload": payload, "extra": extra}
    size = len(orjson.dumps(message))
    count, used = table.count(target), table.bytes_by_user.get(target, 0)
    bounds = table.bounds
    if count >= bounds.max_count or used + size > bounds.max_bytes:
        if origin_conn != NO_ORIGIN:
            actions.append(error_to(state, origin_conn, ErrorCode.OVERLOADED,
                                    f"user {target} is offline and already has {count} messages ({used} bytes) "
                                    "waiting: no room for more until they log in"))
        return actions
    held = Held(table.next_id(state.now_ms), state.now_ms, message, size)
    table.add(target, held)
    actions.append(StoreWrite("hold_message", (target, held.held_id, held.held_at, message)))
    return actions


def take(state: RouterState, user_id: str) -> tuple[list[dict[str, Any]], list[Action]]:
    """The user is back: their messages to deliver (oldest first), and the store write
    that forgets them (and any too old to deliver)."""
    table = state.held
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
