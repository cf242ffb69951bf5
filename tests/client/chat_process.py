"""`socp chat --script` as a subprocess, driven line by line from a test.

Every wait is bounded (`STEP` seconds per event unless told otherwise). Events are
the JSON objects the client prints, kept in `events` in arrival order.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PASSWORD = "correct horse"
STEP = 30.0


class Chat:
    """One `socp chat --script` subprocess. Its output is read all the time by a
    background task, so a chatty client never blocks on a full pipe."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._read = 0  # events already returned by `until`
        self._arrived = asyncio.Event()
        self._eof = False
        self._pump = asyncio.get_running_loop().create_task(self._read_output())

    async def _read_output(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            if line.strip():
                self.events.append(json.loads(line))
                self._arrived.set()
        self._eof = True
        self._arrived.set()

    @classmethod
    async def start(cls, home: Path, url: str, *extra: str, server_key: str | None = None,
                    linger: float = 0.3, password: str = PASSWORD) -> Chat:
        env = {**os.environ, "SOCP_PASSWORD": password}
        args = ["--home", str(home), "--server", url, "--linger", str(linger), *extra]
        if server_key:
            args += ["--server-key", server_key]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from socp.cli.main import cli; cli()", "chat", "--script", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            limit=4 * 1024 * 1024)
        return cls(proc)

    async def send(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(line + "\n" for line in lines).encode())
        await self.proc.stdin.drain()

    async def until(self, event: str, where: Callable[[dict[str, Any]], bool] | None = None,
                    timeout: float = STEP) -> dict[str, Any]:
        """The next event named `event` (matching `where`) not returned before."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index in range(self._read, len(self.events)):
                found = self.events[index]
                if found["event"] == event and (where is None or where(found)):
                    self._read = index + 1
                    return found
            self._read = len(self.events)
            if self._eof:
                raise AssertionError(f"exited before {event!r}; saw {self.events[-20:]}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {event!r} within {timeout}s; saw {self.events[-20:]}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    async def finish(self, timeout: float = STEP) -> int:
        """Close stdin (end of the script), collect the rest, return the exit code."""
        assert self.proc.stdin is not None
        if not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        await asyncio.wait_for(asyncio.shield(self._pump), timeout)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        self._pump.cancel()
