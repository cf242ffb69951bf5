"""The result of one bench run: one record, printed as a table, written as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .capacity import SignCapacity
from .procstats import ProcessUsage
from .tracker import DeliveryTracker, percentile


@dataclass
class BenchResult:
    scenario: str                              # dm, public, files, connect
    urls: list[str]
    mode: str                                  # "open loop at R/s" or "closed loop, window W"
    users: int
    duration_s: float                          # the timed phase as it ran
    prepared: int = 0
    sent: int = 0
    deliveries: int = 0                        # first deliveries (receiver, frame)
    deliveries_expected: int = 0
    throughput_per_s: float = 0.0              # deliveries inside the timed phase / its length
    latency_ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    refused: int = 0                           # frames the server refused by msg_ref (not lost: it said so)
    refused_by_code: dict[str, int] = field(default_factory=dict)
    lost: int = 0                              # deliveries due, neither made nor refused
    duplicated: int = 0
    unexpected: int = 0
    sample_checked: int = 0
    sample_failed: int = 0
    sign_capacity_per_s: float = 0.0
    sign_ms: float = 0.0                       # one signature, one core
    throughput_over_sign_capacity: float = 0.0
    processes: list[dict[str, Any]] = field(default_factory=list)
    client_cpu_s: float | None = None          # the bench's own process, same phase (None: not measured)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def fill_deliveries(self, tracker: DeliveryTracker, started: float, ended: float) -> None:
        self.sent = tracker.sent_count()
        self.deliveries = tracker.deliveries()
        self.deliveries_expected = tracker.deliveries_expected()
        self.lost = tracker.lost()
        self.refused = tracker.refused_count()
        self.refused_by_code = dict(sorted(tracker.refused_by_code.items()))
        if tracker.refused_then_delivered:
            self.notes.append(f"{tracker.refused_then_delivered} deliveries of frames the server had refused")
        self.duplicated = tracker.duplicates()
        self.unexpected = tracker.unexpected
        self.errors = dict(sorted(tracker.errors.items()))
        inside = sum(1 for when in tracker.delivered_times if started <= when <= ended)
        self.throughput_per_s = round(inside / max(ended - started, 1e-6), 1)
        latencies = sorted(tracker.latencies_s)
        self.latency_ms = {name: round(percentile(latencies, q) * 1000, 2)
                           for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0))}

    def fill_capacity(self, capacity: SignCapacity) -> None:
        self.sign_capacity_per_s = round(capacity.signatures_per_s, 1)
        self.sign_ms = round(capacity.seconds_per_signature * 1000, 2)
        if capacity.signatures_per_s:
            self.throughput_over_sign_capacity = round(self.throughput_per_s / capacity.signatures_per_s, 3)

    def fill_processes(self, usage: list[ProcessUsage], client_cpu_s: float | None = None) -> None:
        self.processes = [asdict(row) for row in usage]
        self.client_cpu_s = client_cpu_s

    def cpu_ms_per_delivery(self, cpu_s: float) -> float | None:
        """CPU time per first delivery: where a node's time goes besides signing."""
        return cpu_s * 1000 / self.deliveries if self.deliveries else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)


def write_json(results: list[BenchResult], path: Path, summary: dict[str, Any] | None = None) -> None:
    data: Any = json.loads(results[0].to_json()) if len(results) == 1 and not summary else {
        "runs": [json.loads(r.to_json()) for r in results], **({"summary": summary} if summary else {})}
    path.write_text(json.dumps(data, indent=2) + "\n")


def print_result(result: BenchResult, console: Console | None = None, title: str = "") -> None:
    console = console or Console()
    table = Table(title=title or f"socp bench {result.scenario}: {', '.join(result.urls)}", show_header=False)
    table.add_column("measure", style="bold")
    table.add_column("value")
    rows: list[tuple[str, str]] = [
        ("mode", f"{result.mode}, {result.users} users, {result.duration_s:.1f} s timed"),
        ("prepared / sent", f"{result.prepared} / {result.sent}"),
        ("deliveries", f"{result.deliveries} of {result.deliveries_expected}"),
        ("throughput", f"{result.throughput_per_s:.1f} deliveries/s"),
    ]
    if result.latency_ms:
        lat = result.latency_ms
        rows.append(("latency p50/p90/p99/max",
                     f"{lat['p50']:.1f} / {lat['p90']:.1f} / {lat['p99']:.1f} / {lat['max']:.1f} ms"))
    rows += [
        ("refused (ERROR naming the frame)", f"{result.refused}" + (
            f" ({', '.join(f'{code} {n}' for code, n in result.refused_by_code.items())})"
            if result.refused_by_code else "")),
        ("lost (neither delivered nor refused)", str(result.lost)),
        ("duplicated", str(result.duplicated)),
        ("unexpected", str(result.unexpected)),
        ("errors", ", ".join(f"{code} {n}" for code, n in result.errors.items()) or "none"),
        ("sample checked (decrypt + content_sig)", f"{result.sample_checked}, failed {result.sample_failed}"),
        ("sign capacity (all cores)", f"{result.sign_capacity_per_s:.1f} signatures/s ({result.sign_ms:.2f} ms each)"),
        ("throughput / sign capacity", f"{result.throughput_over_sign_capacity:.3f}"),
    ]
    for name, value in result.extra.items():
        rows.append((name.replace("_", " "), str(value)))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if result.processes:
        console.print(_process_table(result))
    for note in result.notes:
        console.print(f"note: {note}")


def _per_delivery(result: BenchResult, cpu_s: float) -> str:
    per = result.cpu_ms_per_delivery(cpu_s)
    return "" if per is None else f"{per:.3f}"


def _process_table(result: BenchResult) -> Table:
    procs = Table(title="processes during the timed phase")
    for column in ("node", "pid", "role", "CPU s", "CPU ms/delivery", "RSS MiB", "peak RSS MiB"):
        procs.add_column(column, justify="right" if column not in ("role",) else "left")
    for row in result.processes:
        procs.add_row(str(row["node"]), str(row["pid"]), row["role"], f"{row['cpu_s']:.2f}",
                      _per_delivery(result, row["cpu_s"]), f"{row['rss_mib']:.1f}", f"{row['peak_rss_mib']:.1f}")
    if result.client_cpu_s is not None:
        procs.add_row("", "", "bench client (this run)", f"{result.client_cpu_s:.2f}",
                      _per_delivery(result, result.client_cpu_s), "", "")
    return procs
