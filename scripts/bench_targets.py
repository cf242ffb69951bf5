"""Measure every performance target of the bench issue and print one table.

Each dm figure is the median of `--runs` runs of `socp bench node …` (own nodes in
temporary directories, sign capacity measured in the same run); the verifier
comparison alternates 1 and 2 verifiers so both see the same noise. Then the p99
latency at half the median maximum rate, the public channel's signatures per message,
and one connection ramp. Takes about ten minutes on a 2-core machine.

    python scripts/bench_targets.py [--runs 3] [--users 10] [--duration 10] [--connections 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def bench(args: list[str]) -> dict[str, Any]:
    """Run `socp bench node ARGS --json FILE` and return the numbers it wrote."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [sys.executable, "-m", "socp", "bench", "node", *args, "--json", str(out), "--quiet"]
        print("$ socp bench node " + " ".join(args), file=sys.stderr, flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=10_000)
    options = parser.parse_args()
    dm = ["dm", "--users", str(options.users), "--duration", str(options.duration)]

    one, two, cross = [], [], []
    for _ in range(options.runs):
        one.append(bench(["--verifiers", "1", *dm]))
        two.append(bench(["--verifiers", "2", *dm]))
        cross.append(bench(["--two-nodes", "--verifiers", "1", *dm]))

    def rates(runs: list[dict[str, Any]]) -> list[float]:
        return [run["throughput_per_s"] for run in runs]

    local_ratio = median([run["throughput_over_sign_capacity"] for run in two])
    cross_ratio = median([run["throughput_per_s"] / (run["sign_capacity_per_s"] / 2) for run in cross])
    scaling = median(rates(two)) / median(rates(one))
    half_rate = round(median(rates(two)) / 2, 1)
    latency = [bench(["--verifiers", "2", *dm, "--rate", str(half_rate)]) for _ in range(options.runs)]
    p99 = median([run["latency_ms"]["p99"] for run in latency])
    p50 = median([run["latency_ms"]["p50"] for run in latency])
    sign_ms = median([run["sign_ms"] for run in two])
    public = bench(["--verifiers", "2", "public", "--members", "10", "--duration", str(options.duration)])
    ramp = bench(["--verifiers", "2", "connect", "--users", str(options.connections),
                  "--concurrency", "100", "--hold", "10"])

    lost = sum(run["lost"] + run["duplicated"] for run in one + two + cross + latency)
    rows = [
        ("local DMs / sign capacity (2 verifiers)", f"{local_ratio:.2f}  ({median(rates(two)):.1f} DMs/s)", "≥ 0.85"),
        ("cross-server DMs / (sign capacity / 2)", f"{cross_ratio:.2f}  ({median(rates(cross)):.1f} DMs/s)", "≥ 0.75"),
        ("2 verifiers / 1 verifier", f"{scaling:.2f}  ({median(rates(one)):.1f} → {median(rates(two)):.1f})", "≥ 1.7"),
        (f"p99 latency at half max ({half_rate}/s)", f"{p99:.1f} ms (p50 {p50:.1f}); 5 × sign = {5 * sign_ms:.1f} ms",
         "≤ 5 × sign"),
        ("idle connections held", f"{ramp['extra']['still_open_after_hold']} of {options.connections}, "
         f"{ramp['extra']['server_KiB_per_connection']} KiB each, {ramp['extra']['hellos_per_s']} hellos/s",
         "≥ 10,000 at ≤ 40 KiB"),
        ("public: node signatures per message", f"{public['extra']['signatures_per_message']}", "1"),
    ]
    print(f"\nmedian of {options.runs} runs each; lost or duplicated deliveries in all dm runs: {lost}\n")
    print("| measure | measured | target |\n| --- | --- | --- |")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    print_cpu_per_dm(two, sign_ms)
    return 0


def print_cpu_per_dm(runs: list[dict[str, Any]], sign_ms: float) -> None:
    """Where the CPU of one local DM goes (2 verifiers, closed loop): the signature,
    and everything else, by process. The cores are shared, so these add up to about
    cores / throughput."""
    def per_dm(run: dict[str, Any], role: str) -> float:
        if role == "bench client":
            cpu = run.get("client_cpu_s") or 0.0
        else:
            cpu = sum(row["cpu_s"] for row in run["processes"] if row["role"] == role)
        return cpu * 1000 / max(run["deliveries"], 1)

    roles = ["verifier", "gateway", "router", "store", "bench client"]
    medians = {role: median([per_dm(run, role) for run in runs]) for role in roles}
    print(
        f"\nCPU ms per local DM, 2 verifiers, closed loop (median of {len(runs)}); one signature = {sign_ms:.2f} ms\n"
    )
    print("| process | CPU ms per DM |\n| --- | --- |")
    for role in roles:
        print(f"| {role} | {medians[role]:.3f} |")
    print(f"| all | {sum(medians.values()):.3f} |")


if __name__ == "__main__":
    sys.exit(main())
