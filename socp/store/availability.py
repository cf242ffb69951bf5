"""Whether the database answers, as the store actor sees it: one small state table.

    OPENING ──ok──► AVAILABLE ──failed──► UNAVAILABLE
       │                 ▲                        │
       │                 └───────────ok───────────┤
       └──────────────failed─────────────────────►┘

Every database call the store makes reports its outcome here: the opener, the writer,
reads, and a probe that runs while nothing else does, so an outage shows even on a
node where nobody writes. `failed` and `ok` return whether the state changed; the
store logs one line per change, never one per retry. The state travels to the
router in the store's StatusReply and on to the gateway's `/healthz`.

Pure: the clock is injected (STYLE §6).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

OPENING = "opening"          # no attempt has finished yet
AVAILABLE = "available"
UNAVAILABLE = "unavailable"

OK = "ok"
FAILED = "failed"

TRANSITIONS: dict[tuple[str, str], str] = {
    (OPENING, OK): AVAILABLE,
    (OPENING, FAILED): UNAVAILABLE,
    (AVAILABLE, OK): AVAILABLE,
    (AVAILABLE, FAILED): UNAVAILABLE,
    (UNAVAILABLE, OK): AVAILABLE,
    (UNAVAILABLE, FAILED): UNAVAILABLE,
}

Clock = Callable[[], float]   # seconds since the epoch, like time.time


@dataclass(slots=True)
class DatabaseHealth:
    clock: Clock = time.time
    state: str = OPENING
    detail: str = ""              # the latest error while unavailable; "" otherwise
    since_ms: int = field(default=0)

    def __post_init__(self) -> None:
        if not self.since_ms:
            self.since_ms = self._now_ms()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def failed(self, detail: str) -> bool:
        """A call could not reach the database. True if this begins an outage."""
        self.detail = detail   # the latest reason, even within an outage
        return self._apply(FAILED)

    def ok(self) -> bool:
        """A call reached the database. True if the state changed (opened, or back)."""
        self.detail = ""
        return self._apply(OK)

    def unavailable_for_s(self) -> float:
        """Seconds since the outage began (0 when not in one)."""
        if self.state != UNAVAILABLE:
            return 0.0
        return max(0.0, self.clock() - self.since_ms / 1000)

    def _apply(self, outcome: str) -> bool:
        new_state = TRANSITIONS[(self.state, outcome)]
        if new_state == self.state:
            return False
        self.state = new_state
        self.since_ms = self._now_ms()
        return True
