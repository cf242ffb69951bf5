"""The bench's printed table: CPU per delivery, for the node's processes and its own."""

from __future__ import annotations

from rich.console import Console

from socp.bench.procstats import ProcessUsage
from socp.bench.report import BenchResult, print_result


def result_with(deliveries: int, client_cpu_s: float | None) -> BenchResult:
    result = BenchResult(scenario="dm", urls=["ws://127.0.0.1:1"], mode="closed loop, window 4", users=2,
                         duration_s=10.0, deliveries=deliveries)
    result.fill_processes([ProcessUsage(node=0, pid=11, role="gateway", cpu_s=1.5, rss_mib=40.0, peak_rss_mib=41.0),
                           ProcessUsage(node=0, pid=12, role="verifier", cpu_s=7.25, rss_mib=40.0, peak_rss_mib=41.0)],
                          client_cpu_s)
    return result


def printed(result: BenchResult) -> str:
    console = Console(record=True, width=200)
    print_result(result, console)
    return console.export_text()


def test_cpu_per_delivery_is_shown_for_every_process_and_the_bench_itself():
    text = printed(result_with(deliveries=10_000, client_cpu_s=1.2))
    rows = {line.split("│")[3].strip(): line for line in text.splitlines() if line.count("│") >= 7}
    assert "0.150" in rows["gateway"]          # 1.5 s over 10,000 deliveries
    assert "0.725" in rows["verifier"]
    assert "0.120" in rows["bench client (this run)"]


def test_no_deliveries_leaves_the_column_empty_and_no_client_row_when_unmeasured():
    result = result_with(deliveries=0, client_cpu_s=None)
    assert result.cpu_ms_per_delivery(1.0) is None
    text = printed(result)
    assert "bench client" not in text
    assert "gateway" in text
