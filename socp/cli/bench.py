"""`socp bench`: load-generate against any SOCP server on this machine.

    socp bench dm --url ws://127.0.0.1:8765 [--url2 ws://127.0.0.1:8766] --users 20 --duration 10 [--rate 100]
    socp bench dm --url ws://127.0.0.1:8765 --senders 4 --window 8     (4 heavy senders x 4 receivers)
    socp bench public --url ws://127.0.0.1:8765 --members 10 --duration 10
    socp bench files --url ws://127.0.0.1:8765 --size-mb 1
    socp bench connect --url ws://127.0.0.1:8765 --users 2000 --data-dir socp-data
    socp bench active --url ws://127.0.0.1:8765 --users 2000 --rate 200 --duration 20
    socp bench node [--verifiers 1 | --compare-verifiers 1,2] [--two-nodes] dm --users 20 --duration 10
    socp bench node active --users 10000 --rate 1000 --duration 30

Only loopback URLs are accepted. Every run is bounded in time and stops by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from socp.bench.active import MAX_USERS as MAX_ACTIVE_USERS
from socp.bench.active import ActiveOptions, run_active
from socp.bench.connect import ConnectOptions, run_connect
from socp.bench.dm import DmOptions, run_dm
from socp.bench.files import FilesOptions, run_files
from socp.bench.launcher import local_nodes
from socp.bench.presence import MAX_SERVERS, MAX_USERS_PER_SERVER, PresenceOptions, run_presence
from socp.bench.public import PublicOptions, run_public
from socp.bench.report import BenchResult, print_result, write_json
from socp.bench.targets import MAX_DURATION_S, MAX_PREPARED_FRAMES, NotLoopback, Target, check_loopback_url

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _stack(*decorators: Decorator) -> Decorator:
    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def _loopback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_loopback_url(value)
    except NotLoopback as exc:
        raise click.BadParameter(str(exc)) from None


duration_option = click.option("--duration", "duration_s", type=click.FloatRange(0.1, MAX_DURATION_S), default=10.0,
                               show_default=True, help="Seconds of the timed phase (hard cap 300).")
rate_option = click.option("--rate", type=click.FloatRange(0.1, 100_000), default=None,
                           help="Fixed total rate per second (open loop). Omit for closed loop: as fast as it goes.")
common_send_options = _stack(
    click.option("--drain", "drain_s", type=click.FloatRange(0, 60), default=10.0, show_default=True,
                 help="Seconds to wait for late deliveries after the last send."),
    click.option("--sample", type=click.IntRange(0, 1000), default=20, show_default=True,
                 help="Deliveries decrypted and verified in full after the run."),
    click.option("--transport-sig", is_flag=True, help="Also sign each frame's envelope (as `socp chat` does)."),
    click.option("--capacity-seconds", "capacity_s", type=click.FloatRange(0.5, 10), default=2.5, show_default=True,
                 help="How long to measure this machine's sign capacity."),
)
output_options = _stack(
    click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
                 help="Also write the numbers as JSON."),
    click.option("--quiet", is_flag=True, help="No live progress line."),
)
target_options = _stack(
    click.option("--url", required=True, callback=_loopback, help="ws://127.0.0.1:PORT of the server (loopback only)."),
    click.option("--url2", default=None, callback=_loopback, help="A second server: users are split across both."),
    click.option("--data-dir", "data_dirs", multiple=True, type=click.Path(path_type=Path, file_okay=False),
                 help="Data dir of a local node under load (repeat for --url2): its processes are measured."),
)

dm_options = _stack(
    click.option("--users", type=click.IntRange(2, 10_000), default=None,
                 help="Users writing to each other in pairs  [default: 10]"),
    click.option("--senders", type=click.IntRange(1, 5_000), default=None,
                 help="Instead of --users: N heavy senders, each writing to its own receiver (N x N)."),
    duration_option, rate_option,
    click.option("--window", type=click.IntRange(1, 1000), default=4, show_default=True,
                 help="Closed loop: DMs each sender may have in flight."),
    click.option("--size", type=click.IntRange(1, 446), default=64, show_default=True, help="Plaintext bytes per DM."),
    click.option("--keys", type=click.IntRange(1, 64), default=4, show_default=True,
                 help="Distinct RSA-4096 keys, shared round-robin by the users."),
    click.option("--max-frames", type=click.IntRange(1, MAX_PREPARED_FRAMES), default=MAX_PREPARED_FRAMES,
                 show_default=True, help="Cap on prepared DMs (~6 ms of CPU each)."),
    common_send_options, output_options,
)
public_options = _stack(
    click.option("--members", type=click.IntRange(1, 5_000), default=10, show_default=True,
                 help="Members that receive (besides the sender)."),
    duration_option, rate_option,
    click.option("--window", type=click.IntRange(1, 1000), default=8, show_default=True),
    click.option("--size", type=click.IntRange(1, 446), default=64, show_default=True),
    click.option("--max-frames", type=click.IntRange(1, MAX_PREPARED_FRAMES), default=MAX_PREPARED_FRAMES,
                 show_default=True),
    common_send_options, output_options,
)
files_options = _stack(
    click.option("--pairs", type=click.IntRange(1, 100), default=1, show_default=True, help="Concurrent transfers."),
    click.option("--size-mb", type=click.FloatRange(0.001, 20), default=1.0, show_default=True,
                 help="Size of each file (MB)."),
    click.option("--duration", "duration_s", type=click.FloatRange(0.1, MAX_DURATION_S), default=60.0,
                 show_default=True, help="Upper bound; the run ends when the files are through."),
    click.option("--rate", type=click.FloatRange(0.1, 100_000), default=None, help="Chunks per second (open loop)."),
    click.option("--window", type=click.IntRange(1, 4096), default=32, show_default=True),
    common_send_options, output_options,
)
connect_options = _stack(
    click.option("--users", type=click.IntRange(1, 20_000), default=100, show_default=True),
    click.option("--concurrency", type=click.IntRange(1, 1000), default=50, show_default=True,
                 help="Connections being opened at once."),
    click.option("--hold", "hold_s", type=click.FloatRange(0, MAX_DURATION_S), default=5.0, show_default=True,
                 help="Seconds to hold every connection idle."),
    click.option("--keys", type=click.IntRange(1, 64), default=2, show_default=True),
    click.option("--per-source", type=click.IntRange(0, 10_000), default=50, show_default=True,
                 help="Users per loopback source address 127.0.x.y (servers cap connections per address); 0: one."),
    output_options,
)

presence_options = _stack(
    click.option("--servers", type=click.IntRange(1, MAX_SERVERS), default=10, show_default=True,
                 help="Simulated servers that join the node."),
    click.option("--users", type=click.IntRange(1, MAX_USERS_PER_SERVER), default=1000, show_default=True,
                 help="Users each simulated server advertises."),
    click.option("--user-keys", type=click.IntRange(1, 64), default=4, show_default=True),
    click.option("--timeout", "timeout_s", type=click.FloatRange(1, MAX_DURATION_S), default=120.0,
                 show_default=True, help="Seconds the node's table gets to fill."),
    output_options,
)

active_options = _stack(
    click.option("--users", type=click.IntRange(2, MAX_ACTIVE_USERS), default=2000, show_default=True,
                 help="Users connected at once, every one of them sending."),
    click.option("--rate", type=click.FloatRange(0.1, 100_000), default=200.0, show_default=True,
                 help="DMs per second offered in all: each user sends one every users/rate seconds."),
    click.option("--duration", "--seconds", "duration_s", type=click.FloatRange(0.1, MAX_DURATION_S), default=20.0,
                 show_default=True, help="Seconds of sending (hard cap 300)."),
    click.option("--size", type=click.IntRange(1, 446), default=64, show_default=True, help="Plaintext bytes per DM."),
    click.option("--keys", type=click.IntRange(1, 64), default=4, show_default=True,
                 help="Distinct RSA-4096 keys, shared round-robin by the users."),
    click.option("--concurrency", "connect_concurrency", type=click.IntRange(1, 1000), default=100,
                 show_default=True, help="Connections being opened at once."),
    click.option("--per-source", type=click.IntRange(0, 10_000), default=50, show_default=True,
                 help="Users per loopback source address 127.0.x.y (servers cap connections per address); 0: one."),
    click.option("--max-frames", type=click.IntRange(1, MAX_PREPARED_FRAMES), default=MAX_PREPARED_FRAMES,
                 show_default=True, help="Cap on prepared DMs (~6 ms of CPU each): past it the phase is shortened."),
    click.option("--drain", "drain_s", type=click.FloatRange(0, 60), default=10.0, show_default=True,
                 help="Seconds to wait for late deliveries after the last send."),
    click.option("--sample", type=click.IntRange(0, 1000), default=20, show_default=True,
                 help="Deliveries decrypted and verified in full after the run."),
    click.option("--capacity-seconds", "capacity_s", type=click.FloatRange(0.5, 10), default=2.5, show_default=True,
                 help="How long to measure this machine's sign capacity."),
    output_options,
)

Runner = Callable[[Target, dict[str, Any]], BenchResult]


def _dm_values(values: dict[str, Any]) -> dict[str, Any]:
    """--users or --senders, not both; --users defaults to 10."""
    if values.get("senders") is not None and values.get("users") is not None:
        raise click.UsageError("give --senders (N senders x N receivers) or --users (pairs), not both")
    return {name: value for name, value in values.items() if not (name == "users" and value is None)}


def _dm(target: Target, values: dict[str, Any]) -> BenchResult:
    return run_dm(target, DmOptions(**values))


def _public(target: Target, values: dict[str, Any]) -> BenchResult:
    return run_public(target, PublicOptions(**values))


def _files(target: Target, values: dict[str, Any]) -> BenchResult:
    return run_files(target, FilesOptions(**values))


def _connect(target: Target, values: dict[str, Any]) -> BenchResult:
    return run_connect(target, ConnectOptions(**values))


def _presence(target: Target, values: dict[str, Any]) -> BenchResult:
    return run_presence(target, PresenceOptions(**values))


def _active(target: Target, values: dict[str, Any]) -> BenchResult:
    return run_active(target, ActiveOptions(**values))


def _split(values: dict[str, Any]) -> tuple[dict[str, Any], Path | None]:
    """Scenario options, and where to write JSON; --quiet becomes progress=False."""
    values = dict(values)
    json_path = values.pop("json_path", None)
    values["progress"] = not values.pop("quiet", False)
    return values, json_path


def _run_remote(runner: Runner, url: str, url2: str | None, data_dirs: tuple[Path, ...],
                values: dict[str, Any]) -> None:
    options, json_path = _split(values)
    target = Target(urls=(url, url2) if url2 else (url,), data_dirs=tuple(str(d) for d in data_dirs))
    result = runner(target, options)
    print_result(result)
    if json_path:
        write_json([result], json_path)


class WholeHelpGroup(click.Group):
    """Lists each subcommand with its whole first sentence, wrapped, never cut at "..."."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=WholeHelpGroup)
