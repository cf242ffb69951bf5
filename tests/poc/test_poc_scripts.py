"""Every attack script of poc/, run for real against a live node: each must exit 0
(the attack was blocked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HELLO_TIMEOUT

pytestmark = pytest.mark.e2e

POC = Path(__file__).resolve().parents[2] / "poc"
SCRIPTS = ["weak_keys", "replay", "presence_poisoning", "impersonation", "file_integrity", "injection",
           "resource_abuse", "connection_flood", "silent_drops", "presence_bloat", "cheap_flood"]
EXTRA = {"resource_abuse": ["--hello-timeout", str(HELLO_TIMEOUT)],
         "connection_flood": ["--connections", "1200", "--settle", "6"]}


def run_script(name: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(POC / f"{name}.py"), *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("name", SCRIPTS)
def test_attack_is_blocked(node, key_dir, name) -> None:
    result = run_script(name, "--url", node.url, "--keys", str(key_dir), *EXTRA.get(name, []))
    assert result.returncode == 0, f"{name} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "BLOCKED" in result.stdout and "SUCCEEDED" not in result.stdout


def test_replay_after_a_restart_is_blocked(key_dir, tmp_path) -> None:
    # This script runs (and restarts) a node of its own.
    from support.nodes import free_port
    result = run_script("replay_restart", "--url", f"ws://127.0.0.1:{free_port()}", "--data-dir",
                        str(tmp_path / "replay-node"), "--keys", str(key_dir), timeout=150)
    assert result.returncode == 0, f"replay_restart exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "BLOCKED" in result.stdout and "SUCCEEDED" not in result.stdout


@pytest.fixture(scope="module")
def two_linked_nodes(keys, tmp_path_factory):
    from support.nodes import start_node
    base = tmp_path_factory.mktemp("poc-mesh")
    fast_links = ("--heartbeat-interval", "0.5", "--link-timeout", "2")
    home = start_node(base / "b", keys[5], verifiers=1, extra_args=fast_links)
    bootstrap = base / "bootstrap.yaml"
    bootstrap.write_text(home.bootstrap_yaml())
    attacked = start_node(base / "a", keys[6], verifiers=1, extra_args=(*fast_links, "--bootstrap", str(bootstrap)))
    yield attacked, home
    attacked.stop()
    home.stop()


def test_identity_takeover_through_a_second_node_is_blocked(two_linked_nodes, key_dir) -> None:
    attacked, home = two_linked_nodes
    result = run_script("identity_takeover", "--url", attacked.url, "--peer-url", home.url, "--keys", str(key_dir),
                        timeout=120)
    assert result.returncode == 0, f"identity_takeover exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "BLOCKED" in result.stdout and "SUCCEEDED" not in result.stdout


def test_every_script_is_tested() -> None:
    own_nodes = ["replay_restart", "identity_takeover"]
    assert sorted(p.stem for p in POC.glob("*.py") if not p.stem.startswith("_")) == sorted(SCRIPTS + own_nodes)


@pytest.mark.parametrize("url", ["ws://192.0.2.1:8765", "ws://example.com:8765", "http://127.0.0.1:1"])
def test_non_loopback_or_bad_targets_are_refused(url) -> None:
    result = run_script("weak_keys", "--url", url, timeout=30)
    assert result.returncode == 2 and "error" in result.stderr


def test_unreachable_node_is_a_usage_error(key_dir) -> None:
    from support.nodes import free_port
    result = run_script("replay", "--url", f"ws://127.0.0.1:{free_port()}", "--keys", str(key_dir), timeout=30)
    assert result.returncode == 2
