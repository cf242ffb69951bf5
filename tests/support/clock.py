"""A clock the test moves by hand (`clock.now += 1.5`), for code that takes its clock
as an argument (STYLE §6)."""

from __future__ import annotations


class Clock:
    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
