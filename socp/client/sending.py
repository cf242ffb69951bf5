"""Sending files: the pace the node grants, and one record per file being sent.

`FileSender` (file_sender.py) runs one task per file; they share the connection's
`ChunkPacer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

# What our node grants a user's frames whatever else happens (socp/config.py
# frame_rate / frame_burst per connection, router abuse_rules.LimitSettings user_rate /
# user_burst), as (rate, burst), each a little below, so a /tell or /list still fits
# during a transfer.
NODE_GRANTS: tuple[tuple[float, int], ...] = ((190.0, 450), (240.0, 950))
# What an idle node grants on top: past its own rate, a connection takes from a spare
# every user connection shares (the gateway's spare_frame_rate, issue #18). The
# pacer uses it until the node refuses a frame for its rate or its load, then keeps
# to NODE_GRANTS for IDLE_GRANT_COOLDOWN seconds. 1 MiB (2351 chunks) in 8.4 s
# instead of 10.5 s (and 14.7 s at the user rate of 100/s before, issue #16); the
# burst is NODE_GRANTS', so the fair share of signatures never sees more at once.
IDLE_NODE_GRANTS: tuple[tuple[float, int], ...] = ((240.0, 450),)
IDLE_GRANT_COOLDOWN = 60.0
FILE_CHUNK_BURST = 100     # the burst of a lower cap (`socp chat --file-rate`)
RATE_LIMITED_PAUSE = 1.0   # before the FILE_END of a transfer the server throttled
# Files sent at once, each by its own task; our node keeps at most 8 unfinished
# uploads per user, and they all share one pacer anyway.
MAX_SENDING_FILES = 4


class ChunkPacer:
    """Token buckets on the loop's clock, one per (rate, burst) grant: a frame goes
    when every bucket has a token for it.

    Two sets of grants: `idle` (what an idle node lends from its spares) while the
    node has refused nothing; after a refusal for rate or load (`node_refused`), the
    guaranteed `floor` for `cooldown` seconds, then `idle` again. Extra caps (the
    user's --file-rate) hold in both."""

    def __init__(self, floor: tuple[tuple[float, int], ...], clock: Callable[[], float],
                 idle: tuple[tuple[float, int], ...] = (), caps: tuple[tuple[float, int], ...] = (),
                 cooldown: float = IDLE_GRANT_COOLDOWN) -> None:
        self._clock = clock
        self._updated = clock()
        self._caps = _buckets(caps)
        self._floor = _buckets(floor)
        self._idle = _buckets(idle)
        self._cooldown = cooldown
        self._floor_until = float("-inf") if idle else float("inf")
        self._paused_until = float("-inf")

    @property
    def on_idle_grant(self) -> bool:
        return self._clock() >= self._floor_until

    def node_refused(self) -> None:
        """The node refused a frame of ours (RATE_LIMITED, OVERLOADED): it has nothing
        to spare now. Keep to the floor, starting from an empty burst."""
        self.delay(take=False)
        if self.on_idle_grant:
            for bucket in self._floor:
                bucket[2] = 0.0
        self._floor_until = max(self._floor_until, self._clock() + self._cooldown)

    def pause(self, seconds: float) -> None:
        """Nothing goes for `seconds` (the retry hint of a node that refused a frame)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def delay(self, take: bool = True) -> float:
        """Take one token of each bucket in force; the seconds to wait before sending
        (0 if none). The buckets not in force refill all the same."""
        now = self._clock()
        elapsed, self._updated = max(0.0, now - self._updated), now
        for bucket in (*self._caps, *self._floor, *self._idle):
            rate, burst, tokens = bucket
            bucket[2] = min(burst, tokens + elapsed * rate)
        if not take:
            return 0.0
        wait = 0.0
        for bucket in (*self._caps, *(self._idle if now >= self._floor_until else self._floor)):
            bucket[2] -= 1
            if bucket[2] < 0:
                wait = max(wait, -bucket[2] / bucket[0])
        return max(wait, self._paused_until - now)


def _buckets(grants: tuple[tuple[float, int], ...]) -> list[list[float]]:
    return [[rate, float(burst), float(burst)] for rate, burst in grants]   # rate, burst, tokens


@dataclass(slots=True, eq=False)
class OutgoingFile:
    """A file being sent by its own task (`FileSender.start`)."""

    name: str
    path: str
    file_id: str = ""            # known once FILE_START is made
    to: str = ""
    stop_reason: str = ""        # set by /cancel or /quit; the task then sends FILE_END
    reported: bool = False       # the failure was already shown (the server refused a frame of it)
    done: int = 0                # bytes handed to the connection so far
    size: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def matches(self, wanted: str) -> bool:
        return wanted in (self.name, self.path) or (bool(self.file_id) and self.file_id.startswith(wanted))
