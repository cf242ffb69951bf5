"""A verifier on another host (issue #18), as real processes: a node started with
--verifier-listen, `socp verifier` processes talking CURVE to it, DMs through the
bench. The remote signs part of them; a remote whose host vanishes mid-load (frozen,
then killed) costs its jobs a re-send and loses nothing; a remote whose key the node
does not list is refused. First over loopback TCP, then from another network
namespace over a veth pair (a second host on this machine; needs root)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from socp.bench.dm import DmOptions, run_dm
from socp.bench.keys import KeyPool
from socp.bench.launcher import free_port, start_remote_verifier
from socp.bench.targets import Target
from socp.verifier.curve import ALLOWED_FILE, PUBLIC_FILE, load_or_create_keypair
from support.nodes import start_node

pytestmark = pytest.mark.e2e

GONE = re.compile(r"remote verifier (?P<key>\S+) gone \(silent \d+ ms\) after (?P<taken>\d+) jobs; "
                  r"its (?P<held>\d+) in flight")


def test_a_remote_verifier_signs_and_its_host_vanishing_loses_nothing(keys, tmp_path: Path) -> None:
    vanishing_remote_loses_nothing(keys, tmp_path, "127.0.0.1")


def test_a_verifier_in_another_network_namespace(keys, tmp_path: Path) -> None:
    with other_host() as (node_address, prefix):
        vanishing_remote_loses_nothing(keys, tmp_path, node_address, prefix)


@contextmanager
def other_host() -> Iterator[tuple[str, tuple[str, ...]]]:
    """A network namespace joined to this one by a veth pair: (the address the node
    listens on, the command prefix that runs a process there). Skips where it cannot."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (ip netns, veth)")
    tag = secrets.token_hex(3)
    namespace, host_side, ns_side = f"socp-t{tag}", f"vh{tag}", f"vn{tag}"
    subnet = 64 + secrets.randbelow(128)
    node_address, remote_address = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    commands = [
        ["ip", "netns", "add", namespace],
        ["ip", "link", "add", host_side, "type", "veth", "peer", "name", ns_side],
        ["ip", "link", "set", ns_side, "netns", namespace],
        ["ip", "addr", "add", f"{node_address}/30", "dev", host_side],
        ["ip", "link", "set", host_side, "up"],
        ["ip", "netns", "exec", namespace, "ip", "addr", "add", f"{remote_address}/30", "dev", ns_side],
        ["ip", "netns", "exec", namespace, "ip", "link", "set", ns_side, "up"],
        ["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"],
    ]
    try:
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
            if done.returncode != 0:
                pytest.skip(f"cannot make a network namespace here: {' '.join(command)}: {done.stderr.strip()}")
        yield node_address, ("ip", "netns", "exec", namespace)
    finally:
        # Deleting the namespace deletes its end of the pair, and with it ours.
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", host_side], capture_output=True, timeout=10)


def vanishing_remote_loses_nothing(keys, tmp_path: Path, node_address: str, prefix: tuple[str, ...] = ()) -> None:
    trusted, _ = load_or_create_keypair(tmp_path / "trusted")
    stranger, _ = load_or_create_keypair(tmp_path / "stranger")
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    (node_dir / ALLOWED_FILE).write_text(f"# the one verifier host we trust\n{trusted.public}\n")
    listen = f"tcp://{node_address}:{free_port()}"
    node = start_node(node_dir, keys[0], verifiers=1, extra_args=("--verifier-listen", listen))
    remotes = []
    try:
        node_key = (node_dir / PUBLIC_FILE).read_text().strip()
        remote = start_remote_verifier(tmp_path / "trusted", listen, node_key, prefix=prefix)
        outsider = start_remote_verifier(tmp_path / "stranger", listen, node_key, prefix=prefix)
        remotes += [remote, outsider]
        assert remote.wait_for("remote verifier joined the node", 30), remote.log() + node.log(80)

        outcome: dict = {}

        def load() -> None:
            options = DmOptions(senders=2, duration_s=8.0, rate=40.0, drain_s=20.0, capacity_s=0.5, progress=False)
            outcome["result"] = run_dm(Target(urls=(node.url,)), options, keys=KeyPool((keys[1],)))

        loader = threading.Thread(target=load)
        loader.start()
        # Mid-load, the remote's host vanishes: frozen with the jobs it holds, then gone.
        assert remote.wait_for("first job from the node", 60), remote.log()
        assert not loader.join(2.0) and loader.is_alive()
        remote.freeze()
        assert _wait(lambda: GONE.search(node.log(400)), 20), node.log(60)
        remote.kill()
        loader.join(120)
        result = outcome["result"]
        assert result.sent == 320
        # Nothing lost: each DM was delivered, or refused with an ERROR naming it. While the
        # remote's jobs wait to be re-sent (its 2 s of silence, the router's re-send
        # timeout) the node signs less, and on a busy machine a sender's queue may pass
        # its fair share: OVERLOADED with a retry hint, never a silent drop.
        assert (result.lost, result.duplicated) == (0, 0), (result.errors, result.latency_ms)
        assert result.deliveries + result.refused == 320
        assert set(result.refused_by_code) <= {"OVERLOADED"}, result.refused_by_code
        assert result.sample_failed == 0          # the remote's signatures verify like the node's own

        gone = GONE.search(node.log(400))
        assert gone is not None and gone["key"] == trusted.public
        assert int(gone["taken"]) > 0             # it signed for the node before it vanished...
        assert int(gone["held"]) > 0              # ...and held jobs when it did: the router sent them again
        # The stranger was never let in, and was told why nothing happens.
        assert f"refused a verifier whose key {stranger.public}" in node.log(400)
        assert outsider.wait_for("no answer from the node", 15), outsider.log()
        assert "first job" not in outsider.log()
    finally:
        for process in remotes:
            process.stop(5)
        node.stop()


def _wait(condition, timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
