"""A ZeroMQ socket driven from asyncio with one libzmq call per message.

pyzmq's asyncio sockets make a Future and schedule loop callbacks on every send and
receive; on the hot path of a node that bookkeeping cost more than the messages
(about 30 % of the gateway's CPU in a profile of `socp bench dm`). A DirectSocket
sends and receives with plain non-blocking calls and awaits only when the queue is
full (send) or empty (receive), by watching the socket's file descriptor.

That descriptor is edge-triggered (ZeroMQ guide, ZMQ_FD): it signals "something may
have changed", and reading ZMQ_EVENTS re-arms it. So a waiter always re-reads the
events after it wakes, and never sleeps without having read them first. The event
loop watches it level-triggered, so the watcher reads ZMQ_EVENTS itself each time it
fires: left readable, the descriptor would wake the loop on every turn and keep the
process busy while it has nothing to do.
"""

from __future__ import annotations

import asyncio

import zmq

# One receive takes at most this many waiting messages, so other tasks get a turn.
RECEIVE_BATCH = 512


class DirectSocket:
    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self.socket = socket
        self._loop = asyncio.get_running_loop()
        self._fd: int = socket.getsockopt(zmq.FD)  # type: ignore[assignment]  # pyzmq types every option as int | bytes
        self._changed = asyncio.Event()
        self._loop.add_reader(self._fd, self._on_fd_readable)

    def _on_fd_readable(self) -> None:
        self.socket.getsockopt(zmq.EVENTS)   # processes ZeroMQ's commands: the fd goes quiet
        self._changed.set()

    @property
    def closed(self) -> bool:
        return self.socket.closed

    def try_send(self, data: bytes) -> bool:
        """Send now if the queue has room; False if it is full (nothing was sent)."""
        try:
            self.socket.send(data, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    async def send(self, data: bytes) -> None:
        """Send, waiting while the queue is full (the high-water mark pushes back)."""
        while not self.try_send(data):
            await self._wait_for(zmq.POLLOUT)

    async def receive_batch(self, limit: int = RECEIVE_BATCH) -> list[bytes]:
        """Wait for at least one message, then take what else is already waiting."""
        while True:
            batch: list[bytes] = []
            recv = self.socket.recv
            try:
                while len(batch) < limit:
                    batch.append(recv(zmq.NOBLOCK))
            except zmq.Again:
                pass
            if batch:
                return batch
            await self._wait_for(zmq.POLLIN)

    async def _wait_for(self, event: int) -> None:
        while not self._events() & event:
            # Nothing can run between the read above and this clear: no wakeup is lost.
            self._changed.clear()
            await self._changed.wait()

    def _events(self) -> int:
        events: int = self.socket.getsockopt(zmq.EVENTS)  # type: ignore[assignment]  # an int option (see __init__)
        return events

    def close(self) -> None:
        if not self.socket.closed:
            self._loop.remove_reader(self._fd)
            self.socket.close(linger=0)
