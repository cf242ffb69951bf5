"""A captured DM re-sent after a real node restart is not delivered again (issue #15
item 5; router/replay_log.py). The node is stopped cleanly (SIGINT, as `socp up`'s
Ctrl-C) or killed (SIGKILL to every process), then started on the same data
directory; sender and recipient reconnect with freshly signed hellos, and the
sender re-sends the captured frame byte for byte."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from socp.protocol.acks import msg_ref, refs_named
from support.nodes import start_node
from support.wsclient import RawUser, now_ms

pytestmark = pytest.mark.e2e

KEY_FLUSH_WAIT = 1.5      # the router writes the keys it saw once per tick (0.5 s)


async def refusal_of(user: RawUser, ref: str) -> str:
    error = await user.receive("ERROR", where=lambda f: ref in refs_named(f.payload))
    return error.payload["code"]


@pytest.mark.parametrize("stop", ["clean", "crash"])
async def test_a_captured_dm_is_refused_after_the_node_restarts(keys, tmp_path, stop) -> None:
    node = start_node(tmp_path / "node", keys[0], verifiers=1)
    alice, bob = RawUser(node.url, keys[1]), RawUser(node.url, keys[2])
    try:
        await alice.connect()
        await bob.connect()
        await alice.list_users()
        await bob.list_users()
        captured = alice.dm_to(bob.user_id, bob.pubkey, b"pay carol 10")
        await alice.send(captured)
        await bob.receive("USER_DELIVER")
        await asyncio.sleep(KEY_FLUSH_WAIT)
        stamped_before = alice.dm_to(bob.user_id, bob.pubkey, b"never sent before the stop", ts=now_ms())
        await alice.close()
        await bob.close()
        if stop == "crash":
            os.killpg(node.process.pid, signal.SIGKILL)
        node.stop()
        node = start_node(tmp_path / "node", keys[0], verifiers=1, port=node.port)

        await alice.connect()     # a new, freshly signed hello each
        await bob.connect()
        await alice.list_users()
        await bob.list_users()
        await alice.send(captured)
        assert await refusal_of(alice, msg_ref(captured)) == "REPLAY"
        assert await bob.nothing_of("USER_DELIVER", 1.0)

        # A frame stamped before the stop that the node never saw: after a clean stop
        # it is new; after a crash the node cannot know, and asks for a re-stamp.
        await alice.send(stamped_before)
        if stop == "clean":
            await bob.receive("USER_DELIVER")
        else:
            assert await refusal_of(alice, msg_ref(stamped_before)) == "RESEND"
            assert await bob.nothing_of("USER_DELIVER", 1.0)
            restamped = alice.dm_to(bob.user_id, bob.pubkey, b"never sent before the stop")
            await alice.send(restamped)
            assert bob.open_dm(await bob.receive("USER_DELIVER")) == b"never sent before the stop"
    finally:
        await alice.close()
        await bob.close()
        node.stop()
