"""Live nodes for the attack scripts and the fuzzer (started once per module): one node,
or a mesh of three."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from support.nodes import start_node

HELLO_TIMEOUT = 2.0   # seconds; short so the slowloris attack is cut off quickly
MESH_TIMEOUT = 30.0   # seconds for three nodes to link to one another


@pytest.fixture(scope="module")
def node(keys, tmp_path_factory):
    running = start_node(tmp_path_factory.mktemp("poc-node") / "data", keys[0], verifiers=2,
                         extra_args=("--hello-timeout", str(HELLO_TIMEOUT)))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def mesh(keys, tmp_path_factory):
    """Nodes A, B, C, fully linked, started as the README's "three nodes on one machine":
    A first, then B and C with a bootstrap file naming A. A, the node attacked, is
    configured like `node` above. Link timing is left at its defaults: resource_abuse's
    joined server sends no heartbeats, and a short --link-timeout would cut it off.
    Yields (A, B, C, the bootstrap file)."""
    base = tmp_path_factory.mktemp("poc-mesh")
    started = [start_node(base / "a", keys[0], verifiers=2,
                          extra_args=("--hello-timeout", str(HELLO_TIMEOUT)))]
    try:
        bootstrap = base / "bootstrap.yaml"
        bootstrap.write_text(started[0].bootstrap_yaml())
        for index, name in enumerate(("b", "c")):
            started.append(start_node(base / name, keys[5 + index], verifiers=1,
                                      extra_args=("--bootstrap", str(bootstrap))))
        wait_fully_linked(started)
        yield (*started, bootstrap)
    finally:
        for running in reversed(started):
            running.stop()


def wait_fully_linked(nodes: list) -> None:
    """Until every node reports every other one linked (state "joined") in /healthz server_links."""
    deadline = time.monotonic() + MESH_TIMEOUT
    while True:
        missing = {}
        for running in nodes:
            with urllib.request.urlopen(f"http://127.0.0.1:{running.port}/healthz", timeout=5) as answer:
                rows = json.loads(answer.read()).get("server_links", [])
            linked = {row["peer_id"] for row in rows if row.get("state") == "joined"}
            others = {other.server_id for other in nodes if other is not running}
            if not others <= linked:
                missing[running.port] = rows
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the mesh did not link within {MESH_TIMEOUT} s: {missing}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def key_dir(keys, tmp_path_factory) -> Path:
    """The session's keys as PEM files for the scripts' --keys (a temp dir, never the repo)."""
    directory = tmp_path_factory.mktemp("poc-keys")
    directory.chmod(0o700)
    for index in range(1, 11):
        pem = keys[index].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        path = directory / f"key{index:02d}.pem"
        path.write_bytes(pem)
        path.chmod(0o600)
    return directory
