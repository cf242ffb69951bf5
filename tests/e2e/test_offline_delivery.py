"""Issue #19 item 4: DMs to a user who is away but has a password account are held in
the store and delivered at their next hello, oldest first, each once, each verifiable
end to end; the router and the store are killed in between."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3

import pytest

from socp.protocol import frames, login
from support.nodes import free_port, start_node
from support.wsclient import RawUser, now_ms

from .test_chaos import actor_pid, wait_restarted
from .test_metrics import scrape_until, value

pytestmark = pytest.mark.e2e

FAST = login.ScryptParams(n=2**10, r=8, p=1)
SETTLE = 3.0     # a restarted router: its tables from the store, the links replayed


def held_rows(node) -> int:
    with sqlite3.connect(node.data_dir / "socp.db") as database:
        return database.execute("SELECT COUNT(*) FROM held_messages").fetchone()[0]


async def rows_become(node, count: int, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while held_rows(node) != count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"held_messages has {held_rows(node)} rows, not {count}")
        await asyncio.sleep(0.1)


async def kill_and_wait(node, actor: str) -> None:
    pid = actor_pid(node.data_dir, actor)
    os.kill(pid, signal.SIGKILL)
    await wait_restarted(node.data_dir, actor, pid)


async def test_held_dms_survive_router_and_store_kills_and_arrive_once_in_order(keys, tmp_path) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    node = start_node(tmp_path / "node", keys[0], verifiers=1, extra_args=("--metrics", metrics))
    metrics_url = f"http://{metrics}/metrics"
    bob = RawUser(node.url, keys[2])
    alice = RawUser(node.url, keys[1])
    try:
        await bob.connect(display_name="bob")
        registration = login.register("pw", keys[2], FAST)
        await bob.send(frames.login_register(bob.user_id, node.server_id, now_ms(), registration.privkey_store,
                                             registration.pake_password))
        await bob.receive("ACK")
        await bob.close()

        await alice.connect(display_name="alice")
        await alice.list_users()
        for i in range(3):
            await alice.send(alice.dm_to(bob.user_id, bob.pubkey, f"away {i}".encode(), ts=now_ms() + i))
        assert await alice.nothing_of("ERROR", wait=1.0)
        await rows_become(node, 3)

        await kill_and_wait(node, "router")
        await kill_and_wait(node, "store")
        await asyncio.sleep(SETTLE)
        # The new router knows bob has an account: a fourth DM is held too.
        await alice.send(alice.dm_to(bob.user_id, bob.pubkey, b"away 3"))
        assert await alice.nothing_of("ERROR", wait=1.0)
        await rows_become(node, 4)
        await scrape_until(metrics_url, lambda s: value(s, "socp_held_messages") == 4)

        back = RawUser(node.url, keys[2], user_id=bob.user_id)
        await back.connect(display_name="bob")
        texts = [back.open_dm(await back.receive("USER_DELIVER")) for _ in range(4)]   # open_dm verifies
        assert texts == [f"away {i}".encode() for i in range(4)]
        assert await back.nothing_of("USER_DELIVER", wait=1.5)                         # each once
        await rows_become(node, 0)
        await scrape_until(metrics_url, lambda s: value(s, "socp_held_messages") == 0)
        await back.close()
    finally:
        await alice.close()
        node.stop()


async def test_an_unsigned_hello_user_without_an_account_is_still_not_found(keys, tmp_path) -> None:
    node = start_node(tmp_path / "node", keys[0], verifiers=1)
    carol, alice = RawUser(node.url, keys[3]), RawUser(node.url, keys[1])
    try:
        await carol.connect()
        await carol.list_users()
        await carol.close()
        await alice.connect()
        await alice.list_users()
        await alice.send(alice.dm_to(carol.user_id, carol.pubkey, b"nobody home"))
        error = await alice.receive("ERROR")
        assert error.payload["code"] == "USER_NOT_FOUND"
        assert held_rows(node) == 0
    finally:
        await alice.close()
        node.stop()
