"""The router driver hands ACKs to the verifier pool last (router/process.py dispatch and
release, user_acks.py): after the DM they answer, and while senders' frames wait, only
when a signature frees a place. No sockets: the pool's socket is a list here."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from socp.config import NodeConfig
from socp.ipc import messages as m
from socp.protocol.acks import msg_ref
from socp.router import core, process
from socp.router.abuse_rules import Guard, LimitSettings
from socp.router.core_io import FrameIn, FrameRejected, Tick
from socp.router.process import RouterDriver

from .harness import NOW, Harness, digest
from .test_refusals import cheap_dm


class Pool:
    """Stands in for the sign-jobs socket: keeps what the router sent, in order."""

    def __init__(self) -> None:
        self.jobs: list[m.SignJob] = []

    async def send(self, data: bytes) -> None:
        job = m.unpack(data)
        assert isinstance(job, m.SignJob)
        self.jobs.append(job)

    def types(self) -> list[str]:
        return [job.frame_type for job in self.jobs]


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def driver(node: Harness, pool: Pool) -> RouterDriver:
    config = NodeConfig(data_dir=Path("unused"), verifiers=1)
    return RouterDriver(node.state, config=config, sign_jobs=pool, to_gateway=None,  # type: ignore[arg-type]  # only send() is used
                        store_writes=asyncio.Queue(1))


async def feed(router: RouterDriver, conn: int, frame) -> None:
    """What RouterDriver.apply does for a frame, on the harness's frozen clock."""
    event = FrameIn(conn, frame, digest(frame))
    await router.dispatch(core.handle(router.state, event), router.origin_of(event))
    await router.release()


