"""DirectSocket over real ZeroMQ ipc sockets: order, wakeups, and the high-water mark."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import zmq

from socp.ipc.direct import DirectSocket

TIMEOUT = 5.0


@pytest.fixture
def context() -> zmq.Context:
    ctx = zmq.Context()
    yield ctx
    ctx.term()


def pair(context: zmq.Context, tmp_path: Path, hwm: int = 1000) -> tuple[DirectSocket, DirectSocket]:
    endpoint = f"ipc://{tmp_path / 'pipe.sock'}"
    pull = context.socket(zmq.PULL)
    push = context.socket(zmq.PUSH)
    for sock in (pull, push):
        sock.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVHWM, hwm)
    push.setsockopt(zmq.SNDHWM, hwm)
    pull.bind(endpoint)
    push.connect(endpoint)
    return DirectSocket(push), DirectSocket(pull)


async def test_a_waiting_receiver_wakes_for_each_later_message(context: zmq.Context, tmp_path: Path) -> None:
    push, pull = pair(context, tmp_path)
    try:
        for round_ in range(20):
            waiting = asyncio.ensure_future(pull.receive_batch())
            await asyncio.sleep(0.005)           # the receiver is asleep on the fd now
            assert not waiting.done()
            await push.send(f"m{round_}".encode())
            assert await asyncio.wait_for(waiting, TIMEOUT) == [f"m{round_}".encode()]
    finally:
        push.close()
        pull.close()


async def test_batches_keep_order_and_respect_the_limit(context: zmq.Context, tmp_path: Path) -> None:
    push, pull = pair(context, tmp_path)
    try:
        sent = [str(i).encode() for i in range(1000)]
        for data in sent:
            await push.send(data)
        received: list[bytes] = []
        while len(received) < len(sent):
            batch = await asyncio.wait_for(pull.receive_batch(limit=64), TIMEOUT)
            assert 1 <= len(batch) <= 64
            received.extend(batch)
        assert received == sent
    finally:
        push.close()
        pull.close()


async def test_a_full_queue_makes_the_sender_wait_until_the_receiver_drains(context: zmq.Context,
                                                                             tmp_path: Path) -> None:
    push, pull = pair(context, tmp_path, hwm=10)
    chunk = b"x" * 65_536        # big messages: the kernel's socket buffers hold only a few
    try:
        filled = 0
        refused_since = None
        loop = asyncio.get_running_loop()
        # Fill until sends have been refused for 0.2 s: ZeroMQ's I/O thread moves
        # messages on in the background, so one refusal alone proves little.
        while refused_since is None or loop.time() - refused_since < 0.2:
            if push.try_send(chunk):
                filled += 1
                refused_since = None
                assert filled < 10_000, "the high-water mark never pushed back"
            else:
                refused_since = refused_since or loop.time()
                await asyncio.sleep(0.01)
        blocked = asyncio.ensure_future(push.send(b"last"))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        received: list[bytes] = []
        while not received or received[-1] != b"last":
            received.extend(await asyncio.wait_for(pull.receive_batch(), TIMEOUT))
        await asyncio.wait_for(blocked, TIMEOUT)
        assert received == [chunk] * filled + [b"last"]
    finally:
        push.close()
        pull.close()


async def test_close_is_idempotent_and_stops_watching_the_fd(context: zmq.Context, tmp_path: Path) -> None:
    push, pull = pair(context, tmp_path)
    push.close()
    pull.close()
    pull.close()
    assert pull.closed and push.closed


async def test_an_idle_socket_leaves_the_process_idle(context: zmq.Context, tmp_path: Path) -> None:
    # The fd of a socket nobody waits on must not keep waking the event loop (a busy
    # loop once made an idle node's gateway and router use a whole core each).
    push, pull = pair(context, tmp_path, hwm=10)
    try:
        # Enough traffic through a small pipe that the receiver hands the sender credit
        # back: ZeroMQ commands that make the sender's fd readable though nobody waits.
        count = 2_000
        received: list[bytes] = []
        for index in range(count):
            while not push.try_send(b"%d" % index):
                received.extend(await asyncio.wait_for(pull.receive_batch(), TIMEOUT))
        while len(received) < count:
            received.extend(await asyncio.wait_for(pull.receive_batch(), TIMEOUT))
        waiting = asyncio.ensure_future(pull.receive_batch())
        cpu_before = time.process_time()
        await asyncio.sleep(1.0)
        busy = time.process_time() - cpu_before
        assert busy < 0.3, f"{busy:.2f} s of CPU in 1 s of idling"
        waiting.cancel()
    finally:
        push.close()
        pull.close()
