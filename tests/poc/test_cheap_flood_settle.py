"""poc/cheap_flood.py `settled`: the signed-burst phase waits for late answers and
deliveries, and still stops (so what never comes is counted) once nothing new has come
for the quiet time. A simulated clock: no timed test."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "poc"))
from cheap_flood import settled  # noqa: E402


class SimulatedTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def wait(progress, done, time: SimulatedTime) -> float:
    asyncio.run(settled(progress, done, quiet_s=3.0, wait_s=20.0, clock=time.clock, sleep=time.sleep))
    return time.now


def test_answers_that_keep_coming_are_waited_for_until_all_came() -> None:
    time = SimulatedTime()
    answered = lambda: min(600, int(time.now * 100))      # noqa: E731 - 100 answers a second
    assert wait(answered, lambda: answered() == 600, time) == 6.0


def test_answers_that_stop_coming_end_the_wait_after_the_quiet_time() -> None:
    time = SimulatedTime()
    answered = lambda: min(10, int(time.now * 100))       # noqa: E731 - then nothing more
    assert wait(answered, lambda: answered() == 600, time) == 3.25   # quiet since 0.25 s, the 10th


def test_the_wait_is_bounded_however_slowly_answers_come() -> None:
    time = SimulatedTime()
    answered = lambda: int(time.now)                       # noqa: E731 - one a second, never all
    assert wait(answered, lambda: False, time) == 20.0


def test_nothing_to_wait_for_returns_at_once() -> None:
    time = SimulatedTime()
    assert wait(lambda: 0, lambda: True, time) == 0.0