def bench() -> None:
    """Load-generate against a SOCP server (loopback only) and report throughput,
    latency, lost and duplicated deliveries, and the server's CPU and memory."""


@bench.command("dm")
@target_options
@dm_options
def dm_command(url: str, url2: str | None, data_dirs: tuple[Path, ...], **values: Any) -> None:
    """Users exchange DMs in pairs, or --senders N write to N receivers (across both
    servers when --url2 is given). Any SOCP server: ours, or a peer's."""
    _run_remote(_dm, url, url2, data_dirs, _dm_values(values))


@bench.command("public")
@target_options
@public_options
def public_command(url: str, url2: str | None, data_dirs: tuple[Path, ...], **values: Any) -> None:
    """One sender to the public channel, --members receivers."""
    _run_remote(_public, url, url2, data_dirs, values)


@bench.command("files")
@target_options
@files_options
def files_command(url: str, url2: str | None, data_dirs: tuple[Path, ...], **values: Any) -> None:
    """File throughput (MB/s) with FILE_START / FILE_CHUNK / FILE_END."""
    _run_remote(_files, url, url2, data_dirs, values)


@bench.command("connect")
@target_options
@connect_options
def connect_command(url: str, url2: str | None, data_dirs: tuple[Path, ...], **values: Any) -> None:
    """Connection ramp (hellos admitted per second) and memory per idle connection."""
    _run_remote(_connect, url, url2, data_dirs, values)


