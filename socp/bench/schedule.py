"""Who sends which DM to whom, and when, in `socp bench active` (issue #18). Pure.

N users each send one DM every N / rate seconds, offset from one another so that the
node sees `rate` DMs per second in all, evenly spread: DM number `seq` is due
`seq / rate` seconds into the timed phase (drive.send_all's open loop sends frame
number `seq` then) and is sent by user `seq mod N`. In round r (every user's r-th DM),
user i writes to user (i + 1 + r mod (N - 1)) mod N: never to itself, and each user
receives exactly one DM per round, so no user is a hot spot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ActiveSchedule:
    users: int
    rate: float            # DMs per second, all users together

    def __post_init__(self) -> None:
        if self.users < 2:
            raise ValueError("a DM needs two users")
        if self.rate <= 0:
            raise ValueError("the rate must be positive")

    @property
    def period_s(self) -> float:
        """Seconds between two DMs of one user."""
        return self.users / self.rate

    def sender(self, seq: int) -> int:
        return seq % self.users

    def round_of(self, seq: int) -> int:
        return seq // self.users

    def recipient(self, seq: int) -> int:
        step = 1 + self.round_of(seq) % (self.users - 1)
        return (self.sender(seq) + step) % self.users

    def due_s(self, seq: int) -> float:
        return seq / self.rate

    def count(self, duration_s: float) -> int:
        """DMs due within `duration_s` (those with due_s < duration_s)."""
        # Rounded first: 0.1 * 30 is 3.0000000000000004, which must give 3, not 4.
        return max(0, math.ceil(round(duration_s * self.rate, 6)))
