"""The gateway's Bus over real ZeroMQ ipc sockets: VerifyJobs queued in one loop turn
leave as one multipart message, in order, and a full pool of verifiers holds them back
without losing any."""

from __future__ import annotations

import asyncio
from pathlib import Path

import zmq

from socp.gateway.bus import JOBS_PER_MESSAGE, Bus
from socp.ipc.endpoints import Endpoints, ensure_runtime_dir

TIMEOUT = 5.0


def verifier_socket(context: zmq.Context, endpoints: Endpoints) -> zmq.Socket:
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.connect(endpoints.verify_jobs)
    return pull


def receive_message(pull: zmq.Socket) -> list[bytes]:
    assert pull.poll(int(TIMEOUT * 1000)), "no VerifyJobs arrived"
    return pull.recv_multipart(zmq.NOBLOCK)


async def test_jobs_of_one_turn_leave_as_one_message_in_order(tmp_path: Path) -> None:
    endpoints = Endpoints.in_dir(tmp_path)
    ensure_runtime_dir(tmp_path)
    bus = Bus(endpoints)
    context = zmq.Context()
    pull = verifier_socket(context, endpoints)
    try:
        await asyncio.sleep(0.1)                     # the verifier's connect completes
        for n in range(5):
            await bus.submit_job(b"job %d" % n)      # no wait: all five in this turn
        await asyncio.sleep(0)                       # the turn ends: they leave
        assert receive_message(pull) == [b"job %d" % n for n in range(5)]
        await bus.submit_job(b"later")
        await asyncio.sleep(0)
        assert receive_message(pull) == [b"later"]
    finally:
        pull.close()
        context.term()
        bus.close()


async def test_with_no_room_jobs_wait_and_all_arrive_once_a_verifier_reads(tmp_path: Path) -> None:
    endpoints = Endpoints.in_dir(tmp_path)
    ensure_runtime_dir(tmp_path)
    bus = Bus(endpoints)
    context = zmq.Context()
    total = JOBS_PER_MESSAGE * 3
    try:
        # No verifier is connected: a PUSH socket with no peer takes nothing.
        submitting = asyncio.ensure_future(_submit(bus, total))
        await asyncio.sleep(0.2)
        assert not submitting.done(), "the reader should wait while no verifier has room"
        pull = verifier_socket(context, endpoints)
        async with asyncio.timeout(TIMEOUT):
            await submitting
        received: list[bytes] = []
        while len(received) < total:
            received += await asyncio.to_thread(receive_message, pull)
        assert received == [b"job %d" % n for n in range(total)]
        pull.close()
    finally:
        context.term()
        bus.close()


async def _submit(bus: Bus, count: int) -> None:
    for n in range(count):
        await bus.submit_job(b"job %d" % n)
