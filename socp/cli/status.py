"""`socp status`: a node's health at a glance (STYLE §10).

Two sources, both local: supervisord's XML-RPC interface on the unix socket in the
node's run directory (each actor's state, pid and uptime), and the gateway's
`/healthz` (queue depths, the database's state). supervisord keeps no restart
count, so restarts are counted from its own log (`<run dir>/supervisord.log`,
loglevel info): every `spawned: 'NAME'` line after this supervisord's start line,
minus the first spawn.

Exit status, as supervisorctl's: 0 when every actor is RUNNING, 1 when some actor is
not (the table still prints), 3 when the node is not running at all.
"""

from __future__ import annotations

import json
import re
import socket
import xmlrpc.client
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
from supervisor.xmlrpc import SupervisorTransport, UnixStreamHTTPConnection

from socp import node
from socp.config import NodeConfig
from socp.ipc.link_state import LinkState

if TYPE_CHECKING:
    from rich.console import Console

RPC_TIMEOUT = 5.0          # seconds for supervisord to answer; it answers at once unless wedged
HEALTH_TIMEOUT = 2.0
EXIT_DEGRADED = 1
EXIT_NOT_RUNNING = 3       # as LSB init scripts and supervisorctl: "program is not running"

_SPAWNED = re.compile(r"spawned: '(?P<name>[^']+)' with pid \d+")
_STARTED = re.compile(r"supervisord started with pid (?P<pid>\d+)")

# /healthz "queues" keys shown in the table, in this order.
QUEUE_KEYS = ("kept_frames", "outbox_frames", "largest_outbox", "reorder_waiting", "reader_waits")


class NodeNotRunning(Exception):
    """The node's supervisord does not answer; the message says where we looked."""


@dataclass(frozen=True, slots=True)
class ActorStatus:
    name: str                 # supervisord's process name: "router", "verifier-0", ...
    state: str                # RUNNING, STARTING, BACKOFF, EXITED, FATAL, STOPPED, ...
    pid: int | None
    uptime_s: int | None      # seconds in the current run; None unless running
    restarts: int             # spawns since this supervisord started, minus the first
    description: str          # supervisord's own words ("pid 42, uptime 0:01:02", "Exited too quickly")


def restart_counts(log_text: str, supervisord_pid: int) -> dict[str, int]:
    """Restarts per process name, from the log of the supervisord with this pid.

    The log survives a node restart (supervisord appends), so only lines after that
    supervisord's start line count. Each spawn after a process's first is a restart:
    automatic, after a crash or a failed start, or asked for through supervisorctl.
    """
    lines = log_text.splitlines()
    ours = [i for i, line in enumerate(lines) if (m := _STARTED.search(line)) and int(m["pid"]) == supervisord_pid]
    spawns: dict[str, int] = {}
    for line in lines[ours[-1] + 1:] if ours else ():
        if _STARTED.search(line):
            break   # a later supervisord's run (ours is gone)
        spawned = _SPAWNED.search(line)
        if spawned:
            spawns[spawned["name"]] = spawns.get(spawned["name"], 0) + 1
    return {name: count - 1 for name, count in spawns.items()}


class _TimedUnixConnection(UnixStreamHTTPConnection):  # type: ignore[misc]  # supervisor ships no types
    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(RPC_TIMEOUT)
        self.sock.connect(self.socketfile)


class _TimedTransport(SupervisorTransport):  # type: ignore[misc]  # supervisor ships no types
    """supervisor's unix-socket transport, with a bound on every wait."""

    def __init__(self, socket_path: Path) -> None:
        # The control socket's password (node.new_control_secret); None for a node
        # started before there was one.
        super().__init__(username="socp", password=node.control_secret(socket_path.parent),
                         serverurl=f"unix://{socket_path}")

        def connect() -> _TimedUnixConnection:
            connection = _TimedUnixConnection("localhost")
            connection.socketfile = str(socket_path)
            return connection

        self._get_connection = connect


def supervisor_proxy(run_dir: Path) -> xmlrpc.client.ServerProxy:
    # The URL's host is ignored: the transport talks to the unix socket.
    return xmlrpc.client.ServerProxy("http://localhost", transport=_TimedTransport(run_dir / "supervisor.sock"))


def actor_statuses(config: NodeConfig) -> tuple[int, list[ActorStatus]]:
    """supervisord's pid and each actor's status; raise NodeNotRunning if it does not answer."""
    sock = config.run_dir / "supervisor.sock"
    if not sock.exists():
        raise NodeNotRunning(f"the node in {config.data_dir} is not running (no supervisord socket at {sock})")
    proxy = supervisor_proxy(config.run_dir)
    try:
        # XML-RPC answers are untyped: an int, and a list of one dict per process.
        supervisord_pid = int(cast(int, proxy.supervisor.getPID()))
        infos = cast(list[dict[str, Any]], proxy.supervisor.getAllProcessInfo())
    except (OSError, xmlrpc.client.Error) as exc:
        raise NodeNotRunning(f"the node in {config.data_dir} is not running "
                             f"(supervisord does not answer on {sock}: {exc})") from None
    log_path = config.run_dir / node.SUPERVISOR_LOG
    try:
        restarts = restart_counts(log_path.read_text(errors="replace"), supervisord_pid)
    except FileNotFoundError:
        restarts = {}
    actors = []
    for info in infos:
        running = info["statename"] in ("RUNNING", "STOPPING") and info["pid"]
        actors.append(ActorStatus(
            name=info["name"], state=info["statename"], pid=info["pid"] or None,
            uptime_s=max(0, info["now"] - info["start"]) if running else None,
            restarts=restarts.get(info["name"], 0), description=info["description"]))
    return supervisord_pid, actors


