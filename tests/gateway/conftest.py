"""Fixtures that start a real gateway process (see gateway_harness)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.asyncio

from socp.config import NodeConfig
from socp.ipc.endpoints import ensure_runtime_dir

from .gateway_harness import GatewayFactory, GatewayHarness, free_port, start_gateway_process, wait_for_hello


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    context = zmq.asyncio.Context()
    harnesses: list[GatewayHarness] = []

    async def start(**overrides: Any) -> GatewayHarness:
        data_dir = tmp_path / f"node{len(harnesses)}"
        data_dir.mkdir()
        settings: dict[str, Any] = {"port": free_port(), "hello_timeout": 3.0, "verifiers": 1}
        config = NodeConfig(data_dir=data_dir, **(settings | overrides))
        ensure_runtime_dir(config.run_dir)
        endpoints = config.endpoints

        def zsocket(kind: int) -> zmq.asyncio.Socket:
            sock = context.socket(kind)
            sock.setsockopt(zmq.LINGER, 0)
            return sock

        router_inbox = zsocket(zmq.PULL)
        router_inbox.bind(endpoints.router_inbox)
        process = start_gateway_process(config, tmp_path / f"gateway{len(harnesses)}.log")
        verify_jobs = zsocket(zmq.PULL)
        verify_jobs.connect(endpoints.verify_jobs)
        gateway_inbox = zsocket(zmq.PUSH)
        gateway_inbox.connect(endpoints.gateway_inbox)
        harness = GatewayHarness(config, process, tmp_path / f"gateway{len(harnesses)}.log",
                                 router_inbox, verify_jobs, gateway_inbox)
        harnesses.append(harness)
        return harness

    yield start

    for harness in harnesses:
        try:
            harness.stop()
        finally:
            for sock in (harness.router_inbox, harness.verify_jobs, harness.gateway_inbox):
                sock.close(linger=0)
    context.term()


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> GatewayHarness:
    """A started gateway whose GatewayHello has arrived (so its port is listening)."""
    harness = await start_gateway()
    await wait_for_hello(harness)
    return harness
