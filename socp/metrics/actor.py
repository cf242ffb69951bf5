"""`socp actor metrics`: serve every actor's metrics, summed, at http://HOST:PORT/metrics
(Prometheus text format, prometheus_client's own HTTP server; STYLE §10: a separate
local listener). Runs until SIGTERM or SIGINT."""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from socp.config import NodeConfig
from socp.runtime import setup_logging

from . import multiproc_dir
from .address import MetricsAddressError, parse_metrics_address

log = logging.getLogger("socp.metrics")

EXIT_CANNOT_LISTEN = 2


class LiveProcessesCollector:
    """MultiProcessCollector, after forgetting the gauges of processes that died (a
    crashed verifier's last queue depth must not count forever). Counters and
    histograms of dead processes stay: they are part of the node's totals."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._collector = MultiProcessCollector(None, path=str(directory))

    def collect(self) -> Iterator[Metric]:
        for pid in _pids_with_live_gauges(self._directory):
            if not _alive(pid):
                mark_process_dead(pid, str(self._directory))
        yield from self._collector.collect()


def _pids_with_live_gauges(directory: Path) -> set[int]:
    pids = set()
    for path in directory.glob("gauge_live*_*.db"):
        tail = path.stem.rpartition("_")[2]
        if tail.isdigit():
            pids.add(int(tail))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def registry_for(directory: Path) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveProcessesCollector(directory))
    return registry


def run(config: NodeConfig) -> int:
    setup_logging("metrics")
    try:
        host, port = parse_metrics_address(config.metrics)
    except MetricsAddressError as exc:
        log.error("metrics: %s", exc)
        return EXIT_CANNOT_LISTEN
    directory = multiproc_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry_for(directory))
    except OSError as exc:
        why = "the port is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        log.error("metrics cannot listen on %s:%d: %s", host, port, why)
        return EXIT_CANNOT_LISTEN
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("metrics at http://%s:%d/metrics", host, port)
    stop.wait()
    server.shutdown()
    thread.join(5)
    log.info("metrics stopped")
    return 0
