"""`socp bench active`: many connected users, each sending a DM now and then (issue #18).

N users connect, at most `connect_concurrency` opening at once, from loopback source
addresses 127.0.x.y, `per_source` users each (connect.source_address: the node caps
open connections per address, `max_connections_per_address`, 64 by default, and real
users would not share one). Then one DM per slot of the schedule (schedule.py) is
encrypted and content-signed on every core while the connections stay open (the
event loop keeps answering the node's pings meanwhile), among the users that got in,
and the DMs are sent open loop: `rate` per second in all, each user one every
N / rate seconds.

Reported besides the usual counts (offered = the DMs the schedule holds for the
phase; sent, delivered, refused by code, lost): users connected and the time it took,
connections refused by reason, latency from when a DM was due to its USER_DELIVER at
the recipient, the frames the node sent users in the phase (each one RSA-4096
signature: the delivery, and an ACK to the sender, who sends too rarely for ACKs to
be coalesced), and what limits the run (bottleneck.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from socp.runtime import fast_runner, raise_open_file_limit

from .bottleneck import describe, resource_use
from .capacity import SignCapacity, measure_sign_capacity
from .connect import MIN_RAMP_HELLOS_PER_S, source_address
from .dm import check_sample, delivery_key, delivery_key_of
from .drive import Progress, SendOutcome, SendPlan, drain, report_progress, send_all
from .keys import KeyPool
from .phase import SETTLE_S, cores, make_handler, one_user_per_server
from .prepare import DmJob, FramePreparer, PreparedFrame
from .procstats import NodeMeter, ProcessUsage
from .report import BenchResult
from .schedule import ActiveSchedule
from .simulated_users import BenchUser, FrameHandler, connect_users, make_users
from .targets import MAX_DRAIN_S, MAX_DURATION_S, MAX_PREPARED_FRAMES, SETUP_TIMEOUT_S, Target
from .tracker import DeliveryTracker

MAX_USERS = 20_000
FILES_BESIDES_USERS = 1024       # worker pipes, the node's /proc files, the event loop
P99_TARGET_SIGNATURES = 5        # the bench issue's latency target: p99 within 5 signatures' time


@dataclass(frozen=True, slots=True)
class ActiveOptions:
    users: int = 2000
    rate: float = 200.0                # DMs per second, all users together
    duration_s: float = 20.0
    size: int = 64                     # plaintext bytes per DM
    keys: int = 4                      # distinct RSA-4096 keys, shared round-robin
    connect_concurrency: int = 100     # connections being opened at once
    per_source: int = 50               # users per loopback source address (0: one address)
    drain_s: float = 10.0
    sample: int = 20
    capacity_s: float = 2.5
    max_frames: int = MAX_PREPARED_FRAMES
    progress: bool = True


@dataclass
class ActiveRun:
    """What the connected part of a run measured."""

    connect_s: float = 0.0
    connected: list[BenchUser] = field(default_factory=list)
    refused_connections: Counter[str] = field(default_factory=Counter)
    connect_timed_out: bool = False
    not_listed: str = ""               # why the run did not wait for every user to be listed
    prepared: list[PreparedFrame] = field(default_factory=list)
    prepare_s: float = 0.0
    outcome: SendOutcome | None = None
    drained_s: float = 0.0
    window_s: float = 0.0              # the measured phase: sending and draining
    processes: list[ProcessUsage] = field(default_factory=list)
    client_cpu_s: float = 0.0
    frames_to_users: Counter[str] = field(default_factory=Counter)   # by type, in the measured phase
    closed_users: int = 0


# websockets' words for a close frame it received: "received 1013 (try again later) REASON; ...".
_RECEIVED_CLOSE = re.compile(r"received (?P<code>\d{4}) \([^)]*\) ?(?P<reason>[^;]*)")


def refusal_reason(text: str) -> str:
    """One wording per refusal, whichever way it was noticed: a send that met the
    close frame says it as websockets does, the receive loop as BenchUser does."""
    match = _RECEIVED_CLOSE.search(text)
    if match:
        return f"server closed with {match['code']} {match['reason']}".strip()
    return text[:120]


def counting(handler: FrameHandler, counts: Counter[str]) -> FrameHandler:
    """`handler`, counting every frame users receive by type first."""

    def handle(user: BenchUser, frame: dict[str, Any], text: str, when: float) -> None:
        counts[str(frame.get("type"))] += 1
        handler(user, frame, text, when)

    return handle


def dm_jobs(schedule: ActiveSchedule, users: list[BenchUser], count: int) -> list[DmJob]:
    """The first `count` DMs of the schedule, among `users` (the ones that got in)."""
    jobs: list[DmJob] = []
    for seq in range(count):
        sender, recipient = users[schedule.sender(seq)], users[schedule.recipient(seq)]
        jobs.append((sender.index, sender.user_id, sender.key_index, recipient.index, recipient.user_id,
                     recipient.key_index, seq))
    return jobs


async def wait_until_counted(users: list[BenchUser], timeout: float) -> str:
    """Until the list of every server counts at least every user; "" then, else why
    the run goes on without it (paging 10,000 ids would cost more than it tells)."""
    deadline = time.monotonic() + timeout
    for user in one_user_per_server(users):
        while True:
            answer = await user.list_users(timeout=30.0)
            listed = answer.get("users")
            # A whole list has no `total`; a page of a longer one (or a cut one) has.
            total = answer.get("total", len(listed) if isinstance(listed, list) else None)
            if not isinstance(total, int):
                return f"{user.url}'s list says neither users nor a total: not waited for every user to be listed"
            if total >= len(users):
                break
            if time.monotonic() > deadline:
                return f"{user.url} listed {total} of {len(users)} users after {timeout:g} s"
            await asyncio.sleep(0.2)
    return ""


def connect_timeout_s(users: int) -> float:
    """At least the setup bound, at least 50 hellos/s, never past a phase's hard cap."""
    return min(max(SETUP_TIMEOUT_S, users / MIN_RAMP_HELLOS_PER_S), MAX_DURATION_S)


