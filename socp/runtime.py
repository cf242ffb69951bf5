"""Running one actor process: uvloop, logging to stderr, and a clean stop on
SIGTERM/SIGINT (supervisord stops programs with SIGTERM)."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import sys
from collections.abc import Awaitable, Callable


def raise_open_file_limit(wanted: int) -> int:
    """Each connection is a file descriptor: lift the soft limit towards `wanted`, up
    to the hard limit (an unprivileged process may). Returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux /proc), None where it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def setup_logging(actor: str) -> None:
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("SOCP_DEBUG") else logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {actor}[%(process)d] %(levelname)s %(message)s",
    )


def fast_runner() -> asyncio.Runner:
    """An asyncio runner on uvloop, whose event loop costs a fraction of the stdlib's per
    socket event; the stdlib loop when uvloop is missing."""
    try:
        import uvloop
    except ImportError:  # uvloop is a dependency, but everything still works without it
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run_async_actor(actor: str, main: Callable[[], Awaitable[None]]) -> int:
    """Run `main()` until it returns or a stop signal arrives; return an exit code:
    0 when it returned or was stopped by a signal, 1 when it crashed (logged with its
    traceback, so supervisord's log shows why it is restarting it).

    A cancellation nobody asked for is a crash too. On Python 3.11 a TaskGroup whose
    child fails while the group is already exiting leaves its parent task marked as
    cancelling (fixed in 3.12); a later `await` that honours that mark (StoreClient.close
    did) turns the child's exception into a CancelledError, which read as a clean stop:
    "router: stopped", exit status 0, no traceback."""
    setup_logging(actor)
    log = logging.getLogger(f"socp.{actor}")
    runner = fast_runner()
    stop_signals: list[int] = []

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def stop(signum: int) -> None:
            stop_signals.append(signum)
            task.cancel()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop, signum)
        await main()

    with runner:
        try:
            runner.run(guarded())
        except asyncio.CancelledError as cancelled:
            if not stop_signals:
                log.critical("%s: crashed: cancelled with no stop signal", actor, exc_info=cancelled)
                return 1
            log.info("%s: stopped", actor)
        except Exception as exc:  # noqa: BLE001 - any crash: its traceback to the log, a non-zero exit
            log.critical("%s: crashed", actor, exc_info=exc)
            return 1
    return 0