def test_on_an_idle_node_the_dm_is_signed_before_the_ack_to_its_sender(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    pool = Pool()
    router = driver(node, pool)
    asyncio.run(feed(router, a_conn, cheap_dm(alice, bob, NOW)))
    assert pool.types() == ["USER_DELIVER", "ACK"]


def test_acks_held_while_senders_wait_go_when_signatures_free_the_window(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    pool = Pool()
    router = driver(node, pool)
    assert node.state.fair_share.window == 2

    async def scenario() -> None:
        await feed(router, a_conn, cheap_dm(alice, bob, NOW))
        assert pool.types() == ["USER_DELIVER", "ACK"]          # the window is full now
        node.state.now_ms += node.state.timing.ack_interval_ms
        later = [cheap_dm(alice, bob, NOW + n, n=n) for n in range(1, 5)]
        for frame in later:
            await feed(router, a_conn, frame)
        assert pool.types() == ["USER_DELIVER", "ACK"]          # the DMs wait, and their ACK
        assert list(node.state.acks_waiting) == [a_conn]
        for _ in range(4):                                     # each signature frees a place...
            await router.signed(m.Signed(count=1, sign_us=2000))
        assert pool.types() == ["USER_DELIVER", "ACK"] + ["USER_DELIVER"] * 4   # ...for a waiting DM first
        await router.signed(m.Signed(count=1, sign_us=2000))
        assert pool.types()[-1] == "ACK" and pool.jobs[-1].payload["msg_ref"] == msg_ref(later[-1])
        assert not node.state.acks_waiting

    asyncio.run(scenario())


async def rejected(router: RouterDriver, conn: int, ref: str) -> None:
    """A frame of `conn` the gateway refused (its check throttle), as RouterDriver.apply does it."""
    await router.dispatch(core.handle(router.state, FrameRejected(conn, "RATE_LIMITED", "throttled", "MSG_DIRECT",
                                                                  ref)))
    await router.release()


def test_refusal_answers_falling_due_together_do_not_go_before_an_honest_dm(node, keys) -> None:
    """Issue #15 item 4: the held refusals of 30 flooding connections fell due on one
    Tick and went to the pool as one burst, which an honest DM then waited behind.
    Charged to their senders' shares, they leave a window at a time, and the DM
    arriving next takes the first free place."""
    node.state.guard = Guard(LimitSettings(repeat_answer_ms=1000))
    node.state.guard.now_ms = NOW
    flooders = [node.connect_user(keys[3])[0] for _ in range(30)]
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    pool = Pool()
    router = driver(node, pool)
    window = node.state.fair_share.window

    async def scenario() -> None:
        for conn in flooders:                       # each told at once of its first refusal...
            await rejected(router, conn, f"first-{conn}")
        for _ in range(len(pool.jobs)):
            await router.signed(m.Signed(count=1, sign_us=2000))
        node.state.now_ms = NOW                     # (signed() reads the wall clock)
        for conn in flooders:                       # ...and the next, held for the interval
            await rejected(router, conn, f"second-{conn}")
        assert node.state.refusals.held_refs == len(flooders)
        signed_before = len(pool.jobs)
        node.state.now_ms += 1000
        await router.dispatch(core.handle(router.state, Tick()))
        await router.release()
        await feed(router, a_conn, cheap_dm(alice, bob, node.state.now_ms))
        await router.signed(m.Signed(count=1, sign_us=2000))
        after_tick = pool.types()[signed_before:]
        assert "USER_DELIVER" in after_tick[: window + 1], after_tick
        for _ in range(2 * len(flooders)):          # then every answer, as the pool signs
            await router.signed(m.Signed(count=1, sign_us=2000))
        assert not node.state.fair_share.queued
        named = [ref for job in pool.jobs if job.frame_type == "ERROR" for ref in job.payload.get("msg_refs") or
                 [job.payload["msg_ref"]]]
        assert sorted(named) == sorted([f"first-{c}" for c in flooders] + [f"second-{c}" for c in flooders])

    asyncio.run(scenario())


def test_an_ack_never_overtakes_the_answer_naming_a_refused_frame(node, keys) -> None:
    """An answer charged to its sender waits in the fair share; an ACK covering that
    frame must not reach the pool (and take an earlier place on the connection) first."""
    node.state.timing = dataclasses.replace(node.state.timing, ack_max_delay_ms=0)   # ACKs never wait for room
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    pool = Pool()
    router = driver(node, pool)

    async def scenario() -> None:
        node.state.fair_share.out = node.state.fair_share.window     # the pool is busy
        await rejected(router, a_conn, "refused-ref")
        dm = cheap_dm(alice, bob, NOW + 1)
        await feed(router, a_conn, dm)
        for _ in range(4):
            await router.signed(m.Signed(count=1, sign_us=2000))
        to_alice = [job for job in pool.jobs if any(conn == a_conn for conn, _, _ in job.deliveries)]
        assert [job.frame_type for job in to_alice] == ["ERROR", "ACK"]
        assert to_alice[0].payload["msg_ref"] == "refused-ref" and to_alice[1].payload["msg_ref"] == msg_ref(dm)

    asyncio.run(scenario())


def test_during_a_signed_burst_an_honest_dm_is_the_next_job_the_pool_gets(node, keys, monkeypatch) -> None:
    """The mesh poc's signed-burst phase (poc/cheap_flood.py, issue #15 item 4): senders
    each send a burst of correctly signed DMs, past their share, while an honest user
    DMs now and then. The burst's jobs and the answers to its refused frames are
    charged to the senders' queues, so each honest DM goes to the pool before any more
    of them. Every refusal is answered here (no answer budget): sent directly, those
    answers went before the honest DM. Clock and pool are simulated."""
    clock = [NOW]
    monkeypatch.setattr(process, "now_ms", lambda: clock[0])    # signed() reads the wall clock
    senders = [node.connect_user(keys[3 + n]) for n in range(4)]
    _, sink, _ = node.connect_user(keys[7])
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    node.state.fair_share.verifiers = 2
    node.state.fair_share.sign_ms = 6.0
    pool = Pool()
    router = driver(node, pool)

    async def scenario() -> None:
        for conn, sender, _ in senders:
            for n in range(100):
                await feed(router, conn, cheap_dm(sender, sink, NOW + n, n=n))
        assert node.state.fair_share.refused > 0          # past their share: refused OVERLOADED
        first_in_pool = []
        for step in range(1, 400):
            clock[0] = node.state.now_ms = NOW + step
            if step % 40 == 20:
                first_in_pool.append(len(pool.jobs))
                await feed(router, a_conn, cheap_dm(alice, bob, clock[0], n=100_000 + step))
            await router.signed(m.Signed(count=1, sign_us=6000))
        to_bob = [index for index, job in enumerate(pool.jobs) if any(c == b_conn for c, _, _ in job.deliveries)]
        assert to_bob == first_in_pool, (to_bob, first_in_pool)
        assert "ERROR" in pool.types()[first_in_pool[0]:]   # answers to the burst were still going out

    asyncio.run(scenario())
