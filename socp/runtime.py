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
    """Run `main()` until it returns or a stop signal arrives; return an exit code."""
    setup_logging(actor)
    runner = fast_runner()

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        await main()

    with runner:
        try:
            runner.run(guarded())
        except asyncio.CancelledError:
            logging.getLogger(f"socp.{actor}").info("%s: stopped", actor)
    return 0
