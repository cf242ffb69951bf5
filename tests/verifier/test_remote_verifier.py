"""A verifier on another host (issue #18), as real processes: a node started with
--verifier-listen on loopback TCP, `socp verifier` processes talking CURVE to it, DMs
through the bench. The remote signs part of them; a remote whose host vanishes
mid-load (frozen, then killed) costs its jobs a re-send and loses nothing; a remote
whose key the node does not list is refused."""

from __future__ import annotations

import re
import threading
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
    trusted, _ = load_or_create_keypair(tmp_path / "trusted")
    stranger, _ = load_or_create_keypair(tmp_path / "stranger")
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    (node_dir / ALLOWED_FILE).write_text(f"# the one verifier host we trust\n{trusted.public}\n")
    listen = f"tcp://127.0.0.1:{free_port()}"
    node = start_node(node_dir, keys[0], verifiers=1, extra_args=("--verifier-listen", listen))
    remotes = []
    try:
        node_key = (node_dir / PUBLIC_FILE).read_text().strip()
        remote = start_remote_verifier(tmp_path / "trusted", listen, node_key)
        outsider = start_remote_verifier(tmp_path / "stranger", listen, node_key)
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
        assert (result.deliveries, result.lost, result.refused, result.duplicated) == (320, 0, 0, 0), (
            result.refused_by_code, result.errors, result.latency_ms, node.log(400))
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
