"""`socp up` refuses to start with one clear line, and starts no actor, when its
port is taken, its data directory is unusable or already has a running node, its key
is corrupt, or its database cannot be reached."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys

from socp import node
from socp.config import NodeConfig
from socp.ipc.endpoints import ensure_runtime_dir
from support.http import get_json
from support.nodes import free_port, processes_mentioning, seed_identity, start_node


def socp_up(data_dir, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "socp", "up", "--data-dir", str(data_dir), "--verifiers", "1", *args],
                          capture_output=True, text=True, timeout=60)


def assert_refused(result: subprocess.CompletedProcess[str], words: str, data_dir) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert processes_mentioning(str(data_dir)) == []


def test_port_in_use(keys, tmp_path) -> None:
    seed_identity(tmp_path / "n", keys[0])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_refused(socp_up(tmp_path / "n", "--port", str(port)), "in use", tmp_path / "n")


def test_port_in_use_leaves_no_new_data_dir_behind(tmp_path) -> None:
    fresh = tmp_path / "typo" / "n"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert_refused(socp_up(fresh, "--port", str(taken.getsockname()[1])), "in use", fresh)
    assert list(tmp_path.iterdir()) == []


def test_a_second_up_on_a_running_nodes_data_dir_is_refused(keys, tmp_path) -> None:
    running = start_node(tmp_path / "n", keys[0], verifiers=1)
    try:
        config_file = tmp_path / "n" / "node.json"
        config_before = config_file.read_text()
        run_dir = NodeConfig.load(tmp_path / "n").run_dir
        run_files_before = sorted(run_dir.iterdir())

        second = socp_up(tmp_path / "n", "--port", str(free_port()))

        assert second.returncode == 1, second.stdout + second.stderr
        assert f"a node is already running in {(tmp_path / 'n').resolve()} (pid {running.process.pid})" in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
        assert config_file.read_text() == config_before
        assert sorted(run_dir.iterdir()) == run_files_before   # its sockets and pid file are still there
        health = get_json(f"http://127.0.0.1:{running.port}/healthz")
        assert health.status == 200 and health.body["router_ready"], health
    finally:
        running.stop()


def test_corrupt_key(tmp_path) -> None:
    data_dir = tmp_path / "n"
    data_dir.mkdir()
    pem_label = "PRIVATE " + "KEY"  # spelled apart: this file holds no key, only a broken one
    (data_dir / "server_key.pem").write_text(f"-----BEGIN {pem_label}-----\nnot a key\n-----END {pem_label}-----\n")
    (data_dir / "identity.json").write_text('{"server_id": "2b1c1e43-5a7e-4f0b-9a53-1d7f1c0e8a11"}')
    assert_refused(socp_up(data_dir, "--port", str(free_port())), "server_key.pem", data_dir)


def test_data_dir_that_is_a_file(tmp_path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = socp_up(not_a_dir / "sub", "--port", str(free_port()))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "not writable" in result.stderr or "Not a directory" in result.stderr


def test_unreachable_database(keys, tmp_path) -> None:
    seed_identity(tmp_path / "n", keys[0])
    result = socp_up(tmp_path / "n", "--port", str(free_port()), "--db", "mysql://root@127.0.0.1:1/socp")
    assert_refused(result, "cannot reach MySQL", tmp_path / "n")


def test_stop_removes_only_the_run_files_this_run_made(tmp_path) -> None:
    config = NodeConfig(data_dir=tmp_path / "n")
    ensure_runtime_dir(config.run_dir)
    try:
        found_there = config.run_dir / "supervisor.sock"   # e.g. another node's, still in use
        found_there.write_text("")
        before_start = node.runtime_files(config)
        made_by_this_run = config.run_dir / "router.sock"
        made_by_this_run.write_text("")
        node.stop(config, subprocess.Popen([sys.executable, "-c", "pass"]), before_start)
        assert found_there.exists()
        assert not made_by_this_run.exists()
    finally:
        shutil.rmtree(config.run_dir, ignore_errors=True)
