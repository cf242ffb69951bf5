"""Helpers for gateway tests: a real gateway process, with the test playing router
and verifier over real ZeroMQ.

The harness binds the router's inbox (as the router would), starts the gateway in a
subprocess on a free loopback port, connects to the verify-job queue (as a verifier
would) and to the gateway's inbox (as router and verifiers do). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import zmq
import zmq.asyncio

from socp.config import NodeConfig
from socp.ipc.messages import FramesWritten, GatewayHello, Message, OutboundDone, VerifyJob, pack, unpack

WAIT = 5.0  # seconds any single expected event may take

_START_GATEWAY = (
    "import json, sys\n"
    "from socp.config import NodeConfig\n"
    "from socp.gateway import run\n"
    "run(NodeConfig.from_dict(json.loads(sys.argv[1])))\n"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway_process(config: NodeConfig, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-c", _START_GATEWAY, config.to_json()],
            stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


@dataclasses.dataclass
class GatewayHarness:
    config: NodeConfig
    process: subprocess.Popen[bytes]
    log_path: Path
    router_inbox: zmq.asyncio.Socket     # the router's PULL; the gateway connects to it
    verify_jobs: zmq.asyncio.Socket      # a verifier's PULL, connected to the gateway
    gateway_inbox: zmq.asyncio.Socket    # router/verifier PUSH into the gateway
    hello: GatewayHello | None = None

    @property
    def ws_url(self) -> str:
        return self.config.ws_url

    async def from_router_inbox(self, timeout: float = WAIT) -> Message:
        """The next message for the router, past the periodic OutboundDone and
        FramesWritten reports."""
        while True:
            message = unpack(await asyncio.wait_for(self.router_inbox.recv(), timeout))
            if not isinstance(message, (OutboundDone, FramesWritten)):
                return message

    async def written_report(self, conn: int, count: int, timeout: float = WAIT) -> list[FramesWritten]:
        """Every FramesWritten until one says `conn` wrote `count` frames (other
        messages for the router are dropped)."""
        reports: list[FramesWritten] = []
        async with asyncio.timeout(timeout):
            while True:
                message = unpack(await self.router_inbox.recv())
                if isinstance(message, FramesWritten):
                    reports.append(message)
                    if [conn, count] in message.counts:
                        return reports

    async def next_job(self, timeout: float = WAIT) -> VerifyJob:
        message = unpack(await asyncio.wait_for(self.verify_jobs.recv(), timeout))
        assert isinstance(message, VerifyJob)
        return message

    async def to_gateway(self, *messages: Message) -> None:
        for message in messages:
            await asyncio.wait_for(self.gateway_inbox.send(pack(message)), WAIT)

    async def nothing_for_router(self, seconds: float) -> None:
        """Assert the router inbox stays empty for a while."""
        if await self.router_inbox.poll(timeout=int(seconds * 1000)):
            unexpected = unpack(await self.router_inbox.recv())
            raise AssertionError(f"unexpected message for the router: {unexpected}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = WAIT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(WAIT)
            raise


GatewayFactory = Callable[..., Awaitable[GatewayHarness]]


async def wait_for_hello(harness: GatewayHarness) -> GatewayHello:
    try:
        hello = await harness.from_router_inbox(timeout=15.0)  # a cold interpreter start
    except TimeoutError:
        raise AssertionError(f"no GatewayHello; gateway log:\n{harness.log_text()}") from None
    assert isinstance(hello, GatewayHello)
    harness.hello = hello
    return hello
