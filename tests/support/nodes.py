"""Start real nodes the way `socp up` does, for end-to-end tests.

Each node runs `python -m socp up` in its own temp data directory on a free port,
through the same launcher `socp bench node` uses. Node keys come from the session's
key pool (written into the data directory before start), so no test waits for
RSA-4096 key generation.
"""

from __future__ import annotations

from pathlib import Path

from socp.bench.launcher import LocalNode, free_port, processes_of, seed_identity, start_local_node
from socp.protocol import crypto

RunningNode = LocalNode

__all__ = ["RunningNode", "free_port", "processes_mentioning", "seed_identity", "start_node"]


def start_node(data_dir: Path, key: crypto.PrivateKey, *, verifiers: int = 2, port: int | None = None,
               extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None,
               server_id: str | None = None) -> RunningNode:
    return start_local_node(data_dir, verifiers=verifiers, key=key, port=port, extra_args=extra_args, env=env,
                            server_id=server_id)


def processes_mentioning(path: str) -> list[str]:
    """"pid: command line" of the live processes of the node in `path`."""
    return [f"{pid}: {' '.join(cmdline)}" for pid, cmdline in sorted(processes_of(path).items())]