async def _connect(users: list[BenchUser], handler: FrameHandler, receivers: asyncio.TaskGroup,
                   options: ActiveOptions, run: ActiveRun, progress: Progress) -> None:
    admitted: list[BenchUser] = []
    failures: list[str] = []

    def on_admitted(user: BenchUser) -> None:
        admitted.append(user)
        if len(admitted) % 100 == 0:
            progress.show(f"{len(admitted)}/{len(users)} users connected")

    started = time.perf_counter()
    try:
        await connect_users(users, handler, receivers, options.connect_concurrency, connect_timeout_s(len(users)),
                            on_admitted=on_admitted, failures=failures)
    except TimeoutError:
        run.connect_timed_out = True     # go on with the users that got in
    run.connect_s = time.perf_counter() - started
    run.refused_connections.update(refusal_reason(text) for text in failures)
    admitted_ids = {user.index for user in admitted}
    run.connected = [user for user in users if user.index in admitted_ids and not user.close_reason]
    # Half-open ones (the ramp timed out under them) take no part.
    await asyncio.gather(*(user.close() for user in users if user.index not in admitted_ids), return_exceptions=True)


async def _prepare(schedule: ActiveSchedule, run: ActiveRun, users: list[BenchUser], count: int,
                   options: ActiveOptions, preparer: FramePreparer, progress: Progress) -> None:
    jobs = dm_jobs(schedule, run.connected, count)
    progress.note(f"preparing {count} DMs on {cores()} cores, {len(run.connected)} users connected")
    started = time.perf_counter()
    # In a thread: the event loop must go on reading the users' sockets meanwhile.
    prepared = await asyncio.to_thread(preparer.direct_messages, jobs, options.size, False,
                                       lambda done, total: progress.show(f"prepared {done}/{total} DMs"))
    run.prepare_s = time.perf_counter() - started
    run.prepared = [replace(p, key=delivery_key(users[p.sender].user_id, p.key)) for p in prepared]


async def _run(users: list[BenchUser], count: int, options: ActiveOptions, tracker: DeliveryTracker,
               preparer: FramePreparer, data_dirs: tuple[str, ...], progress: Progress) -> ActiveRun:
    run = ActiveRun()
    handler = counting(make_handler(tracker, frozenset({"USER_DELIVER"}), delivery_key_of), run.frames_to_users)
    meter = NodeMeter(data_dirs)
    async with asyncio.TaskGroup() as receivers:
        try:
            progress.note(f"connecting {len(users)} users, {options.connect_concurrency} at a time")
            await _connect(users, handler, receivers, options, run, progress)
            if len(run.connected) < 2:
                return run
            run.not_listed = await wait_until_counted(run.connected, SETUP_TIMEOUT_S)
            schedule = ActiveSchedule(len(run.connected), options.rate)
            await _prepare(schedule, run, users, count, options, preparer, progress)
            tracker.expect(run.prepared)
            await asyncio.sleep(SETTLE_S)
            run.frames_to_users.clear()
            meter.start()
            window_started, cpu_started = time.perf_counter(), time.process_time()
            stop_progress = asyncio.Event()
            reporter = asyncio.create_task(report_progress(progress, tracker, window_started, stop_progress))
            try:
                plan = SendPlan(frames=run.prepared, duration_s=options.duration_s, rate=options.rate)
                run.outcome = await send_all(users, plan, tracker)
                run.drained_s = await drain(tracker, options.drain_s)
            finally:
                stop_progress.set()
                await reporter
            run.processes = meter.stop()
            run.window_s = time.perf_counter() - window_started
            run.client_cpu_s = round(time.process_time() - cpu_started, 3)
            run.closed_users = sum(1 for user in run.connected if user.close_reason)
        finally:
            await asyncio.gather(*(user.close() for user in users), return_exceptions=True)
    return run


