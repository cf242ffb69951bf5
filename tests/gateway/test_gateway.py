"""The gateway process over real sockets: WebSocket peers on one side, the test
playing router and verifier over ZeroMQ on the other."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from socp.ipc.messages import (
    FIRST_DIALLED_CONN,
    ROLE_SERVER,
    ROLE_UNKNOWN,
    ROLE_USER,
    CloseLink,
    Deliver,
    DialLink,
    LinkClosed,
    LinkOpened,
    Rejected,
)

from .gateway_harness import WAIT, GatewayFactory, GatewayHarness, free_port, wait_for_hello

USER_HELLO = json.dumps({"type": "USER_HELLO", "from": "u", "to": "s", "ts": 1,
                         "payload": {"client": "test", "pubkey": "UK", "enc_pubkey": "UK"}, "sig": ""})
SERVER_HELLO_LINK = json.dumps({"type": "SERVER_HELLO_LINK", "from": "a", "to": "b", "ts": 1,
                                "payload": {"host": "127.0.0.1", "port": 1, "pubkey": "SERVER-KEY"},
                                "sig": ""})
DIALLED_CONN = 2**40 + 7


def ws_connect(url: str) -> connect:
    return connect(url, compression=None, open_timeout=WAIT, close_timeout=1.0, proxy=None)


async def said_hello(harness: GatewayHarness, client: ClientConnection) -> int:
    """Send USER_HELLO and return the conn id the gateway gave this client."""
    await client.send(USER_HELLO)
    job = await harness.next_job()
    assert (job.seq, job.role, job.text) == (0, ROLE_USER, USER_HELLO)
    return job.conn


async def closed_by_server(client: ClientConnection) -> ConnectionClosed:
    with pytest.raises(ConnectionClosed) as caught:
        async with asyncio.timeout(WAIT):
            while True:
                await client.recv()
    return caught.value


async def test_gateway_hello_names_a_fresh_boot(gateway: GatewayHarness) -> None:
    assert gateway.hello is not None and len(gateway.hello.boot_id) == 32


async def test_user_frames_become_verify_jobs_in_order(gateway: GatewayHarness) -> None:
    async with ws_connect(gateway.ws_url) as client:
        conn = await said_hello(gateway, client)
        assert 0 < conn < FIRST_DIALLED_CONN   # an accepted conn (never a dialled one's id)
        for i in range(50):
            await client.send(f"frame {i}")
        for i in range(50):
            job = await gateway.next_job()
            assert (job.conn, job.seq, job.text) == (conn, i + 1, f"frame {i}")
            assert (job.role, job.verify_key) == (ROLE_USER, "")


async def test_role_comes_from_the_first_frame_only(gateway: GatewayHarness) -> None:
    async with ws_connect(gateway.ws_url) as server_peer, ws_connect(gateway.ws_url) as stranger:
        await server_peer.send(SERVER_HELLO_LINK)
        first = await gateway.next_job()
        assert (first.seq, first.role, first.verify_key) == (0, ROLE_SERVER, "SERVER-KEY")
        await server_peer.send(USER_HELLO)  # later frames are not parsed: still the server
        later = await gateway.next_job()
        assert (later.conn, later.seq) == (first.conn, 1)
        assert (later.role, later.verify_key) == (ROLE_SERVER, "SERVER-KEY")

        await stranger.send("{not json")
        odd = await gateway.next_job()
        assert odd.conn != first.conn
        assert (odd.seq, odd.role, odd.verify_key) == (0, ROLE_UNKNOWN, "")


async def test_deliver_out_of_order_is_written_in_seq_order(gateway: GatewayHarness) -> None:
    async with ws_connect(gateway.ws_url) as client:
        conn = await said_hello(gateway, client)
        await gateway.to_gateway(Deliver([(conn, 2, "third")]), Deliver([(conn, 0, "first")]))
        await gateway.to_gateway(Deliver([(conn, 4, "fifth"), (conn, 1, "second"), (conn, 3, "fourth")]))
        received = [await asyncio.wait_for(client.recv(), WAIT) for _ in range(5)]
        assert received == ["first", "second", "third", "fourth", "fifth"]


async def test_close_link_closes_after_every_earlier_frame(gateway: GatewayHarness) -> None:
    async with ws_connect(gateway.ws_url) as client:
        conn = await said_hello(gateway, client)
        await gateway.to_gateway(CloseLink(conn, 2, 1000, "bye"), Deliver([(conn, 1, "b")]),
                                 Deliver([(conn, 0, "a")]))
        assert await asyncio.wait_for(client.recv(), WAIT) == "a"
        assert await asyncio.wait_for(client.recv(), WAIT) == "b"
        closed = await closed_by_server(client)
        assert closed.rcvd is not None and (closed.rcvd.code, closed.rcvd.reason) == (1000, "bye")
    assert await gateway.from_router_inbox() == LinkClosed(conn, 1, "bye")


async def healthz(harness: GatewayHarness) -> dict[str, Any]:
    url = f"http://127.0.0.1:{harness.config.port}/healthz"
    response = await asyncio.to_thread(urllib.request.urlopen, url, timeout=WAIT)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    return json.loads(response.read())


async def test_healthz_answers_json_and_counts(gateway: GatewayHarness) -> None:
    await gateway.to_gateway(Deliver([(999, 0, "to nobody")]))
    async with ws_connect(gateway.ws_url) as client:
        await said_hello(gateway, client)
        deadline = time.monotonic() + WAIT
        body = await healthz(gateway)
        while body["dropped"] == 0 and time.monotonic() < deadline:  # the Deliver is in flight
            await asyncio.sleep(0.05)
            body = await healthz(gateway)
    assert body["status"] == "ok"
    assert body["open_connections"] == 1
    assert body["frames_in"] == 1
    assert body["dropped"] == 1
    assert set(body["queues"]) >= {"outbox_frames", "reorder_waiting"}


async def test_silent_connection_is_closed_after_hello_timeout(start_gateway: GatewayFactory) -> None:
    harness = await start_gateway(hello_timeout=0.5)
    await wait_for_hello(harness)
    async with ws_connect(harness.ws_url) as client:
        started = time.monotonic()
        closed = await closed_by_server(client)
        assert closed.rcvd is not None and closed.rcvd.code == 1008
        assert 0.4 < time.monotonic() - started < 3.0
    message = await harness.from_router_inbox()
    assert isinstance(message, LinkClosed) and message.seq == 0 and 0 < message.conn < FIRST_DIALLED_CONN


async def test_oversized_frame_is_rejected_and_connection_stays_usable(
        start_gateway: GatewayFactory) -> None:
    harness = await start_gateway(max_frame_bytes=1000)
    await wait_for_hello(harness)
    async with ws_connect(harness.ws_url) as client:
        conn = await said_hello(harness, client)
        await client.send("x" * 1001)
        await client.send("é" * 501)   # 501 characters, 1002 bytes: the limit is in bytes
        await client.send("é" * 500)   # exactly 1000 bytes: fine
        detail = "frame is larger than 1000 bytes"
        assert await harness.from_router_inbox() == Rejected(conn, 1, "MALFORMED", detail, "")
        assert await harness.from_router_inbox() == Rejected(conn, 2, "MALFORMED", detail, "")
        job = await harness.next_job()
        assert (job.conn, job.seq, job.text) == (conn, 3, "é" * 500)
        await harness.to_gateway(Deliver([(conn, 0, "still here")]))
        assert await asyncio.wait_for(client.recv(), WAIT) == "still here"


async def test_binary_frame_is_rejected(gateway: GatewayHarness) -> None:
    async with ws_connect(gateway.ws_url) as client:
        conn = await said_hello(gateway, client)
        await client.send(b"\x00\x01binary")
        assert await gateway.from_router_inbox() == Rejected(
            conn, 1, "MALFORMED", "SOCP frames are WebSocket text messages", "")
        await client.send("text again")
        job = await gateway.next_job()
        assert (job.seq, job.text) == (2, "text again")


async def test_client_disconnect_yields_one_link_closed_with_next_seq(gateway: GatewayHarness) -> None:
    async with ws_connect(gateway.ws_url) as client:
        conn = await said_hello(gateway, client)
        await client.send("one")
        await client.send("two")
        for _ in range(2):
            await gateway.next_job()
    message = await gateway.from_router_inbox()
    assert isinstance(message, LinkClosed) and (message.conn, message.seq) == (conn, 3)
    await gateway.nothing_for_router(0.5)


async def test_slow_consumer_is_dropped_and_counted(start_gateway: GatewayFactory) -> None:
    harness = await start_gateway(send_queue_frames=8)
    await wait_for_hello(harness)
    # A client that never reads: its receive queue, the kernel buffers and the
    # gateway's write buffer fill, then the 8-frame outbox overflows. (The 1013 close
    # frame sits behind the unread data, so this client only sees the TCP drop.)
    async with connect(harness.ws_url, compression=None, max_queue=1, close_timeout=1.0,
                       proxy=None) as client:
        conn = await said_hello(harness, client)
        frame = "z" * 60_000
        for start in range(0, 400, 50):
            await harness.to_gateway(Deliver([(conn, seq, frame) for seq in range(start, start + 50)]))
        message = await harness.from_router_inbox()
        assert isinstance(message, LinkClosed) and (message.conn, message.seq) == (conn, 1)
        assert message.reason == "slow consumer: send queue full"
    health = await healthz(harness)
    assert (health["slow_consumers"], health["open_connections"]) == (1, 0)


async def test_dial_link_holds_early_frames_then_opens(gateway: GatewayHarness) -> None:
    received: list[str] = []
    peer_got_two = asyncio.Event()

    async def peer_server(ws: ServerConnection) -> None:
        async for text in ws:
            received.append(str(text))
            if len(received) == 2:
                peer_got_two.set()
                await ws.send("hello from the peer")

    port = free_port()
    async with serve(peer_server, "127.0.0.1", port, compression=None):
        await gateway.to_gateway(
            DialLink(DIALLED_CONN, "127.0.0.1", port, "PEER-KEY"),
            Deliver([(DIALLED_CONN, 1, "second")]),   # before the link is open: held, in order
            Deliver([(DIALLED_CONN, 0, "first")]),
        )
        assert await gateway.from_router_inbox() == LinkOpened(DIALLED_CONN, 0)
        await asyncio.wait_for(peer_got_two.wait(), WAIT)
        assert received == ["first", "second"]
        job = await gateway.next_job()
        assert (job.conn, job.seq, job.text, job.role, job.verify_key) == (
            DIALLED_CONN, 1, "hello from the peer", ROLE_SERVER, "PEER-KEY")
        await gateway.to_gateway(CloseLink(DIALLED_CONN, 2, 1000, "done"))
        assert await gateway.from_router_inbox() == LinkClosed(DIALLED_CONN, 2, "done")


async def test_dial_link_to_a_closed_port_reports_link_closed(gateway: GatewayHarness) -> None:
    await gateway.to_gateway(DialLink(DIALLED_CONN, "127.0.0.1", free_port(), "PEER-KEY"))
    message = await gateway.from_router_inbox()
    assert isinstance(message, LinkClosed) and (message.conn, message.seq) == (DIALLED_CONN, 0)
    assert message.reason.startswith("dial failed")
    # A target no socket could reach fails the same way, without hurting the gateway.
    await gateway.to_gateway(DialLink(DIALLED_CONN + 1, "127.0.0.1", 70_000, "PEER-KEY"),
                             DialLink(DIALLED_CONN + 2, "bad host name\u0000", 1, "PEER-KEY"))
    failures = {(await gateway.from_router_inbox()).conn for _ in range(2)}
    assert failures == {DIALLED_CONN + 1, DIALLED_CONN + 2}
    assert gateway.process.poll() is None


async def test_sigterm_closes_connections_with_1001_and_exits_0(gateway: GatewayHarness) -> None:
    async with ws_connect(gateway.ws_url) as client:
        await said_hello(gateway, client)
        started = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        closed = await closed_by_server(client)
        assert closed.rcvd is not None and closed.rcvd.code == 1001
    exit_code = await asyncio.to_thread(gateway.process.wait, WAIT)
    assert exit_code == 0
    assert time.monotonic() - started < 3.0


async def test_sigterm_with_a_peer_that_stopped_reading_still_exits_promptly(
        gateway: GatewayHarness) -> None:
    async with connect(gateway.ws_url, compression=None, max_queue=1, close_timeout=1.0,
                       proxy=None) as client:
        conn = await said_hello(gateway, client)
        for start in range(0, 300, 50):  # 18 MB: more than loopback buffers hold
            await gateway.to_gateway(Deliver([(conn, seq, "z" * 60_000) for seq in range(start, start + 50)]))
        await asyncio.sleep(0.3)  # let the gateway's write buffer back up
        started = time.monotonic()
        gateway.process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(gateway.process.wait, WAIT)
    assert exit_code == 0
    assert time.monotonic() - started < 3.0
    assert "Traceback" not in gateway.log_text()


async def test_port_in_use_exits_with_status_2(start_gateway: GatewayFactory) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        harness = await start_gateway(port=squatter.getsockname()[1])
        try:
            exit_code = await asyncio.to_thread(harness.process.wait, 15.0)
        except subprocess.TimeoutExpired:
            pytest.fail("the gateway kept running on a taken port")
    assert exit_code == 2
    assert "already in use" in harness.log_text()
    assert "Traceback" not in harness.log_text()


async def test_server_links_get_their_own_higher_frame_limit(start_gateway: GatewayFactory) -> None:
    # A server link carries all its users' traffic: the per-connection limit of a user
    # must not throttle it (nor make the router's per-server limit unreachable).
    harness = await start_gateway(frame_rate=1.0, frame_burst=10, server_frame_rate=1.0, server_frame_burst=40,
                                  spare_frame_rate=0)
    await wait_for_hello(harness)
    async with ws_connect(harness.ws_url) as user, ws_connect(harness.ws_url) as server_peer:
        await server_peer.send(SERVER_HELLO_LINK)
        for i in range(30):
            await server_peer.send(f"server frame {i}")
        server_jobs = [await harness.next_job() for _ in range(31)]
        assert [job.seq for job in server_jobs] == list(range(31))
        assert {job.role for job in server_jobs} == {ROLE_SERVER}

        conn = await said_hello(harness, user)
        for i in range(30):
            await user.send(f"user frame {i}")
        assert [(await harness.next_job()).seq for _ in range(9)] == list(range(1, 10))
        refused = await harness.from_router_inbox()
        assert isinstance(refused, Rejected) and (refused.conn, refused.seq, refused.code) == (
            conn, 10, "RATE_LIMITED")


async def test_a_lone_user_may_go_past_its_own_limit_on_the_spare(start_gateway: GatewayFactory) -> None:
    # Issue #18: a heavy sender on an idle node takes from the spare all user
    # connections share (ratelimit.ElasticBucket); once that is dry, its own limit holds.
    harness = await start_gateway(frame_rate=0.001, frame_burst=10, spare_frame_rate=0.001, spare_frame_burst=20)
    await wait_for_hello(harness)
    async with ws_connect(harness.ws_url) as user:
        conn = await said_hello(harness, user)   # the hello took one of its own ten
        for i in range(40):
            await user.send(f"user frame {i}")
        assert [(await harness.next_job()).seq for _ in range(29)] == list(range(1, 30))
        refused = await harness.from_router_inbox()
        assert isinstance(refused, Rejected) and (refused.conn, refused.seq, refused.code) == (
            conn, 30, "RATE_LIMITED")


async def test_server_links_report_frames_written(gateway: GatewayHarness) -> None:
    # Credit (socp/gateway/recovery.py): the router hands a server link no more frames
    # than the gateway holds, so it must learn how many each link has written.
    received: list[str] = []
    peer_got_all = asyncio.Event()

    async def peer_server(ws: ServerConnection) -> None:
        async for text in ws:
            received.append(str(text))
            if len(received) == 4:
                peer_got_all.set()

    port = free_port()
    async with serve(peer_server, "127.0.0.1", port, compression=None), \
            ws_connect(gateway.ws_url) as user:
        user_conn = await said_hello(gateway, user)
        await gateway.to_gateway(DialLink(DIALLED_CONN, "127.0.0.1", port, "PEER-KEY"))
        assert await gateway.from_router_inbox() == LinkOpened(DIALLED_CONN, 0)
        await gateway.to_gateway(Deliver([(DIALLED_CONN, seq, f"frame {seq}") for seq in range(3)]),
                                 Deliver([(user_conn, 0, "for the user")]))
        first = await gateway.written_report(DIALLED_CONN, 3)
        await gateway.to_gateway(Deliver([(DIALLED_CONN, 3, "frame 3"), (DIALLED_CONN, 4, "")]))
        later = await gateway.written_report(DIALLED_CONN, 5)   # the skipped frame counts too
        await asyncio.wait_for(peer_got_all.wait(), WAIT)
        assert received == [f"frame {seq}" for seq in range(4)]
        # Only server links, each report a cumulative count per link.
        assert all(conn == DIALLED_CONN for report in first + later for conn, _ in report.counts)
        assert await user.recv() == "for the user"


async def test_acknowledged_frames_over_the_limit_are_reported_by_msg_ref(start_gateway: GatewayFactory) -> None:
    # No silent drops (protocol/acks.py): past the first RATE_LIMITED, a user's DMs are
    # still reported, each with its msg_ref, so the router can name them; other frames
    # of the burst are dropped unseen, as before.
    from socp.protocol import frames
    from socp.protocol.acks import msg_ref

    harness = await start_gateway(frame_rate=1.0, frame_burst=10, spare_frame_rate=0)   # the connection's own limit
    await wait_for_hello(harness)
    async with ws_connect(harness.ws_url) as user:
        conn = await said_hello(harness, user)
        dms = [frames.msg_direct("u", "v", 1000 + n, "Y2lwaGVy", "a2V5", "c2ln") for n in range(8)]
        for n in range(9):
            await user.send(f"not json {n}")
        for dm in dms:
            await user.send(dm.to_wire())
        await user.send("not json either")
        assert [(await harness.next_job()).seq for _ in range(9)] == list(range(1, 10))   # the burst
        reports = [await harness.from_router_inbox() for _ in range(8)]
        assert all(isinstance(r, Rejected) and r.conn == conn and r.code == "RATE_LIMITED" for r in reports)
        assert [r.seq for r in reports] == list(range(10, 18))
        assert [r.msg_ref for r in reports] == [msg_ref(dm) for dm in dms]
        assert "retry_after_ms=" in reports[0].detail
