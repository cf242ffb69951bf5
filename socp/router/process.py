"""The router process: a thin driver around the pure core.

It puts each connection's events back in order (the verifier pool answers out of
order), stamps the time, calls `core.handle`, and turns actions into messages:
signing work for the verifier pool, ready frames and link commands for the
gateway, writes for the store. HTTP directory look-ups (DirectoryQuery) belong to
no connection: they are applied as they come, and their answers are neither
ordered nor re-sent. It also passes the store's status on to the gateway
(store_watch.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import zmq

from socp.config import NodeConfig
from socp.identity import NodeIdentity, adopt_server_id
from socp.ipc import messages as m
from socp.ipc.direct import DirectSocket
from socp.ipc.endpoints import ensure_runtime_dir
from socp.metrics.router import router_ticked
from socp.protocol.errors import MalformedFrame

from . import core, fairshare, federation, persistence, replay_log, user_acks
from .core_io import (
    GATEWAY_RESTARTED,
    Action,
    AdoptServerId,
    BatchEnd,
    Close,
    Dial,
    DirectoryQueried,
    Event,
    FrameIn,
    FramesWritten,
    LinkDown,
    QueryAnswer,
    Relay,
    Send,
    StoreWrite,
    Tick,
)
from .persistence import RouterStore
from .recovery import INBOUND_TYPES, InboundMessage, InboundOrder, InFlight, Ready
from .snapshot import state_from_snapshot
from .state import RouterState
from .store_watch import StoreWatch

log = logging.getLogger("socp.router")

HIGH_WATER_MARK = 100_000
EVENT_BATCHES_BOUND = 256     # batches of inbox messages (each at most RECEIVE_BATCH) waiting
STORE_QUEUE_BOUND = 10_000
STORE_ROOM_WAIT = 5.0         # seconds the router waits for room in a full store queue
TICK_SECONDS = 0.5
# InboundDone goes at every tick, and sooner once this many events took effect: the
# gateway keeps at most 1,024 frames a link until then (gateway/socket_links.KEPT_FRAMES)
# and stops reading the link when they are kept, so a tick alone held a joining
# server's snapshot to ~2,000 adverts a second however fast the node went.
INBOUND_DONE_AFTER = 256
GATEWAY_HELLO_WAIT = 2.0
EPOCH_START = 1_704_067_200   # 2024-01-01: epochs are tenths of a second since then


def new_epoch() -> int:
    """Larger at every start (restarts take well over 0.1 s); fits OUT_SEQ's high bits."""
    return int((time.time() - EPOCH_START) * 10)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Counters:
    events: int = 0
    sign_jobs: int = 0
    frames_out: int = 0
    writes: persistence.WriteCounters = field(default_factory=persistence.WriteCounters)
    writes_waited: int = 0         # the store queue was full: the router waited for room
    writes_not_queued: int = 0     # the store queue stayed full (store down or stuck): dropped
    sign_jobs_resent: int = 0
    sign_jobs_given_up: int = 0
    directory_queries: int = 0


