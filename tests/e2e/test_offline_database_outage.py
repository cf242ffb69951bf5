"""Issue #19: DMs held for an away user survive a restart of the database connection.
The node runs on MariaDB/MySQL through a TCP proxy the test cuts: DMs sent during the
outage are held by the router (its write queue retries, also across a store actor
killed during the outage), reach the database once it is back, and are delivered, in
order and verifiable, after the router itself was killed and reloaded its tables from
that database."""

from __future__ import annotations

import asyncio

import pymysql
import pytest

from socp.protocol import frames, login
from support.mysql import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, reachable_mysql_server
from support.nodes import start_node
from support.tcp_proxy import TcpProxy
from support.wsclient import RawUser, now_ms

from .test_database_outage import health_when
from .test_offline_delivery import FAST, kill_and_wait

pytestmark = [pytest.mark.e2e, pytest.mark.mysql]

SETTLE = 3.0


def held_rows(database: str) -> int:
    connection = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD,
                                 database=database, connect_timeout=3, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM held_messages")
            return cursor.fetchone()[0]
    finally:
        connection.close()


async def rows_become(database: str, count: int, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while held_rows(database) != count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"held_messages has {held_rows(database)} rows, not {count}")
        await asyncio.sleep(0.2)


async def test_dms_held_during_a_database_outage_reach_the_database_and_the_user(keys, tmp_path) -> None:
    server = reachable_mysql_server()
    database = server.create_database()
    proxy = TcpProxy(MYSQL_HOST, MYSQL_PORT).start()
    node = None
    alice = None
    try:
        node = start_node(tmp_path / "data", keys[0], verifiers=1,
                          extra_args=("--db", server.url(database, port=proxy.port)))
        bob = RawUser(node.url, keys[2])
        await bob.connect(display_name="bob")
        registration = login.register("pw", keys[2], FAST)
        await bob.send(frames.login_register(bob.user_id, node.server_id, now_ms(), registration.privkey_store,
                                             registration.pake_password))
        await bob.receive("ACK")
        await bob.close()
        alice = await RawUser(node.url, keys[1]).connect(display_name="alice")
        await alice.list_users()

        proxy.cut()
        await health_when(node, lambda h: h["database"]["state"] == "unavailable", "the outage")
        for i in range(3):
            await alice.send(alice.dm_to(bob.user_id, bob.pubkey, f"during the outage {i}".encode(),
                                         ts=now_ms() + i))
        assert await alice.nothing_of("ERROR", wait=1.0)
        assert held_rows(database) == 0          # nothing reached the database yet
        await kill_and_wait(node, "store")       # the store starts again while the database is away

        proxy.restore()
        await rows_become(database, 3)           # the router's queued writes went through

        await kill_and_wait(node, "router")      # its memory gone: only the database has them
        await asyncio.sleep(SETTLE)
        back = RawUser(node.url, keys[2], user_id=bob.user_id)
        await back.connect(display_name="bob")
        texts = [back.open_dm(await back.receive("USER_DELIVER")) for _ in range(3)]   # open_dm verifies
        assert texts == [f"during the outage {i}".encode() for i in range(3)]
        assert await back.nothing_of("USER_DELIVER", wait=1.0)
        await rows_become(database, 0)
        await back.close()
    finally:
        if alice is not None:
            await alice.close()
        if node is not None:
            node.stop()
        proxy.close()
        server.drop_database(database)
