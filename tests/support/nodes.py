"""Start real nodes the way `socp up` does, for end-to-end tests.

Each node runs `python -m socp up` in its own temp data directory on a free port.
Node keys come from the session's key pool (written into the data directory
before start), so no test waits for RSA-4096 key generation.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from socp.identity import IDENTITY_FILE, KEY_FILE
from socp.protocol import crypto, keystore
from socp.protocol.ids import new_id

READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def seed_identity(data_dir: Path, key: crypto.PrivateKey, server_id: str | None = None) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    server_id = server_id or new_id()
    keystore.write_private_key(data_dir / KEY_FILE, key, None)
    (data_dir / IDENTITY_FILE).write_text(json.dumps({"server_id": server_id}))
    return server_id


@dataclass
class RunningNode:
    data_dir: Path
    port: int
    key: crypto.PrivateKey
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    leftovers_killed: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def server_id(self) -> str:
        return json.loads((self.data_dir / IDENTITY_FILE).read_text())["server_id"]

    @property
    def pubkey(self) -> str:
        return crypto.encode_public_key(self.key)

    def bootstrap_yaml(self) -> str:
        return f'bootstrap_servers:\n  - host: "127.0.0.1"\n    port: {self.port}\n    pubkey: "{self.pubkey}"\n'

    def log(self) -> str:
        return "".join(self.output[-200:])

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        # Whatever happened above, leave no actor of this node behind, and say so.
        leftovers = processes_mentioning(str(self.data_dir))
        self.leftovers_killed = len(leftovers)
        for line in leftovers:
            try:
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.process.returncode


def start_node(data_dir: Path, key: crypto.PrivateKey, *, verifiers: int = 2, port: int | None = None,
               extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
               server_id: str | None = None) -> RunningNode:
    if not (data_dir / KEY_FILE).exists():
        seed_identity(data_dir, key, server_id)
    port = port or free_port()
    command = [sys.executable, "-m", "socp", "up", "--data-dir", str(data_dir), "--port", str(port),
               "--verifiers", str(verifiers), *extra_args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env={**os.environ, **(env or {})})
    node = RunningNode(data_dir=data_dir, port=port, key=key, process=process)
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            node.output.append(line)
            if line.startswith("ready"):
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            node.stop(5)
            raise RuntimeError(f"node on port {port} did not start:\n{node.log()}")
    return node


def processes_mentioning(path: str) -> list[str]:
    """"pid: command line" of live processes with an argument that is `path` or lies
    under it (so /x/b does not match /x/bootstrap.yaml)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(arg == path or arg.startswith(path + "/") for arg in arguments):
            found.append(f"{entry.name}: {' '.join(arguments)}")
    return found