@dataclass
class RouterDriver:
    state: RouterState
    config: NodeConfig
    # PUSH deals the jobs round-robin, one job a message. Signing jobs all cost about
    # the same, so the verifier that frees up first is the one whose last job is the
    # oldest: the one round-robin picks next. A load-aware choice would gain nothing.
    sign_jobs: DirectSocket
    to_gateway: DirectSocket
    store_writes: asyncio.Queue[StoreWrite]
    epoch: int = 0
    # Each connection's events in order, and the hold-back while a new router takes the
    # gateway's replay (recovery.py).
    inbound_order: InboundOrder = field(default_factory=InboundOrder)
    gateway_boot: str = ""
    federation_started: bool = False
    out_seq: dict[int, int] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)
    in_flight: InFlight = field(init=False)
    store_watch: StoreWatch | None = None

    def __post_init__(self) -> None:
        self.in_flight = InFlight(verifiers=self.config.verifiers)
        self.state.fair_share.verifiers = self.config.verifiers

    # --- inbound ------------------------------------------------------------------------

    def inbound(self, message: InboundMessage) -> list[Ready]:
        """(conn, seq, event) to apply now for one actor message (recovery.InboundOrder)."""
        return self.inbound_order.take(message, self.state.links)

    def end_replay(self) -> list[Ready]:
        return self.inbound_order.end_replay()

    async def apply_inbound(self, conn: int, seq: int, event: Event) -> None:
        await self.apply(event)
        if not isinstance(event, LinkDown):
            self.inbound_order.applied_up_to(conn, seq)

    async def tick(self) -> None:
        """Time passes: the core's Tick, then what the driver owes the others."""
        await self.apply(Tick())
        await self.report_links()
        router_ticked(self.state, len(self.in_flight), self.store_writes.qsize())
        await self.report_applied()
        again, give_up = self.in_flight.due(now_ms())
        for data in again:
            self.counters.sign_jobs_resent += 1
            await self.sign_jobs.send(data)
        if give_up:
            self.counters.sign_jobs_given_up += 1
            log.error("router: %d outbound frames never came back from the verifiers; skipped", len(give_up))
            await self.to_gateway.send(m.pack(m.Deliver([(conn, seq, "") for conn, seq in give_up])))

    async def report_applied(self) -> None:
        """Tell the gateway how far each connection's frames took effect (InboundDone),
        so it forgets them and reads on."""
        marks = self.inbound_order.applied_marks()
        if marks:
            await self.to_gateway.send(m.pack(m.InboundDone(marks)))

    async def report_links(self, always: bool = False) -> None:
        """The link book changed (or a new gateway knows nothing): tell the gateway,
        for /healthz and `socp status` (at most once a tick)."""
        book = self.state.linkbook
        if book.changed or always:
            book.changed = False
            await self.to_gateway.send(m.pack(m.ServerLinks(book.rows())))

    def outbound_done(self, message: m.OutboundDone) -> None:
        for conn, first_unreleased in message.marks:
            self.in_flight.released(conn, first_unreleased)

    async def gateway_hello(self, boot_id: str) -> None:
        """The gateway (re)started. Its first hello may predate us: it only lets the
        mesh start. A new boot id later means every connection of before is gone."""
        if self.gateway_boot and boot_id != self.gateway_boot:
            for conn in list(self.state.links):
                await self.apply(LinkDown(conn, GATEWAY_RESTARTED))
            self.inbound_order.gateway_restarted()
            self.out_seq.clear()
            self.in_flight = InFlight(verifiers=self.config.verifiers)
            self.federation_started = False
        self.gateway_boot = boot_id
        if self.store_watch is not None:
            await self.store_watch.report_latest()   # a new gateway knows nothing yet
        await self.report_links(always=True)
        await self.start_federation()

    async def start_federation(self) -> None:
        if not self.federation_started:
            self.federation_started = True
            self.state.now_ms = now_ms()
            await self.dispatch(federation.start(self.state))

    # --- one event at a time ------------------------------------------------------------

    async def apply(self, event: Event) -> None:
        self.state.now_ms = now_ms()
        self.counters.events += 1
        origin = self.origin_of(event)
        actions = core.handle(self.state, event)
        if log.isEnabledFor(logging.DEBUG) and not isinstance(event, Tick):
            log.debug("router: %s -> %s", _describe(event), [type(a).__name__ for a in actions])
        if isinstance(event, LinkDown):
            self.inbound_order.forget(event.conn)
        await self.dispatch(actions, origin)
        await self.release()
        if isinstance(event, LinkDown):
            self.out_seq.pop(event.conn, None)
            self.in_flight.forget_conn(event.conn)

    def _next_out(self, conn: int) -> int:
        n = self.out_seq.get(conn, 0)
        self.out_seq[conn] = n + 1
        return m.out_seq(self.epoch, n)

    def origin_of(self, event: Event) -> tuple[str, int] | None:
        """(sender, conn) whose frame `event` is, for the fair share of signatures:
        our user, or a linked server (its relays); None for the node's own events."""
        if not isinstance(event, FrameIn):
            return None
        sender = fairshare.sender_of(self.state.links.get(event.conn))
        return (sender, event.conn) if sender is not None else None

    async def dispatch(self, actions: list[Action], origin: tuple[str, int] | None = None) -> None:
        """Carry out the core's actions. What a sender's frame makes the node sign for
        others waits in that sender's queue (fairshare.py); answers to the sender
        itself (ACK, ERROR) and the node's own frames go to the verifiers at once,
        but after what the pool has room for of the queued frames: on an idle node a
        DM is signed before the ACK to its sender, not behind it (user_acks.py).
        Answers `charged_to` a sender wait in that sender's queue (refusals.py)."""
        pushed = False
        for action in actions:
            if isinstance(action, Send):
                if action.charged_to:
                    self.state.fair_share.charge(action.charged_to, action)
                    pushed = True
                elif origin is not None and all(conn != origin[1] for conn, _ in action.targets):
                    self.state.fair_share.push(origin[0], action)
                    pushed = True
                else:
                    if pushed:
                        await self.sign_queued()
                        pushed = False
                    self.state.fair_share.sent_directly()
                    await self.sign(action)
            elif isinstance(action, Relay):
                text = action.frame.to_wire()
                items = [(conn, self._next_out(conn), text) for conn in action.conns]
                self.counters.frames_out += len(items)
                await self.to_gateway.send(m.pack(m.Deliver(items)))
            elif isinstance(action, Close):
                command = m.CloseLink(action.conn, self._next_out(action.conn), action.code, action.reason)
                await self.to_gateway.send(m.pack(command))
            elif isinstance(action, Dial):
                await self.to_gateway.send(m.pack(m.DialLink(action.conn, action.host, action.port, action.verify_key,
                                                             action.unsigned_ok)))
            elif isinstance(action, StoreWrite):
                await self.queue_write(action)
            elif isinstance(action, AdoptServerId):
                adopt_server_id(self.config.data_dir, action.server_id)
            elif isinstance(action, QueryAnswer):
                await self.answer_query(action)
            else:
                raise TypeError(f"unknown action {action!r}")

    async def queue_write(self, write: StoreWrite) -> None:
        """Queue a write for the store. A full queue while the store answers means it is
        slower than what we decide (a joining server's snapshot): wait for room, so the
        router takes no more events until the store catches up, and the gateway's
        queues in turn stop reading the senders. Not for ever: while the store does
        not answer, waiting would stall the node for the whole outage, so after
        STORE_ROOM_WAIT (or at once, when an outage is known) the write is dropped,
        with an error in the log."""
        if not self.store_writes.full():
            self.store_writes.put_nowait(write)
            return
        if self.store_watch is None or self.store_watch.available:
            self.counters.writes_waited += 1
            try:
                async with asyncio.timeout(STORE_ROOM_WAIT):
                    await self.store_writes.put(write)
                return
            except TimeoutError:
                pass
        self.counters.writes_not_queued += 1
        log.error("router: store queue full and the store is not keeping up; %s not persisted", write.operation)
        if write.operation == replay_log.WRITE_KEYS:
            self.state.replay_log.keys_lost = True   # no clean stop can be claimed now

    async def sign(self, send: Send) -> None:
        """Hand one Send to the verifier pool: out seqs are taken now, so a queued
        frame keeps its place behind what its connection was sent before."""
        targets = [(conn, to) for conn, to in send.targets if conn in self.state.links]
        if not targets:
            self.state.fair_share.signed_jobs(1, 0, self.state.now_ms)   # nobody left to sign for
            return
        frame = send.frame
        deliveries = [(conn, self._next_out(conn), to) for conn, to in targets]
        job = m.SignJob(frame.type, frame.from_, frame.ts, frame.payload, deliveries, send.whole_envelope)
        self.counters.sign_jobs += 1
        self.counters.frames_out += len(deliveries)
        data = m.pack(job)
        self.in_flight.sent(data, [(conn, seq) for conn, seq, _ in deliveries], self.state.now_ms)
        await self.sign_jobs.send(data)

    async def release(self) -> None:
        """Queued jobs the verifier pool has room for, in fair order (fairshare.py);
        then, in the room left, the ACKs that waited for it (user_acks.py), which may
        have queued behind their connection's refusal answers (refusals.py)."""
        await self.sign_queued()
        if self.state.acks_waiting:
            await self.dispatch(user_acks.send_waiting(self.state))
            await self.sign_queued()

    async def sign_queued(self) -> None:
        for send in self.state.fair_share.ready(now_ms()):
            await self.sign(send)

    async def signed(self, message: m.Signed) -> None:
        """A verifier signed a job: room for the next, and a measure of the pool's speed."""
        self.state.now_ms = now_ms()     # an ACK that waited for the room is stamped now
        if message.remote_verifiers >= 0:
            self.state.fair_share.remote_verifiers = message.remote_verifiers   # the pool grew or shrank
        if message.count:
            self.state.fair_share.signed_jobs(message.count, message.sign_us / 1000, now_ms())
        await self.release()

    async def answer_query(self, answer: QueryAnswer) -> None:
        """A found entry is signed by a verifier, which hands it to the gateway under
        the query id; a miss needs no signature. Not tracked in `in_flight`: the
        gateway's HTTP answer times out if a verifier dies with the job."""
        self.counters.directory_queries += 1
        frame = answer.frame
        if frame is None:
            await self.to_gateway.send(m.pack(m.DirectoryMiss(answer.query, answer.detail)))
            return
        self.counters.sign_jobs += 1
        self.state.fair_share.sent_directly()
        job = m.SignJob(frame.type, frame.from_, frame.ts, frame.payload, [(answer.query, 0, frame.to)])
        await self.sign_jobs.send(m.pack(job))