@bench.command("presence")
@target_options
@presence_options
def presence_command(url: str, url2: str | None, data_dirs: tuple[Path, ...], **values: Any) -> None:
    """N simulated servers join the node and advertise M users each: time to a
    complete table, the list answer's size and time, memory per known user."""
    _run_remote(_presence, url, url2, data_dirs, values)


@bench.command("active")
@target_options
@active_options
def active_command(url: str, url2: str | None, data_dirs: tuple[Path, ...], **values: Any) -> None:
    """Many connected users, each sending a DM every users/rate seconds: time to
    connect them, delivery latency, refusals, the node's CPU and what limits it."""
    _run_remote(_active, url, url2, data_dirs, values)


# --- bench node: start local nodes, bench them, stop them ---------------------------------


def _verifier_counts(text: str | None, default: int) -> list[int]:
    if not text:
        return [default]
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("a comma-separated list of numbers, e.g. 1,2") from None
    if not counts or any(not 1 <= c <= 64 for c in counts):
        raise click.BadParameter("each value must be between 1 and 64")
    return counts


@bench.group("node", cls=WholeHelpGroup)
@click.option("--verifiers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Verifier processes of each local node.")
@click.option("--compare-verifiers", default=None, help="Run once per value, e.g. 1,2, and print the ratios.")
@click.option("--two-nodes", is_flag=True, help="Two linked nodes; users split across them (cross-server).")
@click.pass_context
def node_group(ctx: click.Context, verifiers: int, compare_verifiers: str | None, two_nodes: bool) -> None:
    """Start local node(s) in temporary directories, bench them, stop them."""
    ctx.obj = {"verifiers": _verifier_counts(compare_verifiers, verifiers), "nodes": 2 if two_nodes else 1}


