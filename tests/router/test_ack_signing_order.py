"""The router driver hands ACKs to the verifier pool last (router/process.py dispatch and
release, user_acks.py): after the DM they answer, and while senders' frames wait, only
when a signature frees a place. No sockets: the pool's socket is a list here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from socp.config import NodeConfig
from socp.ipc import messages as m
from socp.protocol.acks import msg_ref
from socp.router import core
from socp.router.core_io import FrameIn
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