def _describe(event: Event) -> str:
    if isinstance(event, FrameIn):
        return f"{event.frame.type} on {event.conn}"
    return repr(event)


# What the process loop takes: a control message, a Tick, or (conn, seq, event) in order.
Work = m.GatewayHello | m.OutboundDone | m.FramesWritten | m.DirectoryQuery | m.Signed | Tick | Ready


async def _receive(inbox: DirectSocket, driver: RouterDriver, events: asyncio.Queue[list[Work]]) -> None:
    # One queue item per batch of inbox messages: a queue handoff per message cost
    # more than the routing decision it carried.
    while True:
        batch: list[Work] = []
        for data in await inbox.receive_batch():
            try:
                message = m.unpack(data)
            except MalformedFrame as exc:
                log.error("router: unreadable actor message dropped: %s", exc.detail)
                continue
            if isinstance(message, m.GatewayHello):
                batch.extend(driver.end_replay())
            if isinstance(message, (m.GatewayHello, m.OutboundDone, m.FramesWritten, m.DirectoryQuery, m.Signed)):
                batch.append(message)
            elif isinstance(message, INBOUND_TYPES):
                batch.extend(driver.inbound(message))
            else:
                log.warning("router: unexpected %s ignored", type(message).__name__)
        if batch:
            await events.put(batch)


