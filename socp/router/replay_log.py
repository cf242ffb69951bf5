"""Replay protection that survives a restart (SOCP §8 seen_ids; issue #15 item 5).

The duplicate cache (seen.py) lives in the router's memory: without this module a DM
captured before a restart, re-sent byte for byte after it (its `ts` still inside the
window), would be delivered again. So the router keeps the duplicate key of every
user frame it lets through (its msg_ref, protocol/acks.py) in the store too:

- new keys are batched and written once per Tick (one StoreWrite), with the rows
  whose ts has left the window deleted in the same transaction;
- at start, the keys whose ts is still inside the window come back with the store's
  snapshot (`load`); a copy of one of those frames is a duplicate, as before;
- a clean stop (process.py) writes what is left and then the mark
  `stopped_cleanly_at`; a running router keeps that mark at 0.

A crash (SIGKILL, power loss) loses the keys of the last Tick or so. For those the
node cannot tell a copy from a new frame, so after an *unclean* stop, a user frame
whose key is unknown and whose ts is at or before the restart (`doubtful`) is
refused with ERROR RESEND, "stamp it afresh and send it again", for as long as such
a ts stays inside the window (10 minutes). Why RESEND and not the alternatives:

- accepting it would deliver a copy again: the hole this module closes;
- REPLAY would tell an honest client its frame was already handed on (that is what
  REPLAY naming a msg_ref means, router/user_acks.py), and a message never sent would be
  lost without anyone knowing;
- RESEND loses nothing: an honest sender re-stamps (new ts, new content_sig, the
  same ciphertext, so a recipient who got the first copy can drop the second), while
  a replayer holding only the captured bytes cannot make a frame that passes the
  recipient's content-signature check (SOCP §9 covers the ts).

Only user frames' keys are kept. Frames that linked servers relay (SERVER_DELIVER,
gossip) come over links verified with a pinned key and are deduplicated in memory
only: after a restart, a linked server could deliver again what it sent in the last
ten minutes; no user connection can.

Frames stamped after the restart are new by construction (a copy of a frame seen
before the crash has a ts at most MAX_SKEW_AHEAD_MS past the crash): the residual
risk is a sender whose clock ran ahead of ours, whose frames seen in the last Tick
before a crash could be replayed until our clock passes their ts.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from .core_io import StoreWrite

# Mirrors abuse_rules.MAX_AGE_MS (the window back): a key older than that protects nothing.
WINDOW_MS = 10 * 60 * 1000
STOPPED_CLEANLY_AT = "stopped_cleanly_at"      # replay_state row (store/migrations.py)
MAX_KEYS_PER_WRITE = 50_000                    # one StoreWrite; the rest waits for the next Tick
WRITE_KEYS: Final = "note_replay_keys"         # the StoreWrite's operation


@dataclass(slots=True)
class ReplayLog:
    restored: OrderedDict[str, int] = field(default_factory=OrderedDict)   # msg_ref -> ts, oldest ts first
    unwritten: list[list[int | str]] = field(default_factory=list)          # [msg_ref, ts, seen_at]
    unclean_restart_ms: int | None = None      # the start after an unclean stop; None after a clean one
    doubted: int = 0                            # frames answered RESEND (counters you can read)
    keys_lost: bool = False                     # a write of keys was dropped (store queue full)

    def load(self, keys: list[tuple[str, int]] | tuple[tuple[str, int], ...], state: dict[str, int],
             now_ms: int) -> None:
        """The store's snapshot at start (then write `running_mark()`)."""
        for ref, ts in sorted(keys, key=lambda key: key[1]):
            if ts >= now_ms - WINDOW_MS:
                self.restored[ref] = ts
        # No mark at all: a store without the migration that seeds it (tests' stand-ins).
        self.unclean_restart_ms = now_ms if state.get(STOPPED_CLEANLY_AT, 1) == 0 else None

    def seen_before_restart(self, ref: str) -> bool:
        return ref in self.restored

    def doubtful(self, ts: int, now_ms: int) -> bool:
        """Could a frame of this ts have been seen before an unclean stop, its key lost?"""
        if self.unclean_restart_ms is None:
            return False
        if now_ms - self.unclean_restart_ms > WINDOW_MS:
            self.unclean_restart_ms = None      # every such ts is stale now: refused anyway
            return False
        return ts <= self.unclean_restart_ms

    def note(self, ref: str, ts: int, now_ms: int) -> None:
        """A user frame was let through: its key goes to the store with the next Tick."""
        self.unwritten.append([ref, ts, now_ms])

    def forget(self, ref: str) -> None:
        """The frame just noted was refused after all (user_acks.py): a re-send of it must
        take effect, after a restart too."""
        if self.unwritten and self.unwritten[-1][0] == ref:
            self.unwritten.pop()

    def tick(self, now_ms: int) -> list[StoreWrite]:
        """The keys noted since the last Tick, as one write; forget restored keys whose
        ts has left the window."""
        horizon = now_ms - WINDOW_MS
        while self.restored and next(iter(self.restored.values())) < horizon:
            self.restored.popitem(last=False)
        if not self.unwritten:
            return []
        batch, self.unwritten = self.unwritten[:MAX_KEYS_PER_WRITE], self.unwritten[MAX_KEYS_PER_WRITE:]
        return [StoreWrite(WRITE_KEYS, (batch, horizon))]

    def stop(self, now_ms: int) -> list[StoreWrite]:
        """A clean stop: every key not yet written, then the mark saying so (unless
        some keys never reached the store: then the next start doubts, as after a crash)."""
        writes = []
        while self.unwritten:
            writes += self.tick(now_ms)
        if self.keys_lost:
            return writes
        return writes + [StoreWrite("set_replay_state", (STOPPED_CLEANLY_AT, now_ms))]


def running_mark() -> StoreWrite:
    """Written at start: until a clean stop overwrites it, the store says "crashed"."""
    return StoreWrite("set_replay_state", (STOPPED_CLEANLY_AT, 0))
