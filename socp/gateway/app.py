"""`run(config)`: the gateway process, from bind to clean exit.

Start: runtime dir, ZeroMQ sockets, WebSocket listener, then GatewayHello to the
router. Stop (SIGTERM/SIGINT): stop listening, close every link with 1001, give the
sessions a short grace period, then close the ZeroMQ sockets with linger 0.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys
import time
import uuid
from typing import TYPE_CHECKING

import uvloop

from socp.config import NodeConfig
from socp.gateway.bootstrap_view import g101_addresses
from socp.gateway.bus import Bus
from socp.gateway.context import GatewayContext
from socp.gateway.dialer import Dialer
from socp.gateway.health import DatabaseReport, GatewayStats, router_ready
from socp.gateway.inbox import Inbox
from socp.gateway.lookups import DirectoryLookups
from socp.gateway.memory import fix_mmap_threshold, trim_after_crowds
from socp.gateway.recovery import Recovery, report_written
from socp.gateway.server import Listener
from socp.gateway.socket_links import LinkTable, first_accepted_conn
from socp.gateway.tls import TlsSetupError, check_files
from socp.ipc.endpoints import ensure_runtime_dir
from socp.ipc.messages import CLOSE_GOING_AWAY, GatewayHello
from socp.ratelimit import AddressSlots, TokenBucket
from socp.runtime import raise_open_file_limit

if TYPE_CHECKING:
    from socp.metrics.gateway import GatewayMetrics

log = logging.getLogger("socp.gateway")

# Every connection holds a file descriptor; the common default soft limit (1024)
# would cap a node far below the connections it can afford in memory.
WANTED_OPEN_FILES = 65_536

# Sessions get this long to close after SIGTERM; the process must be gone in ~2 s.
SHUTDOWN_GRACE = 1.5
OUTBOX_FLUSH = 0.3   # of which this long to write what each outbox already holds

EXIT_CANNOT_LISTEN = 2


class CannotListen(Exception):
    """The WebSocket port could not be bound (most often: already in use)."""


def run(config: NodeConfig) -> None:
    """Run the gateway until SIGTERM or SIGINT. Exits with status 2 if it cannot listen."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(config))
    except (CannotListen, TlsSetupError) as exc:
        log.error("%s", exc)
        raise SystemExit(EXIT_CANNOT_LISTEN) from None


def spare_frames(config: NodeConfig) -> TokenBucket | None:
    """The spare user connections share beyond their own rate; none if its rate is 0."""
    if config.spare_frame_rate <= 0:
        return None
    return TokenBucket(config.spare_frame_rate, max(1, config.spare_frame_burst), time.monotonic)


def _gateway_metrics(config: NodeConfig) -> GatewayMetrics | None:
    if not config.metrics:
        return None
    from socp.metrics.gateway import GatewayMetrics

    return GatewayMetrics()


async def _export_metrics(context: GatewayContext) -> None:
    """Hand the counts to prometheus_client once a second (socp/metrics/gateway.py)."""
    from socp.metrics.gateway import FLUSH_SECONDS

    assert context.metrics is not None
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        context.metrics.flush(context)


async def _serve(config: NodeConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    check_files(config)   # a certificate replaced since `socp up` checked it
    ensure_runtime_dir(config.run_dir)
    if not fix_mmap_threshold():
        log.info("cannot pin the allocator's mmap threshold here: big frames' memory may be kept")
    open_files = raise_open_file_limit(WANTED_OPEN_FILES)
    if open_files < WANTED_OPEN_FILES:
        log.warning("at most %d open files (hard limit): about that many connections", open_files)
    bus = Bus(config.endpoints)
    try:
        stats, database = GatewayStats(), DatabaseReport()
        links = LinkTable(config.send_queue_frames, first_accepted_conn(time.time()))
        links.g101_addresses = g101_addresses(config.bootstrap)
        context = GatewayContext(config, links, bus, stats,
                                 AddressSlots(config.max_connections_per_address), database,
                                 DirectoryLookups(bus, stats, lambda: router_ready(stats, database)),
                                 spare_frames=spare_frames(config), metrics=_gateway_metrics(config))
        try:
            server = await Listener(context).start()
        except OSError as exc:
            why = ("the port is already in use" if exc.errno == errno.EADDRINUSE
                   else exc.strerror or str(exc))
            raise CannotListen(f"gateway cannot listen on {config.host}:{config.port}: {why}") from None
        boot_id = uuid.uuid4().hex
        await bus.tell_router(GatewayHello(boot_id))
        log.info("gateway listening on %s (boot %s)", config.ws_url, boot_id)

        async with asyncio.TaskGroup() as tasks:
            dialer = Dialer(context, tasks)
            recovery = Recovery(context, boot_id)
            inbox = tasks.create_task(Inbox(context, dialer, recovery).pump())
            recovering = tasks.create_task(recovery.run())
            reporting = tasks.create_task(report_written(context))
            trimming = tasks.create_task(trim_after_crowds(context))
            exporting = tasks.create_task(_export_metrics(context)) if context.metrics is not None else None
            await stop.wait()
            log.info("gateway stopping: closing %d connections", len(context.links))
            inbox.cancel()
            recovering.cancel()
            reporting.cancel()
            trimming.cancel()
            if exporting is not None:
                exporting.cancel()
            server.close(close_connections=False)  # stop accepting; our sessions close links
            for link in context.links:
                # Write what is already queued (acknowledged frames among it), then close.
                link.close_after_outbox(CLOSE_GOING_AWAY, "gateway shutting down")
            await asyncio.sleep(OUTBOX_FLUSH)
            for link in context.links:   # a peer that stopped reading gets no longer
                link.request_close(CLOSE_GOING_AWAY, "gateway shutting down")
            dialer.abandon_dials()
            try:
                async with asyncio.timeout(SHUTDOWN_GRACE):
                    await server.wait_closed()
                    await dialer.wait_sessions()
            except TimeoutError:
                log.warning("gateway stopping: %d connections did not close in time",
                            len(context.links))
                dialer.cancel_sessions()
    finally:
        bus.close()
    log.info("gateway stopped")