async def _tick(events: asyncio.Queue[list[Work]]) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        await events.put([Tick()])


async def _process(driver: RouterDriver, events: asyncio.Queue[list[Work]]) -> None:
    driver.state.batch_joins = True
    while True:
        for work in await events.get():
            if isinstance(work, tuple):
                await driver.apply_inbound(*work)
            elif isinstance(work, Tick):
                await driver.tick()
            elif isinstance(work, m.OutboundDone):
                driver.outbound_done(work)
            elif isinstance(work, m.Signed):
                await driver.signed(work)
            elif isinstance(work, m.FramesWritten):
                await driver.apply(FramesWritten(tuple((conn, count) for conn, count in work.counts)))
            elif isinstance(work, m.DirectoryQuery):
                await driver.apply(DirectoryQueried(work.query, work.user_id))
            else:
                await driver.gateway_hello(work.boot_id)
        await driver.apply(BatchEnd())
        if driver.inbound_order.applied_unreported >= INBOUND_DONE_AFTER:
            await driver.report_applied()


async def _start_without_gateway_hello(driver: RouterDriver, events: asyncio.Queue[list[Work]]) -> None:
    """A router restarted beside a running gateway hears no hello: start anyway."""
    await asyncio.sleep(GATEWAY_HELLO_WAIT)
    held: list[Work] = [*driver.end_replay()]
    if held:
        await events.put(held)
    if not driver.federation_started:
        await events.put([m.GatewayHello(boot_id=driver.gateway_boot)])


