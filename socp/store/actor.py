"""The store actor: the node's only database user, serving requests over ZeroMQ.

    router/others (DEALER, StoreClient) ──requests──▶ ROUTER  config.endpoints.store_requests
                                         ◀──replies──

Inside, one TaskGroup owns:

  opener    opens the database and applies migrations; while the database cannot be
            reached it retries with backoff (a misconfiguration ends the actor instead)
  receiver  reads requests; queues writes, starts reads
  writer    applies writes one at a time in arrival order; when the database is down
            it keeps the write at the head of the queue and retries with backoff
  reads     one short task per read, at most MAX_CONCURRENT_READS at once
  prober    once the database is open, a trivial statement every PROBE_INTERVAL, so
            an outage (and the recovery) shows even when nothing is read or written

Every database call reports its outcome to `DatabaseHealth` (socp/store/availability.py);
a Status request answers with it at once. The log gets one line when an outage
begins and one when it ends, never one per retry.

Bounds and what happens when they are hit:

  writes queued           WRITE_QUEUE_SIZE   refused at once with Failed(overloaded)
  reads in progress       MAX_CONCURRENT_READS  the receiver stops reading (backpressure)
  socket queues           SOCKET_HWM         ZeroMQ blocks the sender / drops late replies
  request size            MAX_REQUEST_BYTES  ZeroMQ drops the connection

A read waits until every write that arrived before it is applied (read-your-writes);
if the database is down meanwhile, the read is answered Failed(unavailable) at once.
On SIGTERM/SIGINT the actor stops reading, gives queued writes DRAIN_TIMEOUT to land,
and exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from socp.config import NodeConfig
from socp.ipc import store_messages as wire
from socp.ipc.endpoints import ensure_runtime_dir
from socp.protocol.errors import MalformedFrame
from socp.protocol.ids import ServerId, UserId
from socp.store.availability import UNAVAILABLE, DatabaseHealth
from socp.store.errors import StoreMisconfigured, StoreQueryError, StoreRequestRejected, StoreUnavailable
from socp.store.operations import Store
from socp.store.records import RemoteBinding, StoreSnapshot

log = logging.getLogger("socp.store")

WRITE_QUEUE_SIZE = 10_000
MAX_CONCURRENT_READS = 8
SOCKET_HWM = 10_000
RETRY_FIRST_DELAY = 0.05     # seconds; doubles up to RETRY_MAX_DELAY
RETRY_MAX_DELAY = 5.0
DRAIN_TIMEOUT = 1.0
PROBE_INTERVAL = 2.0         # seconds between idle checks that the database answers

Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class StoreCounters:
    """Read by tests and (later) the metrics endpoint."""

    requests: int = 0
    writes_applied: int = 0
    write_retries: int = 0
    refused_overloaded: int = 0
    refused_malformed: int = 0
    reads_unavailable: int = 0
    outages: int = 0


def snapshot_reply(request_id: int, snapshot: StoreSnapshot) -> wire.SnapshotReply:
    return wire.SnapshotReply(
        request_id=request_id,
        users={uid: [r.pubkey, r.meta, r.version, r.revoked, r.home_server, r.privkey_store, r.pake_password]
               for uid, r in snapshot.users.items()},
        pinned_servers={sid: [s.pubkey, s.host, s.port] for sid, s in snapshot.pinned_servers.items()},
        pending_key_shares=[[s.sender, s.member, s.payload, s.ts] for s in snapshot.pending_key_shares],
        public_channel_version=snapshot.public_channel_version,
        public_channel_members=list(snapshot.public_channel_members),
        hello_signers=list(snapshot.hello_signers),
        hello_signatures=[[h.user_id, h.sig_digest, h.seen_at] for h in snapshot.hello_signatures],
        replay_keys=[[ref, ts] for ref, ts in snapshot.replay_keys],
        replay_state=dict(snapshot.replay_state),
        held_messages=[[h.recipient, h.held_id, h.held_at, h.message] for h in snapshot.held_messages],
    )


def _remote_binding(values: list[Any]) -> RemoteBinding:
    if not isinstance(values, list) or len(values) != 4:
        raise StoreRequestRejected("a binding is [user_id, pubkey, home_server, meta]")
    user_id, pubkey, home_server, meta = values
    if not (isinstance(user_id, str) and isinstance(pubkey, str) and isinstance(home_server, str)):
        raise StoreRequestRejected("a binding's user_id, pubkey and home_server are strings")
    return RemoteBinding(UserId(user_id), pubkey, ServerId(home_server), meta)


async def execute(store: Store, request: wire.StoreRequest) -> wire.StoreReply:
    """Run one request against the store and say how it went, as a reply."""
    rid = request.request_id
    match request:
        case wire.Ping():
            return wire.Done(rid)
        case wire.LoadSnapshot():
            return snapshot_reply(rid, await store.load_snapshot())
        case wire.GetUser():
            user = await store.get_user(UserId(request.user_id))
            if user is None:
                return wire.UserReply(rid, False, "", {}, 0, False, None, "", "")
            return wire.UserReply(rid, True, user.pubkey, user.meta, user.version, user.revoked, user.home_server,
                                  user.privkey_store, user.pake_password)
        case wire.BindUser():
            result = await store.bind_user(UserId(request.user_id), request.pubkey, request.meta)
            return wire.BindReply(rid, result.value)
        case wire.SaveKeyShare():
            changed = await store.save_key_share(UserId(request.sender), UserId(request.member),
                                                 request.wrapped_key, request.payload, request.ts)
            return wire.Applied(rid, changed)
        case wire.MarkShareDelivered():
            changed = await store.mark_share_delivered(UserId(request.sender), UserId(request.member), request.ts)
            return wire.Applied(rid, changed)
        case wire.PinServer():
            pin = await store.pin_server(ServerId(request.server_id), request.pubkey, request.host, request.port)
            return wire.PinReply(rid, pin.value)
        case wire.UpdateServerAddr():
            changed = await store.update_server_addr(ServerId(request.server_id), request.host, request.port)
            return wire.Applied(rid, changed)
        case wire.AddChannelMember():
            await store.add_channel_member(UserId(request.member_id), request.version)
            return wire.Done(rid)
        case wire.SetLogin():
            changed = await store.set_login(UserId(request.user_id), request.privkey_store, request.pake_password)
            return wire.Applied(rid, changed)
        case wire.BindRemoteUser():
            result = await store.bind_remote_user(UserId(request.user_id), request.pubkey,
                                                  ServerId(request.home_server), request.meta)
            return wire.BindReply(rid, result.value)
        case wire.BindRemoteUsers():
            results = await store.bind_remote_users([_remote_binding(b) for b in request.bindings])
            return wire.BindReplies(rid, [r.value for r in results])
        case wire.NoteSignedHello():
            await store.note_signed_hello(UserId(request.user_id), request.sig_digest, request.seen_at,
                                          request.forget_before, request.keep)
            return wire.Done(rid)
        case wire.NoteReplayKeys():
            await store.note_replay_keys(request.keys, request.forget_before)
            return wire.Done(rid)
        case wire.SetReplayState():
            await store.set_replay_state(request.name, request.value)
            return wire.Done(rid)
        case wire.HoldMessage():
            await store.hold_message(UserId(request.recipient), request.held_id, request.held_at, request.message)
            return wire.Done(rid)
        case wire.DropHeld():
            await store.drop_held(UserId(request.recipient), request.held_ids)
            return wire.Done(rid)
    raise StoreRequestRejected(f"{type(request).__name__} is not a request")


class StoreService:
    """Serves store requests arriving on a bound ROUTER socket (see the module docstring)."""

    def __init__(self, socket: zmq.asyncio.Socket, open_store: Callable[[], Awaitable[Store]], *,
                 write_queue_size: int = WRITE_QUEUE_SIZE, max_concurrent_reads: int = MAX_CONCURRENT_READS,
                 retry_first_delay: float = RETRY_FIRST_DELAY, retry_max_delay: float = RETRY_MAX_DELAY,
                 drain_timeout: float = DRAIN_TIMEOUT, probe_interval: float = PROBE_INTERVAL,
                 sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.time) -> None:
        self._socket = socket
        self._open_store = open_store
        self._store: Store | None = None
        self._store_open = asyncio.Event()
        self._open_error = "the database is not open yet"
        self._writes: asyncio.Queue[tuple[bytes, wire.StoreRequest]] = asyncio.Queue(write_queue_size)
        self._writes_received = 0
        self._writes_done = 0
        self.health = DatabaseHealth(clock)
        self._progress = asyncio.Condition()     # writes_done moved, or an outage began
        self._read_slots = asyncio.Semaphore(max_concurrent_reads)
        self._read_tasks: set[asyncio.Task[None]] = set()
        self._retry_first_delay = retry_first_delay
        self._retry_max_delay = retry_max_delay
        self._drain_timeout = drain_timeout
        self._probe_interval = probe_interval
        self._sleep = sleep
        self.counters = StoreCounters()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                opener = tasks.create_task(self._open_database())
                writer = tasks.create_task(self._apply_writes())
                prober = tasks.create_task(self._probe_database())
                receiver = tasks.create_task(self._receive_requests(tasks))
                await stop.wait()
                receiver.cancel()
                prober.cancel()
                await self._drain_writes()
                for task in (opener, writer, *self._read_tasks):
                    task.cancel()
        finally:
            if self._store is not None:
                await self._store.close()

    # -- opening -----------------------------------------------------------------------

    async def _open_database(self) -> None:
        delay = self._retry_first_delay
        while True:
            try:
                self._store = await self._open_store()
            except StoreMisconfigured:
                raise   # retrying cannot fix a wrong URL or password; end the actor
            except StoreUnavailable as exc:
                self._open_error = f"the database is not open yet: {exc}"
                if not await self._database_failed(exc.detail):
                    log.debug("database still unavailable, retrying in %.1fs: %s", delay, exc)
                await self._back_off(delay)
                delay = min(delay * 2, self._retry_max_delay)
                continue
            down_for = self.health.unavailable_for_s()
            self.health.ok()
            if down_for:
                log.warning("database open after %.1f s unavailable: %s", down_for, self._store.database.description)
            else:
                log.info("database open: %s", self._store.database.description)
            self._store_open.set()
            return

    async def _probe_database(self) -> None:
        """Ask the database a trivial question every probe interval: without it an
        outage on an idle node would go unseen until the next write."""
        await self._store_open.wait()
        assert self._store is not None
        while True:
            await self._back_off(self._probe_interval)
            try:
                await self._store.ping()
            except StoreUnavailable as exc:
                await self._database_failed(exc.detail)
            else:
                self._database_ok()

    # -- the database's health ---------------------------------------------------------

    async def _database_failed(self, detail: str) -> bool:
        """Record a failed call; the first of an outage is logged and wakes waiting reads."""
        if not self.health.failed(detail):
            return False
        self.counters.outages += 1
        log.warning("database unavailable, retrying with backoff (writes held: %d): %s",
                    self.writes_waiting, detail)
        async with self._progress:
            self._progress.notify_all()   # reads waiting behind held writes answer "unavailable" now
        return True

    def _database_ok(self) -> None:
        down_for = self.health.unavailable_for_s()
        if self.health.ok() and down_for:
            log.warning("database available again after %.1f s (writes held: %d)", down_for, self.writes_waiting)

    @property
    def writes_waiting(self) -> int:
        return self._writes_received - self._writes_done

    def status(self, request_id: int) -> wire.StatusReply:
        health = self.health
        return wire.StatusReply(request_id, health.state, health.detail, health.since_ms, self.writes_waiting)

    # -- requests ----------------------------------------------------------------------

    async def _receive_requests(self, tasks: asyncio.TaskGroup) -> None:
        while True:
            frames = await self._socket.recv_multipart()
            self.counters.requests += 1
            if len(frames) != 2:
                self.counters.refused_malformed += 1
                log.warning("dropped a store request of %d frames (expected a DEALER's one)", len(frames) - 1)
                continue
            identity, body = frames
            try:
                request = wire.unpack(body)
                if not isinstance(request, wire.REQUEST_TYPES):
                    raise MalformedFrame(f"{type(request).__name__} is a reply, not a request")
            except MalformedFrame as exc:
                self.counters.refused_malformed += 1
                request_id = wire.peek_request_id(body)
                if request_id is None:
                    log.warning("dropped an unreadable store request: %s", exc.detail)
                else:
                    await self._reply(identity, wire.Failed(request_id, wire.REASON_BAD_REQUEST, exc.detail))
                continue
            if isinstance(request, wire.WRITE_TYPES):
                await self._queue_write(identity, request)
            else:
                await self._read_slots.acquire()   # backpressure: stop reading while all slots are busy
                task = tasks.create_task(self._serve_read(identity, request, self._writes_received))
                self._read_tasks.add(task)
                task.add_done_callback(self._read_tasks.discard)

    async def _queue_write(self, identity: bytes, request: wire.StoreRequest) -> None:
        try:
            self._writes.put_nowait((identity, request))
        except asyncio.QueueFull:
            self.counters.refused_overloaded += 1
            await self._reply(identity, wire.Failed(request.request_id, wire.REASON_OVERLOADED,
                                                    f"store write queue full ({self._writes.maxsize} waiting)"))
            return
        self._writes_received += 1

    async def _serve_read(self, identity: bytes, request: wire.StoreRequest, writes_before: int) -> None:
        try:
            reply = await self._read(request, writes_before)
        finally:
            self._read_slots.release()
        await self._reply(identity, reply)

    async def _read(self, request: wire.StoreRequest, writes_before: int) -> wire.StoreReply:
        if isinstance(request, wire.Ping):
            return wire.Done(request.request_id)
        if isinstance(request, wire.Status):
            return self.status(request.request_id)
        if self._store is None:
            self.counters.reads_unavailable += 1
            return wire.Failed(request.request_id, wire.REASON_UNAVAILABLE, self._open_error)
        async with self._progress:
            while self._writes_done < writes_before:
                if self.health.state == UNAVAILABLE:
                    self.counters.reads_unavailable += 1
                    return wire.Failed(request.request_id, wire.REASON_UNAVAILABLE,
                                       f"earlier writes are waiting for the database: {self.health.detail}")
                await self._progress.wait()
        try:
            reply = await execute(self._store, request)
        except StoreUnavailable as exc:
            self.counters.reads_unavailable += 1
            await self._database_failed(exc.detail)
            return wire.Failed(request.request_id, wire.REASON_UNAVAILABLE, exc.detail)
        except (StoreQueryError, StoreRequestRejected) as exc:
            return _failure(request, exc)
        self._database_ok()
        return reply

    # -- writes ------------------------------------------------------------------------

    async def _apply_writes(self) -> None:
        while True:
            identity, request = await self._writes.get()
            reply = await self._apply_until_done(request)
            self.counters.writes_applied += 1
            async with self._progress:
                self._writes_done += 1
                self._progress.notify_all()
            self._writes.task_done()
            await self._reply(identity, reply)

    async def _apply_until_done(self, request: wire.StoreRequest) -> wire.StoreReply:
        await self._store_open.wait()
        assert self._store is not None
        delay = self._retry_first_delay
        while True:
            try:
                reply = await execute(self._store, request)
            except StoreUnavailable as exc:
                await self._database_failed(exc.detail)
                self.counters.write_retries += 1
                await self._back_off(delay)
                delay = min(delay * 2, self._retry_max_delay)
                continue
            except (StoreQueryError, StoreRequestRejected) as exc:
                # Retrying cannot fix it; answer and go on with the next write.
                log.error("store write %s failed: %s", type(request).__name__, exc.detail)
                reply = _failure(request, exc)
            else:
                self._database_ok()
            return reply

    async def _back_off(self, delay: float) -> None:
        # On Python 3.11 asyncio.wait_for (inside aiomysql's connect) can swallow a
        # cancellation that lands just as the attempt fails; the task still counts it as
        # cancelling, so honour it here instead of retrying forever after a SIGTERM.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        await self._sleep(delay)

    async def _drain_writes(self) -> None:
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self._writes.join()
        except TimeoutError:
            log.warning("stopping with %d store writes not applied", self._writes.qsize() + 1)

    async def _reply(self, identity: bytes, reply: wire.StoreReply) -> None:
        data = wire.pack(reply)
        if len(data) > wire.MAX_REPLY_BYTES:
            data = wire.pack(wire.Failed(reply.request_id, wire.REASON_QUERY_FAILED,
                                         f"reply of {len(data)} bytes exceeds the limit"))
        # ROUTER never blocks: a reply to a vanished or saturated client is dropped.
        await self._socket.send_multipart([identity, data])


def _failure(request: wire.StoreRequest, error: StoreQueryError | StoreRequestRejected) -> wire.Failed:
    reason = wire.REASON_BAD_REQUEST if isinstance(error, StoreRequestRejected) else wire.REASON_QUERY_FAILED
    return wire.Failed(request.request_id, reason, error.detail)


def bind_store_socket(context: zmq.asyncio.Context, endpoint: str) -> zmq.asyncio.Socket:
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, SOCKET_HWM)
    socket.setsockopt(zmq.RCVHWM, SOCKET_HWM)
    socket.setsockopt(zmq.MAXMSGSIZE, wire.MAX_REQUEST_BYTES)
    socket.bind(endpoint)
    return socket


async def serve(config: NodeConfig, stop: asyncio.Event) -> None:
    """The store actor until `stop` is set (used by `run`, and by tests in-process)."""
    ensure_runtime_dir(config.run_dir)
    context = zmq.asyncio.Context()
    try:
        socket = bind_store_socket(context, config.endpoints.store_requests)
        log.info("store listening on %s", config.endpoints.store_requests)
        try:
            await StoreService(socket, lambda: Store.open(config.database_url)).run(stop)
        finally:
            socket.close(linger=0)
            # libzmq leaves the ipc file behind; a stale one would look like a live store.
            Path(config.endpoints.store_requests.removeprefix("ipc://")).unlink(missing_ok=True)
    finally:
        context.term()


async def _main(config: NodeConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(config, stop)
    log.info("store stopped")


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


def run(config: NodeConfig) -> None:
    """Run the store actor in the foreground until SIGTERM/SIGINT. A misconfigured
    database ends it with a one-line message on stderr and exit status 2."""
    import uvloop

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s store %(levelname)s %(message)s")
    failure: BaseException | None = None
    try:
        uvloop.run(_main(config))
    except* StoreMisconfigured as group:
        failure = _leaves(group)[0]
    if failure is not None:
        print(f"socp store: {failure}", file=sys.stderr)
        raise SystemExit(2)
