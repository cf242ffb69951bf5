"""End to end against another team's dialect, and server-side attacks on the mesh.

A test double of a peer server (tests/support/peer_double.py) joins a real node
using the *other* forms of the interop table; DMs must flow both ways. The same
double then misbehaves, and the node must drop what it sends without harming
the victim's traffic.
"""

from __future__ import annotations

import json

import pytest

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_encode
from support.nodes import start_node
from support.peer_double import PeerDouble, VirtualUser, now_ms
from support.wsclient import RawUser

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node(keys, tmp_path_factory):
    running = start_node(tmp_path_factory.mktemp("interop") / "data", keys[0], verifiers=2)
    yield running
    running.stop()


async def joined_double(node, keys) -> tuple[PeerDouble, VirtualUser]:
    double = PeerDouble(key=keys[6])
    await double.join("127.0.0.1", node.port)
    user = VirtualUser(key=keys[7])
    await double.advertise(user)
    return double, user


async def wait_listed(user: RawUser, user_id: str) -> None:
    for _ in range(50):
        if user_id in (await user.list_users()).payload["users"]:
            return
    raise AssertionError(f"{user_id} never listed")


async def test_dms_flow_both_ways_with_a_peer_of_the_other_dialect(node, keys) -> None:
    double, peer_user = await joined_double(node, keys)
    ours = await RawUser(node.url, keys[1]).connect(display_name="ours")
    await wait_listed(ours, peer_user.user_id)
    listing = await ours.list_users()
    peer_detail = next(d for d in listing.payload["details"] if d["user_id"] == peer_user.user_id)
    assert peer_detail["server_id"] == double.server_id
    # Our user -> peer user: arrives as SERVER_DELIVER at the double, readable and verifiable.
    await ours.send(ours.dm_to(peer_user.user_id, peer_detail["pubkey"], b"hello other team"))
    deliver = await double.receive("SERVER_DELIVER")
    assert deliver.payload["user_id"] == peer_user.user_id and deliver.payload["sender"] == ours.user_id
    assert double.open_deliver(peer_user, deliver) == b"hello other team"
    assert signing.verify_dm(crypto.decode_public_key(deliver.payload["sender_pub"]), deliver.payload["content_sig"],
                             deliver.payload["ciphertext"], ours.user_id, peer_user.user_id, deliver.ts)
    signing.verify_transport(crypto.decode_public_key(node.pubkey), deliver)
    # Peer user -> our user: `from` in the payload, PEM keys, content_sig over base64 text.
    await double.send(double.dm_frame(peer_user, ours.user_id, ours.pubkey, b"hello from afar"))
    received = await ours.receive("USER_DELIVER")
    assert received.payload["sender"] == peer_user.user_id
    assert received.payload["sender_pub"] == crypto.encode_public_key(peer_user.key)  # re-emitted as DER
    assert ours.open_dm(received) == b"hello from afar"
    await ours.close()
    await double.close()


async def test_bad_signature_and_replay_from_a_server_have_no_effect(node, keys) -> None:
    double, peer_user = await joined_double(node, keys)
    victim = await RawUser(node.url, keys[2]).connect()
    await wait_listed(victim, peer_user.user_id)
    good = double.dm_frame(peer_user, victim.user_id, victim.pubkey, b"once")
    signed = double.sign_whole(good)
    # 1. A frame whose signature does not verify with the pinned key is dropped.
    forged = dict(signed, payload=dict(signed["payload"], ciphertext=b64url_encode(b"x" * 512)))
    await double.send_raw(json.dumps(forged))
    assert (await double.receive("ERROR")).payload["code"] == "INVALID_SIG"
    # 2. The genuine frame twice: delivered once.
    await double.send_raw(json.dumps(signed))
    await double.send_raw(json.dumps(signed))
    first = await victim.receive("USER_DELIVER")
    assert victim.open_dm(first) == b"once"
    assert await victim.nothing_of("USER_DELIVER", wait=1.0)
    await victim.close()
    await double.close()


async def test_a_frame_sent_back_to_its_own_server_does_not_loop(node, keys) -> None:
    double, peer_user = await joined_double(node, keys)
    sender = await RawUser(node.url, keys[3]).connect()
    await wait_listed(sender, peer_user.user_id)
    # The double hands the node a delivery for a user the node says lives at the double.
    loop = double.dm_frame(VirtualUser(key=keys[3], user_id=sender.user_id), peer_user.user_id,
                           crypto.encode_public_key(peer_user.key), b"boomerang")
    await double.send(loop)
    error = await double.receive("ERROR")
    assert error.payload["code"] == "USER_NOT_FOUND"
    assert not [f for f in double.inbox if f.type == "SERVER_DELIVER"]
    await sender.close()
    await double.close()


async def test_presence_forged_over_a_user_connection_changes_nothing(node, keys) -> None:
    victim = await RawUser(node.url, keys[4]).connect()
    friend = await RawUser(node.url, keys[5]).connect()
    attacker = await RawUser(node.url, keys[1]).connect()
    await attacker.list_users()
    forged = frames.user_advertise(attacker.user_id, now_ms(), victim.user_id, {"pubkey": attacker.pubkey})
    await attacker.send(forged)
    assert (await attacker.receive("ERROR")).payload["code"] == "FORBIDDEN"
    await friend.send(friend.dm_to(victim.user_id, victim.pubkey, b"still yours"))
    assert victim.open_dm(await victim.receive("USER_DELIVER")) == b"still yours"
    assert await attacker.nothing_of("USER_DELIVER", wait=0.5)
    for user in (victim, friend, attacker):
        await user.close()
