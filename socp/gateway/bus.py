"""The gateway's three ZeroMQ sockets (ZeroMQ guide: the parent of a stream binds).

    inbox        PULL, bound at gateway_inbox   Deliver / CloseLink / DialLink in
    verify_jobs  PUSH, bound at verify_jobs     VerifyJob out, round-robin over verifiers
    router       PUSH, connects router_inbox    LinkClosed / LinkOpened / Rejected / GatewayHello

Every socket has a bounded high-water mark (STYLE §5). A full verify_jobs or router
queue blocks the sender: the connection's reader stops reading, and TCP pushes back
on the peer. Sockets close with linger 0 so a stopped gateway never hangs on them.

VerifyJobs queued in one turn of the event loop leave together, as the parts of one
multipart message: ZeroMQ wakes its I/O thread once per message, not per part, and in
a profile of `socp bench dm` those wakeups were a quarter of the gateway's CPU. The
parts arrive as separate messages, in order, at one verifier; checks are cheap, so
the batch does not unbalance the pool (signatures are never batched).
"""

from __future__ import annotations

import asyncio

import zmq

from socp.ipc.direct import DirectSocket
from socp.ipc.endpoints import Endpoints
from socp.ipc.messages import Message, pack

# Messages each socket may hold before senders block (or, inbound, the router and
# verifiers block). Generous enough for bursts, small enough to bound memory.
INBOX_HWM = 50_000
# At most JOBS_PER_MESSAGE jobs a message: the bound stays about 20,000 jobs.
JOBS_PER_MESSAGE = 64
VERIFY_JOBS_HWM = 20_000 // JOBS_PER_MESSAGE
# While every verifier's queue is full, try again this often.
JOBS_RETRY_S = 0.002
ROUTER_HWM = 20_000

# One wakeup of the inbox drains up to this many waiting messages.
INBOX_BATCH = 512


class Bus:
    """Must be made inside the gateway's running event loop (it watches socket fds)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self._context = zmq.Context()
        self._sockets: list[DirectSocket] = []
        self._loop = asyncio.get_running_loop()
        self._jobs_waiting: list[bytes] = []
        self._room_for_jobs = asyncio.Event()
        try:
            self._inbox = self._open(zmq.PULL, zmq.RCVHWM, INBOX_HWM)
            self._inbox.socket.bind(endpoints.gateway_inbox)
            self._verify_jobs = self._open(zmq.PUSH, zmq.SNDHWM, VERIFY_JOBS_HWM)
            self._verify_jobs.socket.bind(endpoints.verify_jobs)
            self._router = self._open(zmq.PUSH, zmq.SNDHWM, ROUTER_HWM)
            self._router.socket.connect(endpoints.router_inbox)
        except BaseException:
            self.close()
            raise

    def _open(self, kind: int, hwm_option: int, hwm: int) -> DirectSocket:
        socket = self._context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(hwm_option, hwm)
        direct = DirectSocket(socket)
        self._sockets.append(direct)
        return direct

    async def submit_job(self, data: bytes) -> None:
        """Queue one packed VerifyJob; it leaves at the end of this loop turn with the
        others queued in it. Waits while a whole message of jobs cannot leave because
        every verifier's queue is full."""
        while len(self._jobs_waiting) >= JOBS_PER_MESSAGE:
            self._room_for_jobs.clear()
            await self._room_for_jobs.wait()
        self._jobs_waiting.append(data)
        if len(self._jobs_waiting) == 1:
            self._loop.call_soon(self._send_jobs)

    def _send_jobs(self) -> None:
        jobs = self._jobs_waiting
        if not jobs or self._verify_jobs.closed:
            return
        try:
            self._verify_jobs.socket.send_multipart(jobs, zmq.NOBLOCK)
        except zmq.Again:
            self._loop.call_later(JOBS_RETRY_S, self._send_jobs)
            return
        self._jobs_waiting = []
        self._room_for_jobs.set()

    async def tell_router(self, message: Message) -> None:
        await self._router.send(pack(message))

    def tell_router_nowait(self, message: Message) -> bool:
        """Best effort, for shutdown paths that must not wait; False if it was dropped."""
        if self._router.closed:
            return False
        return self._router.try_send(pack(message))

    async def receive_batch(self) -> list[bytes]:
        """Wait for one inbox message, then take whatever else is already waiting."""
        return await self._inbox.receive_batch(INBOX_BATCH)

    def close(self) -> None:
        for socket in self._sockets:
            socket.close()
        self._context.term()
