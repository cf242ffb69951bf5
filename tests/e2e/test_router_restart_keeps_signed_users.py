"""A router killed right after a user's signed hello must not close that user once it
is back. The gateway still kept the hello (the router had not yet said it applied
it) and submits it again to the new router, which finds its signature already noted
as used; before the fix it closed the user with `REPLAY this signed hello was used
before` (5 of 5 trials). Router side: recovery.py, abuse_rules.user_hello_problem."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from support.nodes import start_node
from support.wsclient import RawUser

from .test_chaos import actor_pid, wait_restarted

pytestmark = pytest.mark.e2e

SETTLE = 3.0     # the new router: replay from the gateway, then the resubmitted frames


async def test_a_signed_user_survives_a_router_killed_right_after_its_hello(keys, tmp_path) -> None:
    node = start_node(tmp_path / "node", keys[0], verifiers=1)
    alice, bob = RawUser(node.url, keys[1]), RawUser(node.url, keys[2])
    try:
        await alice.connect()                  # a signed hello
        await alice.list_users()               # applied; the router reports it within 0.5 s
        router = actor_pid(node.data_dir, "router")
        os.kill(router, signal.SIGKILL)        # before it does
        await wait_restarted(node.data_dir, "router", router)
        await asyncio.sleep(SETTLE)
        listed = await alice.list_users()      # still connected, still listed
        assert alice.user_id in listed.payload["users"]
        await bob.connect()
        await bob.list_users()
        await alice.send(alice.dm_to(bob.user_id, bob.pubkey, b"still here"))
        assert bob.open_dm(await bob.receive("USER_DELIVER")) == b"still here"
    finally:
        await alice.close()
        await bob.close()
        node.stop()
