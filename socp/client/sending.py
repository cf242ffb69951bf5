"""Sending files: the pace the node grants, and one record per file being sent.

`ChatClient` (connection.py) runs one task per file; they share the connection's
`ChunkPacer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

# What our node grants a user's frames (socp/config.py frame_rate / frame_burst per
# connection, router abuse_rules.LimitSettings user_rate / user_burst), as (rate, burst),
# each a little below, so a /tell or /list still fits during a transfer.
NODE_GRANTS: tuple[tuple[float, int], ...] = ((190.0, 450), (95.0, 950))
FILE_CHUNK_BURST = 100     # the burst of a lower cap (`socp chat --file-rate`)
RATE_LIMITED_PAUSE = 1.0   # before the FILE_END of a transfer the server throttled
# Files sent at once, each by its own task; our node keeps at most 8 unfinished
# uploads per user, and they all share one pacer anyway.
MAX_SENDING_FILES = 4


class ChunkPacer:
    """Token buckets on the loop's clock, one per (rate, burst) grant: a frame goes
    when every bucket has a token for it."""

    def __init__(self, grants: tuple[tuple[float, int], ...], clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets = [[rate, float(burst), float(burst)] for rate, burst in grants]   # rate, burst, tokens
        self._updated = clock()

    def delay(self) -> float:
        """Take one token of each bucket; the seconds to wait before sending (0 if none)."""
        now = self._clock()
        elapsed, self._updated = max(0.0, now - self._updated), now
        wait = 0.0
        for bucket in self._buckets:
            rate, burst, tokens = bucket
            bucket[2] = tokens = min(burst, tokens + elapsed * rate) - 1
            if tokens < 0:
                wait = max(wait, -tokens / rate)
        return wait


@dataclass(slots=True, eq=False)
class OutgoingFile:
    """A file being sent by its own task (`ChatClient._cmd_file`)."""

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
