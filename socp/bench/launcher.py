"""Local nodes for `socp bench node` and the end-to-end tests: each one is
`python -m socp up` in a data directory on a free loopback port.

The launcher makes (or is given) the node's key and writes the identity before the
start, so it knows the node's public key without reading it back and tests never
wait for key generation. Bench directories live under the system temp dir, never in
the repository, and are deleted with the key in them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from socp.identity import IDENTITY_FILE, KEY_FILE
from socp.protocol import crypto, keystore
from socp.protocol.ids import new_id

from .targets import Target

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# How long two nodes get to link and exchange presence before a cross-server bench.
MESH_TIMEOUT_S = 30.0

_VERIFIER_STATS = re.compile(r"verifier stopped after [\d.]+ s: VerifierStats\((?P<fields>[^)]*)\)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def seed_identity(data_dir: Path, key: crypto.PrivateKey, server_id: str | None = None) -> str:
    """Write a node identity (server id and key file, 0600) before its first start."""
    data_dir.mkdir(parents=True, exist_ok=True)
    server_id = server_id or new_id()
    keystore.write_private_key(data_dir / KEY_FILE, key, None)
    (data_dir / IDENTITY_FILE).write_text(json.dumps({"server_id": server_id}))
    return server_id


def processes_of(data_dir: Path | str) -> dict[int, list[str]]:
    """pid -> command line of every live process with an argument that is `data_dir`
    or lies under it (so /x/b does not match /x/bootstrap.yaml)."""
    path = str(Path(data_dir).resolve())
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(arg == path or arg.startswith(path + "/") for arg in arguments):
            found[int(entry.name)] = [arg for arg in arguments if arg]
    return found


@dataclass
class LocalNode:
    data_dir: Path
    port: int
    key: crypto.PrivateKey
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    leftovers_killed: int = 0      # actors `stop()` found still alive and killed
    _pump: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pubkey(self) -> str:
        return crypto.encode_public_key(self.key)

    @property
    def server_id(self) -> str:
        """Read each time: a node that joins may adopt an id its introducer assigned."""
        server_id: str = json.loads((self.data_dir / IDENTITY_FILE).read_text())["server_id"]
        return server_id

    def bootstrap_yaml(self) -> str:
        return f'bootstrap_servers:\n  - host: "127.0.0.1"\n    port: {self.port}\n    pubkey: "{self.pubkey}"\n'

    def log(self, lines: int = 200) -> str:
        return "".join(self.output[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGINT to `socp up` (it stops supervisord and every actor), then wait.
        Whatever happened, leave no actor of this node behind, and count any found."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        leftovers = processes_of(self.data_dir)
        self.leftovers_killed = len(leftovers)
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._pump is not None:
            self._pump.join(5)
        return self.process.returncode

    def verifier_counters(self) -> dict[str, int]:
        """The verifiers' counters, summed, from the lines they log when they stop
        (so only after `stop()`): verified, rejected, signed, delivered, ..."""
        totals: dict[str, int] = {}
        for line in self.output:
            match = _VERIFIER_STATS.search(line)
            if not match:
                continue
            for pair in match.group("fields").split(","):
                name, _, value = pair.strip().partition("=")
                if value.isdigit():
                    totals[name] = totals.get(name, 0) + int(value)
        return totals


def start_local_node(data_dir: Path, *, verifiers: int, key: crypto.PrivateKey | None = None,
                     port: int | None = None, bootstrap: Path | None = None, extra_args: Sequence[str] = (),
                     env: dict[str, str] | None = None, server_id: str | None = None,
                     ready_timeout: float = READY_TIMEOUT_S) -> LocalNode:
    """Start `socp up` in `data_dir` and wait for "ready". A data directory without an
    identity gets one made from `key` (a new key if none is given)."""
    if (data_dir / KEY_FILE).exists():
        if key is None:
            raise ValueError("give the key of the existing node identity")
    else:
        key = key or crypto.generate_private_key()
        seed_identity(data_dir, key, server_id)
    port = port or free_port()
    command = [sys.executable, "-m", "socp", "up", "--data-dir", str(data_dir), "--host", "127.0.0.1",
               "--port", str(port), "--verifiers", str(verifiers)]
    if bootstrap is not None:
        command += ["--bootstrap", str(bootstrap)]
    command += list(extra_args)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env={**os.environ, **(env or {})})
    node = LocalNode(data_dir=data_dir, port=port, key=key, process=process)
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            node.output.append(line)
            if line.startswith("ready"):
                ready.set()

    node._pump = threading.Thread(target=pump, name=f"node-{port}-output", daemon=True)
    node._pump.start()
    deadline = time.monotonic() + ready_timeout
    while not ready.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            node.stop(5)
            raise RuntimeError(f"the node on port {port} did not start:\n{node.log(60)}")
    return node


@dataclass
class LocalNodes:
    nodes: list[LocalNode]

    @property
    def target(self) -> Target:
        return Target(urls=tuple(n.url for n in self.nodes), data_dirs=tuple(str(n.data_dir) for n in self.nodes),
                      server_keys=tuple(n.pubkey for n in self.nodes))


@contextmanager
def local_nodes(count: int, verifiers: int, keys: Sequence[crypto.PrivateKey] = ()) -> Iterator[LocalNodes]:
    """`count` nodes (1 or 2); the second joins the first through a bootstrap file.
    Everything is stopped and deleted on exit, whatever happened."""
    base = Path(tempfile.mkdtemp(prefix="socp-bench-"))
    started: list[LocalNode] = []
    try:
        first = start_local_node(base / "node1", verifiers=verifiers, key=keys[0] if keys else None)
        started.append(first)
        for index in range(1, count):
            bootstrap = base / "bootstrap.yaml"
            bootstrap.write_text(first.bootstrap_yaml())
            started.append(start_local_node(base / f"node{index + 1}", verifiers=verifiers,
                                            key=keys[index] if len(keys) > index else None, bootstrap=bootstrap))
        yield LocalNodes(started)
    finally:
        for node in reversed(started):
            node.stop()
        shutil.rmtree(base, ignore_errors=True)


# --- verifiers on other hosts (socp verifier; issue #18) ------------------------------------


@dataclass
class RemoteVerifierProcess:
    """`socp verifier` in its own data dir, optionally in another network namespace."""

    data_dir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    _pump: threading.Thread | None = None

    def log(self) -> str:
        return "".join(self.output)

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.output):
                return True
            if self.process.poll() is not None:
                return any(text in line for line in self.output)
            time.sleep(0.05)
        return False

    def freeze(self) -> None:
        """As if its host vanished: it holds its jobs and says nothing more."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        if self._pump is not None:
            self._pump.join(5)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


def start_remote_verifier(data_dir: Path, node_url: str, node_key: str, *,
                          prefix: Sequence[str] = ()) -> RemoteVerifierProcess:
    """Start `socp verifier --node node_url` (behind `prefix`, e.g. `ip netns exec NS`);
    its key pair must be in `data_dir` already (curve.load_or_create_keypair)."""
    command = [*prefix, sys.executable, "-m", "socp", "verifier", "--node", node_url, "--data-dir", str(data_dir),
               "--node-key", node_key]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    remote = RemoteVerifierProcess(data_dir=data_dir, process=process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            remote.output.append(line)

    remote._pump = threading.Thread(target=pump, name="remote-verifier-output", daemon=True)
    remote._pump.start()
    return remote
