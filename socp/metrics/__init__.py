"""Prometheus metrics for the node (`socp up --metrics HOST:PORT`, docs/deploy.md).

The node is several processes, so its numbers meet in prometheus_client's
multiprocess mode: every actor writes its metrics to memory-mapped files in one
directory (`multiproc_dir`, wiped by each `socp up`), and the metrics actor
(`actor.py`) serves their sum at `http://HOST:PORT/metrics`. Who writes what:

    gateway    frames written by type, delivery latency, connections by state, queue
               depths (outbox, reorder, kept), the /healthz counters, the database
               state and server links as the router reports them    (gateway.py)
    verifier   frames received by type and outcome, frame checks and signatures with
               their time                                             (verifier.py)
    router     users online, sign jobs in flight, store writes queued (router.py)

Hot paths only count in plain Python; the gateway pushes its counts once a second
(FLUSH_SECONDS), the router on its tick. Without --metrics the same objects count
in memory and nobody reads them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from socp.config import NodeConfig

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiproc_dir(config: NodeConfig) -> Path:
    return config.run_dir / "metrics"


def prepare_environment(config: NodeConfig) -> None:
    """Before prometheus_client is imported (it picks its value store at import):
    point it at the node's directory, or away from any directory the caller's
    environment named when metrics are off."""
    if config.metrics:
        if "prometheus_client.values" in sys.modules and MULTIPROC_ENV not in os.environ:
            raise RuntimeError("prometheus_client was imported before its multiprocess directory was set")
        os.environ[MULTIPROC_ENV] = str(multiproc_dir(config))
    else:
        os.environ.pop(MULTIPROC_ENV, None)
        os.environ.pop(MULTIPROC_ENV.lower(), None)


def reset_directory(config: NodeConfig) -> None:
    """`socp up`, before any actor starts: counters begin at zero with each start."""
    directory = multiproc_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def run(config: NodeConfig) -> int:
    """`socp actor metrics` (actor.py)."""
    from .actor import run as run_actor

    return run_actor(config)