async def serve(config: NodeConfig, identity: NodeIdentity, store: RouterStore,
                startup: list[Action] | None = None) -> None:
    ensure_runtime_dir(config.run_dir)
    context = zmq.Context()   # plain sockets, driven by DirectSocket (the store client has its own)
    endpoints = config.endpoints
    sockets: list[DirectSocket] = []
    try:
        for kind in (zmq.PULL, zmq.PUSH, zmq.PUSH):
            socket = context.socket(kind)
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
            socket.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
            sockets.append(DirectSocket(socket))
        inbox, sign_jobs, to_gateway = sockets
        inbox.socket.bind(endpoints.router_inbox)
        sign_jobs.socket.bind(endpoints.sign_jobs)
        to_gateway.socket.connect(endpoints.gateway_inbox)
        state = state_from_snapshot(identity, config, await persistence.load_snapshot(store))
        writes: asyncio.Queue[StoreWrite] = asyncio.Queue(STORE_QUEUE_BOUND)
        in_hand: list[StoreWrite] = []
        writes.put_nowait(replay_log.running_mark())   # a crash from now on leaves it (replay_log.py)
        if state.replay_log.unclean_restart_ms is not None:
            log.warning("router: the last stop was not clean; frames stamped before now and not known "
                        "are answered RESEND for %d s", replay_log.WINDOW_MS // 1000)
        epoch = new_epoch()
        state.next_dial_conn = m.FIRST_DIALLED_CONN + (epoch % 2**20) * 2**16
        driver = RouterDriver(state, config, sign_jobs, to_gateway, writes, epoch=epoch)

        async def tell_gateway(status: m.StoreStatus) -> None:
            await to_gateway.send(m.pack(status))

        watch = driver.store_watch = StoreWatch(store.status, tell_gateway)
        events: asyncio.Queue[list[Work]] = asyncio.Queue(EVENT_BATCHES_BOUND)
        # A gateway already running replays its live links, then says GatewayHello.
        await to_gateway.send(m.pack(m.RouterHello(epoch)))
        log.info("router: ready as %s with %d known users (epoch %d)", state.me.server_id, len(state.users), epoch)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(_receive(inbox, driver, events))
                tasks.create_task(_tick(events))
                tasks.create_task(_start_without_gateway_hello(driver, events))
                tasks.create_task(_process(driver, events))
                tasks.create_task(persistence.write_in_order(store, writes, driver.counters.writes,
                                                             lambda: watch.outage_known, in_hand))
                tasks.create_task(watch.run())
        finally:
            await persistence.stop_cleanly(store, writes, state, in_hand, now_ms())
    finally:
        for direct in sockets:
            direct.close()
        context.term()

