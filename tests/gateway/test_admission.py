"""Node-wide connection caps and the small first frame (issue #15 item 6): the pure rule,
the link table's count, and a real gateway process refusing over its caps."""

from __future__ import annotations

import asyncio
from pathlib import Path

from websockets.asyncio.client import connect

from socp.config import NodeConfig
from socp.gateway.admission import must_evict_a_silent_link, node_refusal
from socp.gateway.memory import HeapTrimmer
from socp.gateway.socket_links import LinkTable
from socp.ipc.messages import CLOSE_TRY_AGAIN_LATER, ROLE_SERVER, ROLE_UNKNOWN, ROLE_USER

from .gateway_harness import WAIT, GatewayFactory, wait_for_hello
from .test_gateway import USER_HELLO, closed_by_server, said_hello

CLOSE_MESSAGE_TOO_BIG = 1009


def _config(**overrides: object) -> NodeConfig:
    return NodeConfig(data_dir=Path("/nonexistent"), **overrides)  # type: ignore[arg-type]  # each test passes the fields it changes


def test_node_refuses_newcomers_only_when_it_holds_its_limit() -> None:
    config = _config(max_connections=10, max_waiting_for_hello=3)
    assert node_refusal(config, open_links=9) is None
    assert "limit of 10 connections" in (node_refusal(config, 10) or "")
    assert not must_evict_a_silent_link(config, 2)
    assert must_evict_a_silent_link(config, 3)


def test_link_table_counts_links_until_their_first_frame_oldest_first() -> None:
    table = LinkTable(queue_frames=8)
    first, second, third = (table.add_accepted(f"{n}:1", str(n)) for n in range(3))
    table.add_dialled(2**40, "peer", "KEY")                 # dialled links never wait for a hello
    assert table.waiting_for_hello == 3
    table.first_frame_came(first, ROLE_USER, "")
    table.first_frame_came(first, ROLE_USER, "")            # twice is harmless
    assert table.waiting_for_hello == 2
    assert table.take_oldest_waiting() is second            # waited longest of those still silent
    assert table.waiting_for_hello == 1
    table.remove(third)                                     # a silent link that timed out
    assert table.waiting_for_hello == 0 and table.take_oldest_waiting() is None
    assert len(table) == 3                                  # taking a link out of the count keeps it open


def test_link_table_knows_its_server_links_apart_from_users() -> None:
    table = LinkTable(queue_frames=8)
    user, server, silent = (table.add_accepted(f"{n}:1", str(n)) for n in range(3))
    dialled = table.add_dialled(2**40, "peer", "DIALLED-KEY")
    table.first_frame_came(user, ROLE_USER, "")
    table.first_frame_came(server, ROLE_SERVER, "SERVER-KEY")
    assert (server.role, server.verify_key) == (ROLE_SERVER, "SERVER-KEY")
    assert {link.conn for link in table.server_links()} == {server.conn, dialled.conn}
    table.remove(server)
    table.remove(dialled)
    assert table.server_links() == [] and len(table) == 2 and silent.role == ROLE_UNKNOWN


def _connect_from(url: str, source: str) -> connect:
    # Each its own loopback address, so the per-address cap is not what refuses them.
    return connect(url, compression=None, open_timeout=WAIT, close_timeout=1.0, proxy=None,
                   local_addr=(source, 0))


async def test_a_crowd_of_silent_connections_cannot_lock_out_a_newcomer(
        start_gateway: GatewayFactory) -> None:
    harness = await start_gateway(max_waiting_for_hello=3)
    await wait_for_hello(harness)
    silent = [await _connect_from(harness.ws_url, f"127.0.5.{n}").__aenter__() for n in range(1, 4)]
    try:
        # At the cap: the newcomer is taken, and the one that waited longest is closed.
        async with _connect_from(harness.ws_url, "127.0.5.4") as newcomer:
            closed = await closed_by_server(silent[0])
            assert closed.rcvd is not None and closed.rcvd.code == CLOSE_TRY_AGAIN_LATER
            assert "waited longest" in closed.rcvd.reason
            await said_hello(harness, newcomer)
        await said_hello(harness, silent[1])                # the younger silent ones were left alone
    finally:
        for client in silent:
            await client.close()


async def test_open_connections_are_capped_node_wide(start_gateway: GatewayFactory) -> None:
    harness = await start_gateway(max_connections=2)
    await wait_for_hello(harness)
    async with _connect_from(harness.ws_url, "127.0.6.1") as one, \
            _connect_from(harness.ws_url, "127.0.6.2") as two:
        await said_hello(harness, one)
        await said_hello(harness, two)
        async with _connect_from(harness.ws_url, "127.0.6.3") as third:
            closed = await closed_by_server(third)
            assert closed.rcvd is not None and closed.rcvd.code == CLOSE_TRY_AGAIN_LATER
            assert "limit of 2 connections" in closed.rcvd.reason


async def test_only_the_first_frame_is_held_small(start_gateway: GatewayFactory) -> None:
    harness = await start_gateway(opening_frame_bytes=len(USER_HELLO) + 10)
    await wait_for_hello(harness)
    async with _connect_from(harness.ws_url, "127.0.7.1") as big_opener:
        await big_opener.send("x" * 4000)
        closed = await closed_by_server(big_opener)
        assert closed.sent is not None and closed.sent.code == CLOSE_MESSAGE_TOO_BIG
    async with _connect_from(harness.ws_url, "127.0.7.2") as client:
        conn = await said_hello(harness, client)
        await client.send("y" * 4000)                       # after the hello: full-size frames
        job = await asyncio.wait_for(harness.next_job(), WAIT)
        assert (job.conn, job.seq, job.text) == (conn, 1, "y" * 4000)


def test_heap_is_trimmed_once_a_crowd_has_halved() -> None:
    calls: list[int] = []
    trimmer = HeapTrimmer(lambda pad: calls.append(pad) or 1, min_peak=100)
    assert [trimmer.observe(n, n) for n in (10, 400, 300, 201)] == [False] * 4
    assert trimmer.observe(200, 200) is True and calls == [0]   # half of the peak of 400
    assert trimmer.observe(150, 150) is False                     # the peak starts again from 200
    # A crowd that came and went between two looks still counts.
    assert trimmer.observe(0, 1000) is True and len(calls) == 2
    assert HeapTrimmer(None, min_peak=1).observe(0, 5) is False   # no malloc_trim here: nothing to do


def test_link_table_remembers_the_most_links_open_at_once() -> None:
    table = LinkTable(queue_frames=8)
    crowd = [table.add_accepted(f"{n}:1", str(n)) for n in range(5)]
    for link in crowd[1:]:
        table.remove(link)
    assert table.take_high_water() == 5
    assert table.take_high_water() == 1     # starts again from what is open now
