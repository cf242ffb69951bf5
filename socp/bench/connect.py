"""`socp bench connect`: the connection ramp and the cost of an idle connection.

N users connect and say hello, at most `concurrency` at a time; a user counts as
admitted when the node shows it accepted the hello (users.BenchUser.admitted).
Then every connection is held idle for `hold` seconds. Memory per connection is
the growth of the local node processes' RSS (from /proc) divided by N.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from socp.runtime import fast_runner, raise_open_file_limit

from .drive import Progress
from .keys import KeyPool
from .phase import cores
from .procstats import NodeMeter
from .report import BenchResult
from .simulated_users import BenchUser, connect_users, make_users
from .targets import MAX_DURATION_S, SETUP_TIMEOUT_S, Target
from .tracker import percentile

MAX_USERS = 20_000


def source_address(url: str, index: int, per_source: int) -> str:
    """A loopback source address for user `index`: a server may cap connections per
    remote address (ours: max_connections_per_address, 64), and 2,000 real users
    would not share one address. Only for IPv4 loopback targets."""
    host = urlsplit(url).hostname or ""
    if per_source <= 0 or not host.startswith("127."):
        return ""
    slot = index // per_source
    return f"127.0.{slot // 250}.{slot % 250 + 2}"


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    users: int = 100
    concurrency: int = 50
    hold_s: float = 5.0
    keys: int = 2
    per_source: int = 50               # users per loopback source address (0: one address)
    timeout_s: float = SETUP_TIMEOUT_S
    progress: bool = True


async def _ramp(users: list[BenchUser], options: ConnectOptions, meter: NodeMeter,
                progress: Progress) -> dict[str, Any]:
    frames_seen: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    failures: list[str] = []
    hello_latency: list[float] = []

    def handle(user: BenchUser, frame: dict[str, Any], text: str, when: float) -> None:
        frame_type = str(frame.get("type"))
        frames_seen[frame_type] += 1
        if frame_type == "ERROR":
            errors[str((frame.get("payload") or {}).get("code"))] += 1

    def admitted(user: BenchUser) -> None:
        hello_latency.append(time.perf_counter() - user.connect_started)
        if len(hello_latency) % 50 == 0 or len(hello_latency) == len(users):
            progress.show(f"{len(hello_latency)}/{len(users)} admitted")

    rss_before = meter.rss_kib()
    async with asyncio.timeout(options.timeout_s + options.hold_s + 30):
        async with asyncio.TaskGroup() as receivers:
            try:
                started = time.perf_counter()
                timed_out = False
                try:
                    await connect_users(users, handle, receivers, options.concurrency, options.timeout_s,
                                        on_admitted=admitted, failures=failures)
                except TimeoutError:
                    timed_out = True  # report how far the ramp got
                ramp_s = time.perf_counter() - started
                rss_ramped = meter.rss_kib()
                progress.show(f"holding {len(users)} connections for {options.hold_s:g} s")
                await asyncio.sleep(options.hold_s)
                rss_held = meter.rss_kib()
                still_open = sum(1 for u in users if not u.close_reason)
            finally:
                await asyncio.gather(*(u.close() for u in users), return_exceptions=True)
    latencies = sorted(hello_latency)
    return {
        "ramp_s": ramp_s,
        "timed_out": timed_out,
        "refused": dict(Counter(failures)),
        "admitted": len(hello_latency),
        "still_open": still_open,
        "rss_before_kib": rss_before,
        "rss_ramped_kib": rss_ramped,
        "rss_held_kib": rss_held,
        "hello_ms": {
            name: round(percentile(latencies, q) * 1000, 1)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        },
        "frames_seen": dict(frames_seen),
        "errors": dict(errors),
    }


MIN_RAMP_HELLOS_PER_S = 50


def run_connect(target: Target, options: ConnectOptions, keys: KeyPool | None = None) -> BenchResult:
    count = max(1, min(options.users, MAX_USERS))
    hold = min(options.hold_s, MAX_DURATION_S)
    # A big ramp gets longer than the default setup bound: at least 50 hellos/s, never
    # past the hard cap of any timed phase.
    ramp_s = min(max(options.timeout_s, count / MIN_RAMP_HELLOS_PER_S), MAX_DURATION_S)
    options = replace(options, users=count, hold_s=hold, timeout_s=ramp_s)
    raise_open_file_limit(count + 256)
    progress = Progress("bench connect", options.progress)
    keys = keys or KeyPool.generate(min(options.keys, count), cores())
    users = make_users(keys, target.urls, count)
    for user in users:
        user.source_host = source_address(user.url, user.index, options.per_source)
    meter = NodeMeter(target.data_dirs)
    meter.start()
    progress.note(f"connecting {count} users, {options.concurrency} at a time")
    with progress, fast_runner() as runner:
        ramp = runner.run(_ramp(users, options, meter, progress))
    result = BenchResult(
        scenario="connect",
        urls=list(target.urls),
        mode=f"ramp, {options.concurrency} at a time",
        users=count,
        duration_s=round(ramp["ramp_s"], 2),
    )
    result.errors = ramp["errors"]
    result.fill_processes(meter.stop())
    result.extra["hellos_admitted"] = ramp["admitted"]
    result.extra["refused"] = ramp["refused"]
    if ramp["timed_out"]:
        result.notes.append(f"the ramp did not finish within {options.timeout_s:g} s")
    result.extra["hellos_per_s"] = round(ramp["admitted"] / max(ramp["ramp_s"], 1e-6), 1)
    result.extra["hello_latency_ms"] = ramp["hello_ms"]
    result.extra["still_open_after_hold"] = ramp["still_open"]
    result.extra["frames_received_during_ramp"] = ramp["frames_seen"]
    if target.data_dirs:
        grown = ramp["rss_held_kib"] - ramp["rss_before_kib"]
        result.extra["server_rss_before_MiB"] = round(ramp["rss_before_kib"] / 1024, 1)
        result.extra["server_rss_held_MiB"] = round(ramp["rss_held_kib"] / 1024, 1)
        result.extra["server_KiB_per_connection"] = round(grown / count, 1)
    else:
        result.notes.append("no --data-dir: server memory is not measured")
    return result
