"""`StoreClient`: how the router (or any actor) talks to the store actor.

    async with StoreClient(config.endpoints.store_requests) as store:
        snapshot = await store.load_snapshot()
        result = await store.bind_user(user_id, pubkey, {"display_name": "Ann"})

One DEALER socket; each call sends a request with a fresh id and waits for the reply
with that id, at most `timeout` seconds (per client, or per call). A reader task owned
by the client (started by `async with` / `start()`, stopped by `close()`) hands replies
to their callers, so any number of calls may be in flight at once.

Errors: `StoreTimeout` (no answer in time), `StoreUnavailable` (the database is down),
`StoreOverloaded` (the store's write queue is full), `StoreRequestRejected`,
`StoreQueryError`, `StoreClosed`. A write that timed out may still be applied later:
the store keeps writes queued while the database is down and applies them in order.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

import zmq
import zmq.asyncio

from socp.ipc import store_messages as wire
from socp.protocol.errors import MalformedFrame
from socp.protocol.ids import ServerId, UserId
from socp.store.errors import (
    StoreClosed,
    StoreError,
    StoreOverloaded,
    StoreQueryError,
    StoreRequestRejected,
    StoreTimeout,
    StoreUnavailable,
)
from socp.store.records import (
    BindResult,
    DatabaseStatus,
    HeldMessage,
    HelloSignature,
    PendingKeyShare,
    PinnedServer,
    PinResult,
    RemoteBinding,
    StoreSnapshot,
    UserRecord,
)

log = logging.getLogger("socp.store.client")

Reply = TypeVar("Reply", bound=wire.StoreReply)

DEFAULT_TIMEOUT = 5.0
SOCKET_HWM = 10_000

_FAILURES: dict[str, type[StoreError]] = {
    wire.REASON_UNAVAILABLE: StoreUnavailable,
    wire.REASON_OVERLOADED: StoreOverloaded,
    wire.REASON_BAD_REQUEST: StoreRequestRejected,
    wire.REASON_QUERY_FAILED: StoreQueryError,
}


def _user_record(values: list[Any]) -> UserRecord:
    pubkey, meta, version, revoked, home_server, privkey_store, pake_password = values
    return UserRecord(pubkey, meta, version, bool(revoked), None if home_server is None else ServerId(home_server),
                      privkey_store, pake_password)


def snapshot_from_reply(reply: wire.SnapshotReply) -> StoreSnapshot:
    return StoreSnapshot(
        users={UserId(uid): _user_record(values) for uid, values in reply.users.items()},
        pinned_servers={ServerId(sid): PinnedServer(pubkey, host, port)
                        for sid, (pubkey, host, port) in reply.pinned_servers.items()},
        pending_key_shares=tuple(PendingKeyShare(UserId(sender), UserId(member), payload, ts)
                                 for sender, member, payload, ts in reply.pending_key_shares),
        public_channel_version=reply.public_channel_version,
        public_channel_members=tuple(UserId(m) for m in reply.public_channel_members),
        hello_signers=tuple(UserId(u) for u in reply.hello_signers),
        hello_signatures=tuple(HelloSignature(UserId(u), digest, seen_at)
                               for u, digest, seen_at in reply.hello_signatures),
        replay_keys=tuple((str(ref), int(ts)) for ref, ts in reply.replay_keys),
        replay_state=dict(reply.replay_state),
        held_messages=tuple(HeldMessage(UserId(recipient), int(held_id), int(held_at), message)
                            for recipient, held_id, held_at, message in reply.held_messages),
    )


class StoreClient:
    def __init__(self, endpoint: str, *, timeout: float = DEFAULT_TIMEOUT,
                 context: zmq.asyncio.Context | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = context or zmq.asyncio.Context.instance()
        self._socket: zmq.asyncio.Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._request_ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[wire.StoreMessage]] = {}
        self.late_replies = 0          # replies for calls that had already timed out
        self.unreadable_replies = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> StoreClient:
        if self._socket is not None:
            return self
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDHWM, SOCKET_HWM)
        socket.setsockopt(zmq.RCVHWM, SOCKET_HWM)
        socket.connect(self.endpoint)
        self._socket = socket
        self._reader = asyncio.get_running_loop().create_task(self._read_replies(), name="store-client-replies")
        return self

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                # Ours, from the cancel() above - unless the caller is being cancelled too.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._fail_waiting(StoreClosed("store client closed"))

    async def __aenter__(self) -> StoreClient:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            await self.close()
        except asyncio.CancelledError:
            # Leaving on an error: let that error out, not a cancellation that may only be
            # the mark a Python 3.11 TaskGroup leaves on its parent (socp/runtime.py).
            if exc is None or isinstance(exc, asyncio.CancelledError):
                raise

    # -- operations --------------------------------------------------------------------

    async def ping(self, *, timeout: float | None = None) -> None:
        """Wait for the store actor to answer (not for its database to be open)."""
        await self._call(wire.Ping(self._next_id()), wire.Done, timeout)

    async def status(self, *, timeout: float | None = None) -> DatabaseStatus:
        """Whether the store's database answers now (answered at once, never queued)."""
        reply = await self._call(wire.Status(self._next_id()), wire.StatusReply, timeout)
        return DatabaseStatus(reply.state, reply.detail, reply.since_ms, reply.writes_waiting)

    async def load_snapshot(self, *, timeout: float | None = None) -> StoreSnapshot:
        reply = await self._call(wire.LoadSnapshot(self._next_id()), wire.SnapshotReply, timeout)
        return snapshot_from_reply(reply)

    async def get_user(self, user_id: UserId, *, timeout: float | None = None) -> UserRecord | None:
        reply = await self._call(wire.GetUser(self._next_id(), user_id), wire.UserReply, timeout)
        if not reply.found:
            return None
        home = None if reply.home_server is None else ServerId(reply.home_server)
        return UserRecord(reply.pubkey, reply.meta, reply.version, reply.revoked, home, reply.privkey_store,
                          reply.pake_password)

    async def bind_user(self, user_id: UserId, pubkey: str, meta: dict[str, Any] | None = None, *,
                        timeout: float | None = None) -> BindResult:
        reply = await self._call(wire.BindUser(self._next_id(), user_id, pubkey, meta or {}), wire.BindReply, timeout)
        return BindResult(reply.result)

    async def bind_remote_user(self, user_id: UserId, pubkey: str, home_server: ServerId,
                               meta: dict[str, Any] | None = None, *, timeout: float | None = None) -> BindResult:
        """A remote user's key from gossip; never overrides a user registered here."""
        request = wire.BindRemoteUser(self._next_id(), user_id, pubkey, home_server, meta or {})
        return BindResult((await self._call(request, wire.BindReply, timeout)).result)

    async def bind_remote_users(self, bindings: Sequence[RemoteBinding], *,
                                timeout: float | None = None) -> list[BindResult]:
        """`bind_remote_user` for each binding, in order, in one transaction."""
        request = wire.BindRemoteUsers(self._next_id(), [[b.user_id, b.pubkey, b.home_server, b.meta or {}]
                                                         for b in bindings])
        reply = await self._call(request, wire.BindReplies, timeout)
        return [BindResult(result) for result in reply.results]

    async def set_login(self, user_id: UserId, privkey_store: str, pake_password: str, *,
                        timeout: float | None = None) -> bool:
        """Keep a local user's encrypted key blob and password verifier; False if not local."""
        request = wire.SetLogin(self._next_id(), user_id, privkey_store, pake_password)
        return (await self._call(request, wire.Applied, timeout)).changed

    async def save_key_share(self, sender: UserId, member: UserId, wrapped_key: str, payload: dict[str, Any],
                             ts: int, *, timeout: float | None = None) -> bool:
        """True if stored; False if an equally new or newer share from `sender` was already kept."""
        request = wire.SaveKeyShare(self._next_id(), sender, member, wrapped_key, payload, ts)
        return (await self._call(request, wire.Applied, timeout)).changed

    async def mark_share_delivered(self, sender: UserId, member: UserId, ts: int | None = None, *,
                                   timeout: float | None = None) -> bool:
        request = wire.MarkShareDelivered(self._next_id(), sender, member, ts)
        return (await self._call(request, wire.Applied, timeout)).changed

    async def hold_message(self, recipient: UserId, held_id: int, held_at: int, message: dict[str, Any], *,
                           timeout: float | None = None) -> None:
        """Keep a DM for an offline user until `drop_held` (router/offline.py)."""
        await self._call(wire.HoldMessage(self._next_id(), recipient, held_id, held_at, message), wire.Done, timeout)

    async def drop_held(self, recipient: UserId, held_ids: list[int], *, timeout: float | None = None) -> None:
        await self._call(wire.DropHeld(self._next_id(), recipient, list(held_ids)), wire.Done, timeout)

    async def pin_server(self, server_id: ServerId, pubkey: str, host: str | None, port: int | None, *,
                         timeout: float | None = None) -> PinResult:
        request = wire.PinServer(self._next_id(), server_id, pubkey, host, port)
        return PinResult((await self._call(request, wire.PinReply, timeout)).result)

    async def update_server_addr(self, server_id: ServerId, host: str | None, port: int | None, *,
                                 timeout: float | None = None) -> bool:
        request = wire.UpdateServerAddr(self._next_id(), server_id, host, port)
        return (await self._call(request, wire.Applied, timeout)).changed

    async def note_signed_hello(self, user_id: UserId, sig_digest: str, seen_at: int, forget_before: int,
                                keep: int, *, timeout: float | None = None) -> None:
        """A signed hello was accepted: the id signs from now on; this signature is used."""
        request = wire.NoteSignedHello(self._next_id(), user_id, sig_digest, seen_at, forget_before, keep)
        await self._call(request, wire.Done, timeout)

    async def note_replay_keys(self, keys: list[list[Any]], forget_before: int, *,
                               timeout: float | None = None) -> None:
        """Keep the duplicate keys [msg_ref, ts, seen_at] of user frames (router/replay_log.py)."""
        await self._call(wire.NoteReplayKeys(self._next_id(), keys, forget_before), wire.Done, timeout)

    async def set_replay_state(self, name: str, value: int, *, timeout: float | None = None) -> None:
        await self._call(wire.SetReplayState(self._next_id(), name, value), wire.Done, timeout)

    async def add_channel_member(self, member_id: UserId, version: int, *, timeout: float | None = None) -> None:
        await self._call(wire.AddChannelMember(self._next_id(), member_id, version), wire.Done, timeout)

    # -- plumbing ----------------------------------------------------------------------

    def _next_id(self) -> int:
        return next(self._request_ids)

    async def _call(self, request: wire.StoreRequest, expected: type[Reply], timeout: float | None) -> Reply:
        if self._socket is None:
            raise StoreClosed("store client is not started (use `async with StoreClient(...)`)")
        limit = self.timeout if timeout is None else timeout
        reply_future: asyncio.Future[wire.StoreMessage] = asyncio.get_running_loop().create_future()
        self._waiting[request.request_id] = reply_future
        try:
            async with asyncio.timeout(limit):
                await self._socket.send(wire.pack(request))
                reply = await reply_future
        except TimeoutError:
            raise StoreTimeout(f"the store did not answer {type(request).__name__} within {limit:g}s "
                               f"({self.endpoint})") from None
        finally:
            self._waiting.pop(request.request_id, None)
        if isinstance(reply, wire.Failed):
            raise _FAILURES.get(reply.reason, StoreQueryError)(reply.detail)
        if not isinstance(reply, expected):
            raise StoreQueryError(f"the store answered {type(request).__name__} with {type(reply).__name__}")
        return reply

    async def _read_replies(self) -> None:
        assert self._socket is not None
        try:
            while True:
                data = await self._socket.recv()
                try:
                    reply = wire.unpack(data, max_bytes=wire.MAX_REPLY_BYTES)
                except MalformedFrame as exc:
                    self.unreadable_replies += 1
                    log.warning("dropped an unreadable store reply: %s", exc.detail)
                    continue
                waiter = self._waiting.get(reply.request_id)
                if waiter is None or waiter.done():
                    self.late_replies += 1
                    continue
                waiter.set_result(reply)
        finally:
            self._fail_waiting(StoreClosed("store client stopped reading replies"))

    def _fail_waiting(self, error: StoreError) -> None:
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(error)
        self._waiting.clear()
