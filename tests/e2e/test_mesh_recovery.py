"""End to end: a node of the mesh is killed outright (SIGKILL, every process) and
restarted from its data directory; links and presence recover by themselves."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from support.nodes import processes_mentioning, start_node
from support.wsclient import RawUser

pytestmark = pytest.mark.e2e

FAST_LINKS = ("--heartbeat-interval", "0.5", "--link-timeout", "2")


async def listed(user: RawUser, user_id: str) -> bool:
    return user_id in (await user.list_users()).payload["users"]


async def eventually(check, timeout: float, step: float = 0.25) -> float:
    """Seconds until `check()` held; fail after `timeout`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        if loop.time() - start > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)
    return loop.time() - start


def kill_everything_of(data_dir) -> int:
    pids = [int(line.split(":")[0]) for line in processes_mentioning(str(data_dir))]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


async def test_a_killed_node_rejoins_and_presence_recovers(keys, tmp_path) -> None:
    a = start_node(tmp_path / "a", keys[0], verifiers=1, extra_args=FAST_LINKS)
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(a.bootstrap_yaml())
    join = (*FAST_LINKS, "--bootstrap", str(bootstrap))
    b = start_node(tmp_path / "b", keys[5], verifiers=1, extra_args=join)
    c = start_node(tmp_path / "c", keys[6], verifiers=1, extra_args=join)
    nodes = [a, b, c]
    try:
        alice = await RawUser(a.url, keys[1]).connect()
        bob = await RawUser(b.url, keys[2]).connect()
        carol = await RawUser(c.url, keys[3]).connect()
        await eventually(lambda: listed(alice, bob.user_id), timeout=15)
        await eventually(lambda: listed(carol, bob.user_id), timeout=15)

        assert kill_everything_of(b.data_dir) >= 4
        b.process.wait(10)
        gone_after = await eventually(lambda: _not(listed(alice, bob.user_id)), timeout=10)
        await eventually(lambda: _not(listed(carol, bob.user_id)), timeout=10)

        b_again = start_node(b.data_dir, keys[5], verifiers=1, port=b.port, extra_args=join)
        nodes[1] = b_again
        bob_again = await RawUser(b_again.url, keys[2], user_id=bob.user_id).connect()
        back_after = await eventually(lambda: listed(alice, bob.user_id), timeout=20)
        await eventually(lambda: listed(carol, bob.user_id), timeout=20)
        for sender in (alice, carol):
            await sender.send(sender.dm_to(bob.user_id, bob.pubkey, b"welcome back"))
            deliver = await bob_again.receive(
                "USER_DELIVER", where=lambda f, s=sender: f.payload["sender"] == s.user_id
            )
            assert bob_again.open_dm(deliver) == b"welcome back"
        print(f"presence dropped {gone_after:.1f}s after the kill; back {back_after:.1f}s after the restart")
    finally:
        for node in nodes:
            node.stop()


async def _not(awaitable) -> bool:
    return not await awaitable
