"""A crash of the router actor is logged with its traceback and ends with a non-zero
exit status; a stop signal still ends it cleanly with status 0.

The router runs as its real entry point (`socp.router.run`: run_async_actor, a real
StoreClient) in a child process; only `serve` is replaced by one that fails the way
the real one did: a task of its TaskGroup raises while the group is exiting. On Python
3.11 that left the task marked as cancelling, StoreClient.close then raised
CancelledError, and the crash read as "router: stopped", exit status 0, no traceback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import asyncio, sys
from pathlib import Path

import socp.identity
import socp.router.process
from socp.config import NodeConfig
from socp.router import run

async def serve(config, identity, store):
    async def fails():
        await asyncio.sleep(0.2)
        raise RuntimeError("a bug in the router")

    async def runs():
        print("serving", flush=True)
        await asyncio.sleep(3600)

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(runs())
        if sys.argv[2] == "crash":
            tasks.create_task(fails())

socp.router.process.serve = serve
socp.identity.load_identity = lambda data_dir: None
sys.exit(run(NodeConfig(data_dir=Path(sys.argv[1]))))
"""


def _start(tmp_path: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_an_error_in_the_router_is_logged_with_its_traceback_and_exits_non_zero(tmp_path: Path) -> None:
    child = _start(tmp_path, "crash")
    try:
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 1, stderr
    assert "router: crashed" in stderr
    assert "Traceback" in stderr and "RuntimeError: a bug in the router" in stderr
    assert "router: stopped" not in stderr


def test_a_stop_signal_still_stops_the_router_cleanly(tmp_path: Path) -> None:
    child = _start(tmp_path, "serve")
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 30
        while child.stdout.readline().strip() != "serving":
            assert time.monotonic() < deadline and child.poll() is None, "the child never started serving"
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, stderr
    assert "router: stopped" in stderr
    assert "Traceback" not in stderr
