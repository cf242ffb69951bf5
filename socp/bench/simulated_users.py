"""A bench user: one WebSocket to a server, a USER_HELLO, and a receive loop that
hands every frame (decoded once with orjson, never decrypted) to the scenario."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from socp.protocol import frames, signing
from socp.protocol.crypto import PrivateKey
from socp.protocol.envelope import Envelope
from socp.protocol.ids import new_id

from .keys import KeyPool
from .prepare import now_ms

# Big enough for a LIST_RESPONSE with a thousand users' keys in it.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Frames websockets buffers before it stops reading the socket (its default is 16).
RECEIVE_QUEUE = 4096

# G45's list request and answer (docs/chat.md, other teams' dialects).
OTHER_LIST_REQUEST = "USER_LIST_REQ"
OTHER_LIST_ANSWER = "USER_LIST"
ADMITTING_ANSWERS = frozenset({"LIST_RESPONSE", OTHER_LIST_ANSWER})

FrameHandler = Callable[["BenchUser", dict[str, Any], str, float], None]


def signed_hellos(keys: tuple[PrivateKey, ...], public_texts: tuple[str, ...]) -> tuple[str, ...]:
    """One hello signature per key: the signature covers only the payload (SOCP §5),
    which is the same for every user of a key, so one serves them all."""
    sigs = []
    for key, public in zip(keys, public_texts, strict=False):
        payload_frame = frames.user_hello(new_id(), None, 0, public, client="socp-bench")
        sigs.append(signing.transport_signature(key, payload_frame.payload))
    return tuple(sigs)


@dataclass(eq=False)
class BenchUser:
    index: int
    url: str
    key_index: int
    pubkey: str
    hello_sig: str = ""
    user_id: str = field(default_factory=new_id)
    socket: ClientConnection | None = None
    close_reason: str = ""
    frames_received: int = 0
    connect_started: float = 0.0       # perf_counter when connect() began
    source_host: str = ""              # bind to this local address ("" = any)
    list_request_type: str = "LIST_REQUEST"
    _list_waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    _admitted: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self, open_timeout: float = 10.0) -> None:
        self.connect_started = time.perf_counter()
        extra: dict[str, Any] = {"local_addr": (self.source_host, 0)} if self.source_host else {}
        self.socket = await websockets.connect(
            self.url, compression=None, max_size=MAX_MESSAGE_BYTES, max_queue=RECEIVE_QUEUE,
            open_timeout=open_timeout, ping_interval=None, close_timeout=1.0, **extra)

    async def send_hello(self) -> None:
        hello = frames.user_hello(self.user_id, None, now_ms(), self.pubkey, client="socp-bench")
        await self.send(hello.with_sig(self.hello_sig).to_wire())

    async def send(self, text: str) -> None:
        assert self.socket is not None
        await self.socket.send(text)

    async def list_users(self, timeout: float = 10.0, after: str = "") -> dict[str, Any]:
        """LIST_REQUEST, then the next LIST_RESPONSE's payload (the receive loop must run).
        `after`: the page after that id (the `next` of an earlier answer)."""
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._list_waiters.append(waiter)
        request = frames.list_request(self.user_id, "*", now_ms())
        request = dataclasses.replace(request, type=self.list_request_type, payload={"after": after} if after else {})
        await self.send(request.to_wire())
        async with asyncio.timeout(timeout):
            return await waiter

    async def admitted(self, timeout: float) -> None:
        """Wait for a sign that the node accepted our hello: a PUBLIC_CHANNEL_ADD
        naming us (our node sends one at once), else ask for the list."""
        try:
            async with asyncio.timeout(min(2.0, timeout)):
                await self._admitted.wait()
        except TimeoutError:
            # A server that sends nothing after a hello (G45): ask for its list, in our
            # dialect and in G45's; either answer says it read our hello.
            await self.send(frames.list_request(self.user_id, "*", now_ms()).to_wire())
            await self.send(Envelope(OTHER_LIST_REQUEST, self.user_id, "*", now_ms(), {}).to_wire())
            async with asyncio.timeout(max(timeout - 2.0, 1.0)):
                await self._admitted.wait()
        if self.close_reason:
            raise ConnectionError(f"user {self.index}: the server closed the connection: {self.close_reason}")

    async def receive(self, handler: FrameHandler) -> None:
        """Until the connection closes: decode each frame once, route it."""
        assert self.socket is not None
        try:
            async for text in self.socket:
                when = time.perf_counter()
                self.frames_received += 1
                try:
                    frame = orjson.loads(text)
                except orjson.JSONDecodeError:
                    handler(self, {"type": "", "payload": {}}, str(text), when)
                    continue
                frame_type = frame.get("type") if isinstance(frame, dict) else None
                if frame_type in ADMITTING_ANSWERS:
                    self._admitted.set()
                if frame_type == OTHER_LIST_ANSWER:
                    self.list_request_type = OTHER_LIST_REQUEST   # ask in the dialect it answers
                if frame_type in ADMITTING_ANSWERS and self._list_waiters:
                    self._admitted.set()
                    waiter = self._list_waiters.pop(0)
                    if not waiter.done():
                        waiter.set_result(frame.get("payload") or {})
                    continue
                if frame_type == "PUBLIC_CHANNEL_ADD" and not self._admitted.is_set():
                    if self.user_id in (frame.get("payload") or {}).get("add", ()):
                        self._admitted.set()
                handler(self, frame, cast(str, text), when)   # SOCP frames are text messages
        except ConnectionClosed as closed:
            self.close_reason = _describe(closed)
        else:
            self.close_reason = "closed"
        finally:
            # Whoever waits for admission or a list must not wait for a closed link.
            self._admitted.set()
            for waiter in self._list_waiters:
                if not waiter.done():
                    waiter.set_exception(ConnectionError(self.close_reason or "connection closed"))

    async def close(self) -> None:
        if self.socket is not None:
            try:
                await self.socket.close()
            except (ConnectionClosed, OSError):
                pass


def make_users(keys: KeyPool, urls: Sequence[str], count: int,
               key_of: Callable[[int], int] | None = None) -> list[BenchUser]:
    """`count` users spread over `urls` in turn; user i uses key `key_of(i)` (by default
    the pool's share-out) and its key's one hello signature."""
    key_of = key_of or keys.for_user
    hellos = signed_hellos(keys.keys, keys.public_texts)
    return [BenchUser(index=i, url=urls[i % len(urls)], key_index=key_of(i), pubkey=keys.public_texts[key_of(i)],
                      hello_sig=hellos[key_of(i)])
            for i in range(count)]


def _describe(closed: ConnectionClosed) -> str:
    if closed.rcvd is not None:
        return f"server closed with {closed.rcvd.code} {closed.rcvd.reason}".strip()
    return "connection lost"


async def connect_users(users: list[BenchUser], handler: FrameHandler, tasks: asyncio.TaskGroup,
                        concurrency: int, timeout: float,
                        on_admitted: Callable[[BenchUser], None] | None = None,
                        failures: list[str] | None = None) -> None:
    """Connect and hello every user, at most `concurrency` at a time; each user's
    receive loop runs in `tasks`. Raise TimeoutError past `timeout`. With a
    `failures` list, a user the server refuses is noted there instead of raising."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(user: BenchUser) -> None:
        async with gate:
            try:
                await user.connect()
                tasks.create_task(user.receive(handler))
                await user.send_hello()
                await user.admitted(timeout)
            except (ConnectionClosed, ConnectionError, OSError, InvalidHandshake) as exc:
                if failures is None:
                    raise
                failures.append(user.close_reason or str(exc) or type(exc).__name__)
                return
            if on_admitted is not None:
                on_admitted(user)

    async with asyncio.timeout(timeout):
        async with asyncio.TaskGroup() as group:
            for user in users:
                group.create_task(one(user))
