"""The store actor as a real process (`python -m socp.store DATA_DIR`) over real ZeroMQ
ipc, driven by StoreClient, on both backends."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from socp.config import NodeConfig
from socp.protocol.ids import ServerId, UserId
from socp.store.client import StoreClient
from socp.store.errors import StoreTimeout, StoreUnavailable
from socp.store.records import BindResult, PendingKeyShare, PinResult

START_TIMEOUT = 15.0
STOP_TIMEOUT = 3.0
ALICE = UserId("3f0c6f55-6a43-4c2e-9a53-1b2f4f0e2a01")
BOB = UserId("7d1e2b9c-0f4a-4b8e-8c11-2a6b3c4d5e02")
SERVER = ServerId("b6f6a0de-8d2c-4c3f-9e4d-7a1b2c3d4e03")


class StoreProcess:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "socp.store", str(self.config.data_dir)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def stop(self) -> tuple[int, float, str]:
        """SIGTERM; return (exit status, seconds it took, stderr)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=STOP_TIMEOUT + 5)
        return self.process.returncode, time.monotonic() - started, stderr

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=5)


@pytest.fixture
def node_config(tmp_path: Path, store_url: str) -> NodeConfig:
    config = NodeConfig(data_dir=tmp_path / "node", db_url=store_url)
    config.data_dir.mkdir()
    config.save()
    return config


@pytest.fixture
def store_process(node_config: NodeConfig) -> Iterator[StoreProcess]:
    process = StoreProcess(node_config)
    try:
        yield process
    finally:
        process.kill()


async def wait_ready(client: StoreClient) -> None:
    """Until the actor answers and its database is open."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            await client.load_snapshot(timeout=1.0)
            return
        except (StoreTimeout, StoreUnavailable):
            if time.monotonic() > deadline:
                raise


async def test_actor_serves_persists_and_stops_on_sigterm(store_process: StoreProcess) -> None:
    endpoint = store_process.config.endpoints.store_requests
    store_process.start()
    async with StoreClient(endpoint, timeout=5.0) as client:
        await wait_ready(client)
        assert await client.bind_user(ALICE, "key-a", {"display_name": "Alice"}) is BindResult.BOUND
        assert await client.bind_user(ALICE, "key-a", {"display_name": "Al"}) is BindResult.SAME
        assert await client.bind_user(ALICE, "key-evil", {}) is BindResult.CONFLICT
        assert await client.bind_user(BOB, "key-b", {}) is BindResult.BOUND
        assert (await client.get_user(ALICE)).meta == {"display_name": "Al"}
        assert await client.get_user(UserId("nobody")) is None
        assert await client.pin_server(SERVER, "server-key", "127.0.0.1", 9001) is PinResult.PINNED
        assert await client.pin_server(SERVER, "other-key", "127.0.0.1", 9001) is PinResult.CONFLICT
        assert await client.update_server_addr(SERVER, "127.0.0.2", 9002)
        payload = {"shares": [{"member": BOB, "wrapped_public_channel_key": "w"}], "creator_pub": "a",
                   "content_sig": "s"}
        assert await client.save_key_share(ALICE, BOB, "w", payload, 1000)
        await client.add_channel_member(ALICE, 2)
        await client.add_channel_member(BOB, 3)
        # Many writes in flight at once are applied in order.
        await asyncio.gather(*(client.bind_user(UserId(f"user-{i}"), f"k{i}", {}) for i in range(100)))
        before = await client.load_snapshot()

    status, took, stderr = store_process.stop()
    assert status == 0, stderr
    assert took < STOP_TIMEOUT
    assert "Traceback" not in stderr
    assert not Path(endpoint.removeprefix("ipc://")).exists()

    store_process.start()
    async with StoreClient(endpoint, timeout=5.0) as client:
        await wait_ready(client)
        after = await client.load_snapshot()
        assert await client.bind_user(ALICE, "key-evil", {}) is BindResult.CONFLICT
        assert await client.mark_share_delivered(ALICE, BOB, 1000)
        assert (await client.load_snapshot()).pending_key_shares == ()
    status, took, stderr = store_process.stop()
    assert status == 0, stderr

    assert after == before
    assert len(after.users) == 102
    assert after.pinned_servers[SERVER].host == "127.0.0.2"
    assert after.pending_key_shares == (PendingKeyShare(ALICE, BOB, payload, 1000),)
    assert after.public_channel_members == (ALICE, BOB)
    assert after.public_channel_version == 3


async def test_actor_waits_for_an_unreachable_database(tmp_path: Path) -> None:
    # Nothing listens on port 1: the actor keeps retrying (no crash loop), answers reads
    # with a clear error, and still stops promptly.
    config = NodeConfig(data_dir=tmp_path / "node", db_url="mysql://root:pw@127.0.0.1:1/socp")
    config.data_dir.mkdir()
    config.save()
    process = StoreProcess(config)
    process.start()
    try:
        async with StoreClient(config.endpoints.store_requests, timeout=5.0) as client:
            await client.ping(timeout=START_TIMEOUT)
            deadline = time.monotonic() + 5.0
            while True:   # the first answers may come before the first connection attempt
                with pytest.raises(StoreUnavailable) as caught:
                    await client.load_snapshot()
                if "cannot reach MySQL root@127.0.0.1:1/socp" in str(caught.value) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert str(caught.value).startswith("the database is not open yet: cannot reach MySQL")
            # Its status says so at once, with why and since when (/healthz shows it).
            database = await client.status()
            assert database.state == "unavailable"
            assert database.detail.startswith("cannot reach MySQL root@127.0.0.1:1/socp")
            assert 0 < database.since_ms <= time.time() * 1000
            # Retries come 0.05, 0.1, 0.2, 0.4 s apart (refused at once): a second gives several...
            await asyncio.sleep(1.0)
        status, took, stderr = process.stop()
    finally:
        process.kill()
    assert status == 0, stderr
    assert took < STOP_TIMEOUT
    assert "Traceback" not in stderr
    assert stderr.count("database unavailable, retrying") == 1, stderr   # ...and says so once
