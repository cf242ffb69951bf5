"""A graceful stop loses no acknowledged message.

`socp up` stops on Ctrl-C (SIGINT): supervisord sends SIGTERM to every actor, the
gateway first. A DM stream runs while the sender's node stops; every DM the sender
saw acknowledged must have reached the recipient: on the same node, before the
recipient's socket closed; on another node, which stays up, at all.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from support.nodes import start_node
from support.reliable import ReliableUser
from support.wsclient import RawUser

pytestmark = pytest.mark.e2e

SEND_INTERVAL = 0.05     # the sender's pace: 20 DMs a second
STREAM_BEFORE_STOP = 2.0
LAST_DELIVERIES = 2.0    # a recipient on the other node gets this long after the stop
PRESENCE_TIMEOUT = 15.0


async def stream(user: ReliableUser, stop: asyncio.Event) -> None:
    """Send DMs at a steady pace until told to stop or the socket closes."""
    counter = 0
    while not stop.is_set() and user.connected.is_set():
        counter += 1
        await user.transmit(user.send_dm(counter))
        await asyncio.sleep(SEND_INTERVAL)


async def sees(user: ReliableUser, other: ReliableUser) -> None:
    deadline = time.monotonic() + PRESENCE_TIMEOUT
    while other.raw.user_id not in (await user.raw.list_users()).payload["users"]:
        assert time.monotonic() < deadline, "presence did not converge"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("recipient_on", ["the same node", "another node"])
async def test_a_graceful_stop_delivers_every_acknowledged_message(keys, tmp_path, recipient_on) -> None:
    sender_node = start_node(tmp_path / "a", keys[0], verifiers=2)
    nodes = [sender_node]
    recipient_node = sender_node
    if recipient_on == "another node":
        bootstrap = tmp_path / "bootstrap.yaml"
        bootstrap.write_text(sender_node.bootstrap_yaml())
        recipient_node = start_node(tmp_path / "b", keys[5], verifiers=2, extra_args=("--bootstrap", str(bootstrap)))
        nodes.append(recipient_node)
    alice = ReliableUser(RawUser(sender_node.url, keys[1]))
    bob = ReliableUser(RawUser(recipient_node.url, keys[2]))
    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []
    try:
        await alice.start()
        await bob.start()
        alice.peer_id, alice.peer_pub = bob.raw.user_id, bob.raw.pubkey
        await sees(alice, bob)
        await sees(bob, alice)
        tasks = [asyncio.create_task(alice.read_forever()), asyncio.create_task(bob.read_forever()),
                 asyncio.create_task(stream(alice, stop))]
        await asyncio.sleep(STREAM_BEFORE_STOP)

        exit_code = await asyncio.to_thread(sender_node.stop)   # SIGINT, as Ctrl-C; waits for the exit
        assert exit_code == 0 and sender_node.leftovers_killed == 0, sender_node.log(40)
        assert not alice.connected.is_set(), "the sender's socket outlived its node"
        if recipient_node is not sender_node:
            await asyncio.sleep(LAST_DELIVERIES)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node in reversed(nodes):
            node.stop()

    acknowledged = [e for e in alice.sent.values() if e.acked_at is not None]
    lost = [e.ref for e in acknowledged if bob.delivered[e.ciphertext] == 0]
    print(f"\n{recipient_on}: sent {len(alice.sent)}, acknowledged {len(acknowledged)}, "
          f"delivered {len(bob.delivered)} distinct, lost {len(lost)}")
    assert len(acknowledged) >= STREAM_BEFORE_STOP / SEND_INTERVAL / 2, "too few acknowledged DMs to tell"
    assert not lost, f"{len(lost)} acknowledged DMs never delivered"