def _run_local(ctx: click.Context, runner: Runner, values: dict[str, Any]) -> None:
    options, json_path = _split(values)
    console = Console()
    results: list[BenchResult] = []
    for verifiers in ctx.obj["verifiers"]:
        console.print(f"[bold]starting {ctx.obj['nodes']} node(s) with --verifiers {verifiers}[/bold]")
        with local_nodes(ctx.obj["nodes"], verifiers) as nodes:
            result = runner(nodes.target, options)
        # Logged by each verifier when it stops: counters over the node's whole life.
        result.extra["verifiers"] = verifiers
        result.extra["verifier_counters_whole_run"] = [node.verifier_counters() for node in nodes.nodes]
        print_result(result, console, title=f"socp bench node {result.scenario}, --verifiers {verifiers}")
        results.append(result)
    summary = _comparison(results, console) if len(results) > 1 else None
    if json_path:
        write_json(results, json_path, summary)


def _comparison(results: list[BenchResult], console: Console) -> dict[str, Any]:
    base = results[0]
    table = Table(title="comparison")
    for column in ("verifiers", "throughput /s", "ratio to first", "p99 ms", "throughput / sign capacity"):
        table.add_column(column, justify="right")
    rows = []
    for result in results:
        ratio = result.throughput_per_s / base.throughput_per_s if base.throughput_per_s else 0.0
        rows.append({"verifiers": result.extra["verifiers"], "throughput_per_s": result.throughput_per_s,
                     "ratio_to_first": round(ratio, 3), "p99_ms": result.latency_ms.get("p99", 0.0),
                     "throughput_over_sign_capacity": result.throughput_over_sign_capacity})
        table.add_row(str(result.extra["verifiers"]), f"{result.throughput_per_s:.1f}", f"{ratio:.3f}",
                      f"{result.latency_ms.get('p99', 0.0):.1f}", f"{result.throughput_over_sign_capacity:.3f}")
    console.print(table)
    return {"comparison": rows}


@node_group.command("dm")
@dm_options
@click.pass_context
def node_dm(ctx: click.Context, /, **values: Any) -> None:
    """DMs between users of the local node(s)."""
    _run_local(ctx, _dm, _dm_values(values))


@node_group.command("public")
@public_options
@click.pass_context
def node_public(ctx: click.Context, /, **values: Any) -> None:
    """Public channel on the local node(s)."""
    _run_local(ctx, _public, values)


@node_group.command("files")
@files_options
@click.pass_context
def node_files(ctx: click.Context, /, **values: Any) -> None:
    """File transfer through the local node(s)."""
    _run_local(ctx, _files, values)


@node_group.command("connect")
@connect_options
@click.pass_context
def node_connect(ctx: click.Context, /, **values: Any) -> None:
    """Connection ramp against the local node(s)."""
    _run_local(ctx, _connect, values)


@node_group.command("presence")
@presence_options
@click.pass_context
def node_presence(ctx: click.Context, /, **values: Any) -> None:
    """Simulated servers join the local node and advertise their users."""
    _run_local(ctx, _presence, values)


@node_group.command("active")
@active_options
@click.pass_context
def node_active(ctx: click.Context, /, **values: Any) -> None:
    """Many connected users of the local node(s), each sending now and then."""
    _run_local(ctx, _active, values)
