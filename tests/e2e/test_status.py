"""`socp status` against a real node: every actor RUNNING with a pid; a SIGKILLed
router comes back under supervisord with a new pid and a restart count of 1; a
stopped node gets a clear message and a non-zero exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from socp.cli.status import EXIT_NOT_RUNNING, restart_counts
from support.nodes import start_node

pytestmark = pytest.mark.e2e

ACTORS = {"store", "router", "gateway", "verifier-0", "verifier-1"}


def socp_status(data_dir, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "socp", "status", "--data-dir", str(data_dir), *extra],
                          capture_output=True, text=True, timeout=30)


def status_json(data_dir) -> dict:
    result = socp_status(data_dir, "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {actor["name"]: actor for actor in report["actors"]}


def settled_status(data_dir, timeout: float = 10.0) -> dict:
    """The status once no actor is STARTING any more: supervisord calls an actor
    RUNNING only after `startsecs` (1 s), while the node may answer sooner."""
    deadline = time.monotonic() + timeout
    while True:
        report = status_json(data_dir)
        if all(actor["state"] != "STARTING" for actor in report["actors"]) or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def test_status_follows_a_killed_router(keys, tmp_path) -> None:
    node = start_node(tmp_path / "n", keys[0], verifiers=2)
    try:
        report = settled_status(node.data_dir)
        actors = by_name(report)
        assert set(actors) == ACTORS
        for actor in actors.values():
            assert actor["state"] == "RUNNING" and actor["pid"], actor
            assert actor["restarts"] == 0, actor
        assert report["gateway"]["status"] == "ok"
        assert "kept_frames" in report["gateway"]["queues"]

        old_pid = actors["router"]["pid"]
        os.kill(old_pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            router = by_name(status_json(node.data_dir))["router"]
            if router["state"] == "RUNNING" and router["pid"] not in (None, old_pid):
                break
            assert time.monotonic() < deadline, f"router not restarted: {router}"
            time.sleep(0.2)
        assert router["restarts"] == 1
        others = by_name(status_json(node.data_dir))
        assert all(others[name]["restarts"] == 0 for name in ACTORS - {"router"})

        table = socp_status(node.data_dir)
        assert table.returncode == 0, table.stderr
        assert "router" in table.stdout and "RUNNING" in table.stdout and "kept_frames" in table.stdout
    finally:
        node.stop()

    stopped = socp_status(node.data_dir)
    assert stopped.returncode == EXIT_NOT_RUNNING
    assert "not running" in stopped.stderr
    assert json.loads(socp_status(node.data_dir, "--json").stdout)["running"] is False


def test_status_without_a_node(tmp_path) -> None:
    result = socp_status(tmp_path / "nothing")
    assert result.returncode != 0 and "no node in" in result.stderr


def test_restarts_count_only_this_supervisords_spawns() -> None:
    log = "\n".join([
        "2024-01-01 INFO supervisord started with pid 100",
        "2024-01-01 INFO spawned: 'router' with pid 1",
        "2024-01-01 INFO spawned: 'router' with pid 2",
        "2024-01-01 INFO supervisord started with pid 200",
        "2024-01-01 INFO spawned: 'router' with pid 3",
        "2024-01-01 INFO spawned: 'verifier-0' with pid 4",
        "2024-01-01 WARN exited: router (terminated by SIGKILL; not expected)",
        "2024-01-01 INFO spawned: 'router' with pid 5",
    ])
    assert restart_counts(log, 200) == {"router": 1, "verifier-0": 0}
    assert restart_counts(log, 100) == {"router": 1}
    assert restart_counts(log, 999) == {}


def test_the_server_link_table_shows_peer_address_state_and_reason() -> None:
    from rich.console import Console

    from socp.cli.status import print_server_links

    console = Console(record=True, width=200, color_system=None)
    print_server_links(console, [
        {"peer_id": "master_server_1", "address": "127.0.0.1:9410", "state": "joined", "reason": "",
         "dropped": 3, "dialect": "g45", "goes_by": "server_7f3e", "opt_in": "g45_server_alias"},
        {"peer_id": "", "address": "127.0.0.1:9461", "state": "refused", "dropped": 0, "dialect": "",
         "reason": "we refused its SERVER_WELCOME: INVALID_SIG: frame is not signed [red]x[/]"},
    ])
    text = console.export_text()
    assert "master_server_1 (g45)" in text and "127.0.0.1:9410" in text and "joined" in text
    assert "server_7f3e" in text and "our id" in text   # the opt-in alias, visibly; else our own id
    assert "g45_server_alias" in text                    # and the bootstrap opt-in the link runs under
    assert "refused" in text and "INVALID_SIG: frame is not signed [red]x[/]" in text   # peer text not markup
    console = Console(record=True, width=200, color_system=None)
    print_server_links(console, [])
    assert "server links: none" in console.export_text()


def test_every_state_a_server_link_row_can_be_in_has_its_colour() -> None:
    from socp.cli.status import LINK_STYLES
    from socp.ipc.link_state import SERVER_LINK_MOVES

    assert set(LINK_STYLES) == {state.value for state in SERVER_LINK_MOVES}
    assert LINK_STYLES["joined"] == "green" and LINK_STYLES["refused"] == "red"
