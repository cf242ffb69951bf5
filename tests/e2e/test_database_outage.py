"""End to end: the database goes away under a running node, and comes back.

The node runs on MySQL reached through a TCP proxy the test can cut (`socp up`
refuses to start without its database, so the outage must come after the start).
`/healthz` on the node's port shows the outage and the recovery; the store logs one
line for each; the node keeps serving what it holds in memory meanwhile.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from support.http import aget_json
from support.mysql import MYSQL_HOST, MYSQL_PORT, reachable_mysql_server
from support.nodes import start_node
from support.tcp_proxy import TcpProxy
from support.wsclient import RawUser

pytestmark = [pytest.mark.e2e, pytest.mark.mysql]

WAIT = 30.0


@pytest.fixture
def proxied_node(keys, tmp_path):
    server = reachable_mysql_server()
    name = server.create_database()
    proxy = TcpProxy(MYSQL_HOST, MYSQL_PORT).start()
    node = None
    try:
        node = start_node(tmp_path / "data", keys[0], verifiers=1,
                          extra_args=("--db", server.url(name, port=proxy.port)))
        yield node, proxy
    finally:
        if node is not None:
            node.stop()
        proxy.close()
        server.drop_database(name)


async def health_when(node, predicate, what: str) -> dict:
    deadline = time.monotonic() + WAIT
    while True:
        reply = await aget_json(f"http://127.0.0.1:{node.port}/healthz")
        assert reply.status == 200   # the gateway answers whatever the database does
        if predicate(reply.body):
            return reply.body
        if time.monotonic() > deadline:
            raise AssertionError(f"/healthz never showed {what}: {reply.body}\n{node.log(40)}")
        await asyncio.sleep(0.2)


async def test_healthz_shows_a_database_outage_and_the_recovery(proxied_node, keys) -> None:
    node, proxy = proxied_node
    before = await health_when(node, lambda h: h["database"]["state"] == "available", "the database available")
    assert before["ok"] is True and before["status"] == "ok"

    cut_at_ms = int(time.time() * 1000)
    proxy.cut()
    down = await health_when(node, lambda h: h["database"]["state"] == "unavailable", "the outage")
    assert down["ok"] is False and down["status"] == "degraded"
    assert "MySQL" in down["database"]["detail"]
    assert down["database"]["since_ms"] >= cut_at_ms - 1000
    assert down["database"]["since"].endswith("Z")
    assert down["router_ready"] is True

    # The node still serves from memory: a user says hello, and its key is in the
    # directory at once; the store holds the write for the database.
    carol = await RawUser(node.url, keys[3]).connect(display_name="carol")
    await carol.list_users()
    entry = await aget_json(f"http://127.0.0.1:{node.port}/directory/{carol.user_id}")
    assert entry.status == 200 and entry.body["pubkey"] == carol.pubkey
    await health_when(node, lambda h: h["database"]["writes_waiting"] >= 1, "a held write")

    proxy.restore()
    back = await health_when(node, lambda h: h["database"]["state"] == "available"
                             and h["database"]["writes_waiting"] == 0, "the recovery")
    assert back["ok"] is True and back["status"] == "ok" and back["database"]["detail"] == ""
    assert back["database"]["since_ms"] > down["database"]["since_ms"]
    await carol.close()

    log = node.log(10_000)
    assert log.count("database unavailable, retrying") == 1, log
    assert log.count("database available again after") == 1, log
