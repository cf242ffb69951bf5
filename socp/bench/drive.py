"""Sending prepared frames: open loop at a fixed total rate, or closed loop with a
bounded window of outstanding frames per sender; then waiting for the stragglers.

Open loop: frame i is due at t0 + i / rate, whoever sends it, and its latency is
measured from when it was due, so a server (or a client) that falls behind shows
up in the latency instead of silently lowering the rate (coordinated omission).
Closed loop: a sender may have `window` frames not yet received; a slot comes back
when the frame has reached every receiver, when the server refused it (after the
retry hint the refusal gave, as a client that honours it would wait; at most
WINDOW_STALL_S), or after WINDOW_STALL_S (a lost frame must not stall its sender
for ever).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.text import Text
from websockets.exceptions import ConnectionClosed

from .prepare import PreparedFrame
from .simulated_users import BenchUser
from .tracker import DeliveryTracker, percentile

WINDOW_STALL_S = 2.0
PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True, slots=True)
class SendPlan:
    frames: Sequence[PreparedFrame]
    duration_s: float
    rate: float | None        # frames per second in total; None: closed loop
    window: int = 4


@dataclass(frozen=True, slots=True)
class SendOutcome:
    started: float            # perf_counter at the start of the timed phase
    ended: float              # when the last sender stopped
    sent: int
    ran_out: bool             # closed loop used every prepared frame before the end
    window_stalls: int
    send_failures: int        # sends on a connection that had closed
    # Open loop: how late the sends went out after they were due (the load generator
    # itself falling behind shows here, not only in the latency).
    late_p99_ms: float = 0.0
    late_max_ms: float = 0.0


class Progress:
    """One live line on stderr: elapsed, sent, delivered, rate, errors."""

    def __init__(self, label: str, enabled: bool = True) -> None:
        self._label = label
        self._console = Console(stderr=True)
        self._live: Live | None = None
        self._enabled = enabled and self._console.is_terminal

    def __enter__(self) -> Progress:
        if self._enabled:
            self._live = Live(Text(self._label), console=self._console, transient=True, auto_refresh=False)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def show(self, text: str) -> None:
        if self._live is not None:
            self._live.update(Text(f"{self._label}: {text}"), refresh=True)

    def note(self, text: str) -> None:
        """A line that stays (setup steps)."""
        self._console.print(f"[dim]{self._label}: {text}[/dim]", highlight=False)


async def report_progress(progress: Progress, tracker: DeliveryTracker, started: float, stop: asyncio.Event) -> None:
    last_count, last_time = 0, time.perf_counter()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), PROGRESS_EVERY_S)
        except TimeoutError:
            pass
        now = time.perf_counter()
        count = tracker.deliveries()
        rate = (count - last_count) / max(now - last_time, 1e-6)
        last_count, last_time = count, now
        errors = sum(tracker.errors.values())
        progress.show(f"{now - started:5.1f} s  sent {tracker.sent_count()}  delivered {count}  "
                      f"{rate:7.1f}/s  outstanding {tracker.outstanding()}  errors {errors}")


async def send_all(users: Sequence[BenchUser], plan: SendPlan, tracker: DeliveryTracker) -> SendOutcome:
    """Run the timed phase: every sender in its own task, until the duration ends
    or the prepared frames run out."""
    by_sender: dict[int, list[tuple[int, PreparedFrame]]] = {}
    for position, frame in enumerate(plan.frames):
        by_sender.setdefault(frame.sender, []).append((position, frame))
    windows = {sender: asyncio.Semaphore(max(1, plan.window)) for sender in by_sender}
    stalls = failures = 0
    closed_loop = plan.rate is None
    lateness_s: list[float] = []

    def release(sender: int) -> None:
        window = windows.get(sender)
        if window is not None:
            window.release()

    loop = asyncio.get_running_loop()
    pending_releases: list[asyncio.TimerHandle] = []

    def refused(sender: int, retry_s: float) -> None:
        if retry_s <= 0:
            release(sender)
        else:
            pending_releases.append(loop.call_later(min(retry_s, WINDOW_STALL_S), release, sender))

    if closed_loop:
        tracker.on_fully_delivered = release
        tracker.on_refused = refused
    started = time.perf_counter()
    end = started + plan.duration_s

    async def sender_task(sender: int, queue: list[tuple[int, PreparedFrame]]) -> None:
        nonlocal stalls, failures
        user = users[sender]
        for position, frame in queue:
            if closed_loop:
                try:
                    await asyncio.wait_for(
                        windows[sender].acquire(), max(0.0, min(WINDOW_STALL_S, end - time.perf_counter()))
                    )
                except TimeoutError:
                    if time.perf_counter() >= end:
                        return
                    stalls += 1
                now = time.perf_counter()
                if now >= end:
                    return
                tracker.sent(frame.key, now)
            else:
                assert plan.rate is not None
                due = started + position / plan.rate
                if due >= end:
                    return
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tracker.sent(frame.key, due)
                lateness_s.append(time.perf_counter() - due)
            try:
                await user.send(frame.text)
            except ConnectionClosed:
                failures += 1
                return

    async with asyncio.TaskGroup() as tasks:
        for sender, queue in by_sender.items():
            tasks.create_task(sender_task(sender, queue))
    ended = time.perf_counter()
    tracker.on_fully_delivered = None
    tracker.on_refused = None
    for handle in pending_releases:
        handle.cancel()
    sent = tracker.sent_count()
    lateness_s.sort()
    return SendOutcome(
        started=started,
        ended=min(ended, end) if sent < len(plan.frames) else ended,
        sent=sent,
        ran_out=closed_loop and sent >= len(plan.frames),
        window_stalls=stalls,
        send_failures=failures,
        late_p99_ms=round(percentile(lateness_s, 0.99) * 1000, 1),
        late_max_ms=round(percentile(lateness_s, 1.0) * 1000, 1),
    )


async def drain(tracker: DeliveryTracker, timeout_s: float) -> float:
    """Wait until every sent frame has reached its receivers, or `timeout_s`.
    Return the seconds waited."""
    started = time.perf_counter()
    deadline = started + timeout_s
    while tracker.outstanding() > 0 and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    return time.perf_counter() - started