def format_uptime(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def print_tables(config: NodeConfig, supervisord_pid: int, actors: list[ActorStatus],
                 health: dict[str, Any] | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"node {config.ws_url}  data dir {config.data_dir}  supervisord pid {supervisord_pid}")
    table = Table("actor", "state", "pid", "uptime", "restarts", box=None, header_style="bold")
    for actor in actors:
        style = "green" if actor.state == "RUNNING" else "yellow" if actor.state in ("STARTING", "BACKOFF") else "red"
        table.add_row(actor.name, f"[{style}]{actor.state}[/]", str(actor.pid or "-"), format_uptime(actor.uptime_s),
                      str(actor.restarts))
    console.print(table)
    if health is None:
        console.print(f"[red]gateway: no /healthz answer on port {config.port}[/]")
        return
    database = health.get("database")
    if isinstance(database, dict):
        state = str(database.get("state", "?"))
        style = "green" if state == "available" else "red"
        line = f"database: [{style}]{state}[/]"
        if state != "available":
            line += escape(f" since {database.get('since')}: {database.get('detail', '')}")
        console.print(line)
    queues = Table("queue", "depth", box=None, header_style="bold")
    queues.add_row("open_connections", str(health.get("open_connections", "?")))
    for key in QUEUE_KEYS:
        queues.add_row(key, str(health.get("queues", {}).get(key, "?")))
    console.print(queues)
    print_server_links(console, health.get("server_links"))


# A server link's row is in one of the link book's states (ipc/link_state.py); any
# other word (a newer node's) shows red.
LINK_STYLES = {LinkState.JOINED.value: "green", LinkState.DIALLING.value: "yellow",
               LinkState.REFUSED.value: "red", LinkState.LOST.value: "red"}


def print_server_links(console: Console, links: object) -> None:
    """One row per peer server (the router's link book, via /healthz `server_links`):
    who, where, in what state, and the last reason it was refused or dropped a frame."""
    from rich.markup import escape
    from rich.table import Table

    if not isinstance(links, list) or not links:
        console.print("server links: none")
        return
    table = Table("server link", "address", "state", "dropped", "we go by", "opt-in", "reason", box=None,
                  header_style="bold")
    for row in links:
        if not isinstance(row, dict):
            continue
        state = str(row.get("state", "?"))
        style = LINK_STYLES.get(state, "red")
        peer = str(row.get("peer_id") or "?")
        dialect = str(row.get("dialect") or "")
        table.add_row(escape(peer + (f" ({dialect})" if dialect else "")), escape(str(row.get("address", "?"))),
                      f"[{style}]{escape(state)}[/]", str(row.get("dropped", 0)),
                      escape(str(row.get("goes_by") or "our id")), escape(str(row.get("opt_in") or "")),
                      escape(str(row.get("reason", ""))))
    console.print(table)


@click.command()
@click.option("--data-dir", default=Path("socp-data"), show_default=True, envvar="SOCP_DATA_DIR",
              type=click.Path(path_type=Path, file_okay=False), help="The node's data directory.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
def status(data_dir: Path, as_json: bool) -> None:
    """Each actor's state, pid, uptime and restarts, the gateway's queue depths, and
    every server link (peer, address, state, last refusal or dropped-frame reason)."""
    try:
        config = NodeConfig.load(data_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise click.ClickException(f"no node in {data_dir} (cannot read its node.json: {exc})") from None
    try:
        supervisord_pid, actors = actor_statuses(config)
    except NodeNotRunning as exc:
        if as_json:
            click.echo(json.dumps({"running": False, "data_dir": str(config.data_dir), "reason": str(exc)}))
        else:
            click.echo(str(exc), err=True)
        raise SystemExit(EXIT_NOT_RUNNING) from None
    health = node.health(config, timeout=HEALTH_TIMEOUT)
    if as_json:
        click.echo(json.dumps({
            "running": True, "data_dir": str(config.data_dir), "url": config.ws_url,
            "supervisord_pid": supervisord_pid, "actors": [asdict(a) for a in actors], "gateway": health,
        }, indent=2))
    else:
        print_tables(config, supervisord_pid, actors, health)
    if any(actor.state != "RUNNING" for actor in actors):
        raise SystemExit(EXIT_DEGRADED)
