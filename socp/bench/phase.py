"""The part every delivery scenario shares: connect the users, wait until they can
reach each other, measure the node processes around the timed phase, send, drain."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from socp.protocol.acks import refs_named
from socp.ratelimit import hinted_retry_ms
from socp.runtime import fast_runner

from .capacity import SignCapacity
from .drive import Progress, SendOutcome, SendPlan, drain, report_progress, send_all
from .prepare import PreparedFrame
from .procstats import NodeMeter, ProcessUsage
from .report import BenchResult
from .simulated_users import BenchUser, FrameHandler, connect_users
from .targets import SETUP_TIMEOUT_S
from .tracker import DeliveryTracker

# After the last hello, let the presence and channel frames of the setup drain so
# they do not share the timed phase.
SETTLE_S = 0.5
CONNECT_CONCURRENCY = 50

KeyOf = Callable[[dict[str, Any]], str | None]

def retry_after_s(detail: object) -> float:
    """Seconds a refusal asks us to wait (0 when it gives no hint)."""
    millis = hinted_retry_ms(detail)
    return millis / 1000 if millis is not None else 0.0


@dataclass(frozen=True, slots=True)
class PhaseOutcome:
    send: SendOutcome
    drained_s: float
    processes: list[ProcessUsage]
    closed_users: int          # users whose connection the server closed during the run
    client_cpu_s: float        # this process (the load generator) during the timed phase


def make_handler(tracker: DeliveryTracker, delivery_types: frozenset[str], key_of: KeyOf) -> FrameHandler:
    """What a receive loop does with each frame: a dict lookup, no crypto."""

    def handle(user: BenchUser, frame: dict[str, Any], text: str, when: float) -> None:
        frame_type = frame.get("type")
        if frame_type in delivery_types:
            key = key_of(frame)
            if key is not None:
                tracker.delivered(user.index, key, when, text, frame.get("sig") or "")
        elif frame_type == "ERROR":
            payload = frame.get("payload") or {}
            code = str(payload.get("code") or payload.get("reason") or "ERROR")[:64]
            refs = refs_named(payload)
            tracker.error(code, len(refs))
            wait_s = retry_after_s(payload.get("detail"))
            for ref in refs:
                tracker.refused(ref, code, wait_s)

    return handle


def one_user_per_server(users: Iterable[BenchUser]) -> list[BenchUser]:
    """The first user of each server's URL: the one that asks that server's list."""
    first_per_url: dict[str, BenchUser] = {}
    for user in users:
        first_per_url.setdefault(user.url, user)
    return list(first_per_url.values())


async def wait_until_listed(users: Sequence[BenchUser], timeout: float = SETUP_TIMEOUT_S) -> None:
    """Until, on every server, one user's /list shows every bench user (presence
    has crossed the servers)."""
    everyone = {u.user_id for u in users}
    deadline = time.monotonic() + timeout
    for user in one_user_per_server(users):
        while True:
            listed = set((await user.list_users()).get("users") or ())
            if everyone <= listed:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(everyone - listed)} bench users never appeared in {user.url}'s list")
            await asyncio.sleep(0.2)


async def run_phase(users: list[BenchUser], plan: SendPlan, tracker: DeliveryTracker,
                    delivery_types: frozenset[str], key_of: KeyOf, data_dirs: tuple[str, ...],
                    drain_s: float, progress: Progress,
                    ready: Callable[[list[BenchUser]], Awaitable[None]] = wait_until_listed) -> PhaseOutcome:
    handler = make_handler(tracker, delivery_types, key_of)
    hard_limit = SETUP_TIMEOUT_S + plan.duration_s + drain_s + 30.0
    async with asyncio.timeout(hard_limit):
        async with asyncio.TaskGroup() as receivers:
            try:
                progress.note(f"connecting {len(users)} users")
                await connect_users(users, handler, receivers, CONNECT_CONCURRENCY, SETUP_TIMEOUT_S)
                await ready(users)
                await asyncio.sleep(SETTLE_S)
                meter = NodeMeter(data_dirs)
                meter.start()
                client_cpu_started = time.process_time()
                stop_progress = asyncio.Event()
                reporter = asyncio.create_task(report_progress(progress, tracker, time.perf_counter(), stop_progress))
                try:
                    outcome = await send_all(users, plan, tracker)
                    drained = await drain(tracker, drain_s)
                finally:
                    stop_progress.set()
                    await reporter
                processes = meter.stop()
                client_cpu_s = time.process_time() - client_cpu_started
                closed = sum(1 for u in users if u.close_reason)
            finally:
                await asyncio.gather(*(u.close() for u in users), return_exceptions=True)
    return PhaseOutcome(send=outcome, drained_s=drained, processes=processes, closed_users=closed,
                        client_cpu_s=round(client_cpu_s, 3))


@dataclass(frozen=True, slots=True)
class TimedPhase:
    """The part every delivery scenario shares: what to send, how, what counts as
    arrived; `timed_run` sends it, waits for the deliveries and fills the result."""

    scenario: str
    urls: list[str]
    duration_s: float
    rate: float | None
    window: int
    sample: int
    drain_s: float
    delivery_type: str
    key_of: KeyOf


def timed_run(phase: TimedPhase, users: list[BenchUser], prepared: list[PreparedFrame], data_dirs: tuple[str, ...],
              capacity: SignCapacity, progress: Progress) -> tuple[BenchResult, PhaseOutcome, DeliveryTracker]:
    tracker = DeliveryTracker(sample_size=phase.sample)
    tracker.expect(prepared)
    plan = SendPlan(frames=prepared, duration_s=phase.duration_s, rate=phase.rate, window=phase.window)
    with progress, fast_runner() as runner:
        outcome = runner.run(run_phase(users, plan, tracker, frozenset({phase.delivery_type}), phase.key_of,
                                       data_dirs, phase.drain_s, progress))
    mode = f"open loop at {phase.rate:g}/s" if phase.rate is not None else f"closed loop, window {phase.window}"
    result = BenchResult(scenario=phase.scenario, urls=phase.urls, mode=mode, users=len(users),
                         duration_s=round(outcome.send.ended - outcome.send.started, 2), prepared=len(prepared))
    result.fill_deliveries(tracker, outcome.send.started, outcome.send.ended)
    result.fill_capacity(capacity)
    result.fill_processes(outcome.processes, outcome.client_cpu_s)
    return result, outcome, tracker


def cores() -> int:
    return os.cpu_count() or 1