def _frames_wanted(options: ActiveOptions) -> tuple[int, float, str]:
    """DMs to prepare, the phase's duration, and a note when the cap shortened it."""
    wanted = ActiveSchedule(2, options.rate).count(options.duration_s)
    if wanted <= options.max_frames:
        return wanted, options.duration_s, ""
    duration = options.max_frames / options.rate
    return options.max_frames, duration, (f"{wanted} DMs wanted, {options.max_frames} prepared (cap): "
                                          f"the phase lasts {duration:g} s instead of {options.duration_s:g} s")


def run_active(target: Target, options: ActiveOptions, keys: KeyPool | None = None) -> BenchResult:
    options = replace(options, users=max(2, min(options.users, MAX_USERS)),
                      duration_s=min(options.duration_s, MAX_DURATION_S), drain_s=min(options.drain_s, MAX_DRAIN_S))
    count, duration, cap_note = _frames_wanted(options)
    options = replace(options, duration_s=duration)
    open_files = raise_open_file_limit(options.users + FILES_BESIDES_USERS)
    progress = Progress("bench active", options.progress)
    keys = keys or KeyPool.generate(min(options.keys, options.users), cores())
    progress.note(f"measuring the sign capacity for {options.capacity_s:g} s")
    capacity = measure_sign_capacity(keys.ders[0], options.capacity_s)
    users = make_users(keys, target.urls, options.users)
    for user in users:
        user.source_host = source_address(user.url, user.index, options.per_source)
    tracker = DeliveryTracker(sample_size=options.sample)
    load_before = os.getloadavg()
    # The workers fork before any event loop or socket exists.
    with FramePreparer(keys.ders, cores()) as preparer, progress, fast_runner() as runner:
        run = runner.run(_run(users, count, options, tracker, preparer, target.data_dirs, progress))
    result = _result(target, options, users, run, tracker, capacity, keys)
    result.extra["load_average_1min"] = f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    result.extra["open_file_limit"] = open_files
    if open_files < options.users + 64:
        result.notes.append(f"this process may open only {open_files} files (hard limit): fewer users can connect")
    result.notes += [note for note in (cap_note, run.not_listed) if note]
    return result


def _result(target: Target, options: ActiveOptions, users: list[BenchUser], run: ActiveRun,
            tracker: DeliveryTracker, capacity: SignCapacity, keys: KeyPool) -> BenchResult:
    connected = len(run.connected)
    period = connected / options.rate if connected else 0.0
    result = BenchResult(scenario="active", urls=list(target.urls),
                         mode=f"open loop at {options.rate:g} DMs/s, each user one every {period:.1f} s",
                         users=connected, duration_s=0.0, prepared=len(run.prepared))
    result.extra["users_asked"] = options.users
    result.extra["users_connected"] = connected
    result.extra["connect_s"] = round(run.connect_s, 2)
    result.extra["hellos_per_s"] = round(connected / max(run.connect_s, 1e-6), 1)
    result.extra["connections_refused"] = dict(run.refused_connections.most_common())
    if run.connect_timed_out:
        result.notes.append(f"connecting timed out after {run.connect_s:.0f} s: the run went on with "
                            f"{connected} of {options.users} users")
    if run.outcome is None:
        result.fill_capacity(capacity)
        result.notes.append("fewer than two users connected: no DMs were sent")
        return result
    outcome = run.outcome
    result.duration_s = round(outcome.ended - outcome.started, 2)
    result.fill_deliveries(tracker, outcome.started, outcome.ended)
    result.fill_capacity(capacity)      # after the deliveries: it compares the throughput with it
    result.fill_processes(run.processes, run.client_cpu_s)
    server_keys = dict(zip(target.urls, target.server_keys, strict=False))
    result.sample_checked, result.sample_failed, problems = check_sample(tracker, users, keys, server_keys)
    result.notes += problems
    result.extra["dms_offered"] = len(run.prepared)
    result.extra["offered_per_s"] = options.rate
    result.extra["dms_prepared_in_s"] = round(run.prepare_s, 1)
    result.extra["sends_late_p99_max_ms"] = f"{outcome.late_p99_ms} / {outcome.late_max_ms}"
    signed = sum(run.frames_to_users.values())
    result.extra["node_frames_to_users"] = dict(run.frames_to_users.most_common())
    if result.deliveries:
        result.extra["node_signatures_per_delivered_dm"] = round(signed / result.deliveries, 2)
    target_ms = P99_TARGET_SIGNATURES * capacity.seconds_per_signature * 1000
    result.extra["p99_target_ms"] = round(target_ms, 1)
    result.extra["p99_within_target"] = bool(result.latency_ms) and result.latency_ms["p99"] <= target_ms
    uses = resource_use(run.window_s, run.processes, run.client_cpu_s, cores(),
                        signed / run.window_s if run.window_s else 0.0, capacity.signatures_per_s)
    result.extra["resource_use"] = {use.resource: round(use.used, 2) for use in uses}
    result.extra["what_limits_it"] = describe(uses)
    result.extra["drained_s"] = round(run.drained_s, 2)
    if outcome.send_failures:
        result.notes.append(f"{outcome.send_failures} sends on connections that had closed")
    if run.closed_users:
        result.notes.append(f"{run.closed_users} users were disconnected by the server during the phase")
    return result
