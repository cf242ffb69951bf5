"""The gateway's three ZeroMQ sockets (ZeroMQ guide: the parent of a stream binds).

    inbox        PULL, bound at gateway_inbox   Deliver / CloseLink / DialLink in
    verify_jobs  PUSH, bound at verify_jobs     VerifyJob out, round-robin over verifiers
    router       PUSH, connects router_inbox    LinkClosed / LinkOpened / Rejected / GatewayHello

Every socket has a bounded high-water mark (STYLE §5). A full verify_jobs or router
queue blocks the sender: the connection's reader stops reading, and TCP pushes back
on the peer. Sockets close with linger 0 so a stopped gateway never hangs on them.
"""

from __future__ import annotations

import zmq

from socp.ipc.direct import DirectSocket
from socp.ipc.endpoints import Endpoints
from socp.ipc.messages import Message, pack

# Messages each socket may hold before senders block (or, inbound, the router and
# verifiers block). Generous enough for bursts, small enough to bound memory.
INBOX_HWM = 50_000
VERIFY_JOBS_HWM = 20_000
ROUTER_HWM = 20_000

# One wakeup of the inbox drains up to this many waiting messages.
INBOX_BATCH = 512


class Bus:
    """Must be made inside the gateway's running event loop (it watches socket fds)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self._context = zmq.Context()
        self._sockets: list[DirectSocket] = []
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
        """Queue one packed VerifyJob; waits while every verifier's queue is full."""
        await self._verify_jobs.send(data)

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
