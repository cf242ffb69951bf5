"""Where each actor listens: `ipc://` sockets in the node's runtime directory.

The parent of each stream binds, the others connect (ZeroMQ guide): the router binds
its inbox, the gateway binds its inbox and the verify-job queue, the router binds the
sign-job queue, the store binds its request socket.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# sun_path is 108 bytes on Linux; deep temp directories would overflow it.
_MAX_IPC_PATH = 100


def runtime_dir(data_dir: Path) -> Path:
    """The node's socket directory: data_dir/run, or a short /tmp path if that is too long."""
    preferred = Path(data_dir).resolve() / "run"
    if len(str(preferred)) + 24 <= _MAX_IPC_PATH:
        return preferred
    tag = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"socp-{tag}"


@dataclass(frozen=True, slots=True)
class Endpoints:
    router_inbox: str
    gateway_inbox: str
    verify_jobs: str
    sign_jobs: str
    store_requests: str

    @classmethod
    def in_dir(cls, run_dir: Path) -> Endpoints:
        def ipc(name: str) -> str:
            return f"ipc://{Path(run_dir) / name}"

        return cls(
            router_inbox=ipc("router.sock"),
            gateway_inbox=ipc("gateway.sock"),
            verify_jobs=ipc("verify.sock"),
            sign_jobs=ipc("sign.sock"),
            store_requests=ipc("store.sock"),
        )

    def socket_paths(self) -> list[Path]:
        return [Path(e.removeprefix("ipc://")) for e in
                (self.router_inbox, self.gateway_inbox, self.verify_jobs, self.sign_jobs, self.store_requests)]


def ensure_runtime_dir(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)  # sockets of this node are for its own actors only
