"""End to end: one node started like `socp up` (real supervisord, every actor a
process), raw WebSocket users on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_decode, b64url_encode
from socp.protocol.ids import new_id
from socp.protocol.text import chunk_bytes
from support.nodes import processes_mentioning, start_node
from support.wsclient import RawUser, now_ms

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node(keys, tmp_path_factory):
    running = start_node(tmp_path_factory.mktemp("node") / "data", keys[0], verifiers=2)
    yield running
    running.stop()


async def users(node, keys, *indexes: int) -> list[RawUser]:
    connected = []
    for index in indexes:
        user = await RawUser(node.url, keys[index]).connect(display_name=f"user{index}")
        await user.list_users()  # the answer proves the hello was accepted
        connected.append(user)
    return connected


async def test_two_users_exchange_direct_messages(node, keys) -> None:
    alice, bob = await users(node, keys, 1, 2)
    await alice.send(alice.dm_to(bob.user_id, bob.pubkey, "héllo bob".encode()))
    deliver = await bob.receive("USER_DELIVER")
    assert bob.open_dm(deliver) == "héllo bob".encode()
    assert deliver.payload["sender"] == alice.user_id and deliver.from_ == node.server_id
    signing.verify_transport(crypto.decode_public_key(node.pubkey), deliver)  # signed by the node
    await bob.send(bob.dm_to(alice.user_id, alice.pubkey, b"hi alice"))
    assert alice.open_dm(await alice.receive("USER_DELIVER")) == b"hi alice"
    await alice.close()
    await bob.close()


async def test_list_is_sorted_and_names_everyone(node, keys) -> None:
    alice, bob = await users(node, keys, 1, 2)
    listing = await alice.list_users()
    assert alice.user_id in listing.payload["users"] and bob.user_id in listing.payload["users"]
    assert listing.payload["users"] == sorted(listing.payload["users"]) == listing.payload["online_users"]
    names = {d["user_id"]: d["display_name"] for d in listing.payload["details"]}
    assert names[bob.user_id] == "user2"
    await alice.close()
    await bob.close()


async def test_duplicate_user_id_is_refused(node, keys) -> None:
    (alice,) = await users(node, keys, 1)
    twin = await RawUser(node.url, keys[1], user_id=alice.user_id).connect()
    error = await twin.receive("ERROR")
    assert error.payload["code"] == "NAME_IN_USE"
    # The first connection keeps working.
    assert alice.user_id in (await alice.list_users()).payload["users"]
    await alice.close()


async def test_unknown_recipient_gets_user_not_found(node, keys) -> None:
    (alice,) = await users(node, keys, 1)
    await alice.send(alice.dm_to(new_id(), alice.pubkey, b"anyone?"))
    assert (await alice.receive("ERROR")).payload["code"] == "USER_NOT_FOUND"
    await alice.close()


async def test_public_message_reaches_the_other_members(node, keys) -> None:
    alice, bob, carol = await users(node, keys, 1, 2, 3)
    ciphertext = b64url_encode(crypto.oaep_encrypt(keys[1].public_key(), b"to everyone"))
    ts = now_ms()
    message = frames.msg_public_channel(alice.user_id, ts, ciphertext, alice.pubkey,
                                        signing.sign_public(keys[1], ciphertext, alice.user_id, ts))
    await alice.send(message)
    for member in (bob, carol):
        got = await member.receive("MSG_PUBLIC_CHANNEL", where=lambda f: f.from_ == alice.user_id)
        assert got.payload == message.payload and got.to == "public" and got.ts == ts
        assert signing.verify_public(keys[1].public_key(), got.payload["content_sig"], ciphertext, alice.user_id, ts)
    assert await alice.nothing_of("MSG_PUBLIC_CHANNEL", wait=0.5)
    for user in (alice, bob, carol):
        await user.close()


async def test_a_100_kb_file_arrives_intact(node, keys) -> None:
    alice, bob = await users(node, keys, 1, 2)
    data = hashlib.sha256(b"seed").digest() * (100 * 1024 // 32)
    file_id = new_id()
    await alice.send(frames.file_start(alice.user_id, bob.user_id, now_ms(), file_id, "data.bin", len(data),
                                       hashlib.sha256(data).hexdigest(), "dm"))
    for index, chunk in enumerate(chunk_bytes(data)):
        ciphertext = b64url_encode(crypto.oaep_encrypt(keys[2].public_key(), chunk))
        await alice.send(frames.file_chunk(alice.user_id, bob.user_id, now_ms(), file_id, index, ciphertext))
    await alice.send(frames.file_end(alice.user_id, bob.user_id, now_ms(), file_id))
    start = await bob.receive("FILE_START", timeout=30)
    assert start.payload["size"] == len(data)
    received = bytearray()
    expected_index = 0
    while True:
        frame = await bob.receive(None, timeout=30)
        if frame.type == "FILE_END":
            break
        if frame.type != "FILE_CHUNK":
            continue
        assert frame.payload["index"] == expected_index  # in order
        expected_index += 1
        received += crypto.oaep_decrypt(keys[2], b64url_decode(frame.payload["ciphertext"]))
    assert hashlib.sha256(received).hexdigest() == start.payload["sha256"]
    await alice.close()
    await bob.close()


async def test_bad_input_gets_the_right_error_and_the_connection_survives(node, keys) -> None:
    (alice,) = await users(node, keys, 1)
    await alice.send_text("{not json")
    assert (await alice.receive("ERROR")).payload["code"] == "MALFORMED"
    await alice.send_text(json.dumps({"type": "TELEPORT", "from": alice.user_id, "to": "*", "ts": now_ms(),
                                      "payload": {}, "sig": ""}))
    assert (await alice.receive("ERROR")).payload["code"] == "UNKNOWN_TYPE"
    await alice.send_text(json.dumps({"type": "MSG_DIRECT", "from": alice.user_id, "to": alice.user_id,
                                      "ts": "yesterday", "payload": {}, "sig": ""}))
    assert (await alice.receive("ERROR")).payload["code"] == "MALFORMED"
    assert alice.user_id in (await alice.list_users()).payload["users"]
    await alice.close()


async def test_weak_key_hello_is_refused_with_bad_key(node) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    intruder = RawUser(node.url, weak)
    await intruder.connect(hello=False)
    hello = frames.user_hello(intruder.user_id, None, now_ms(), crypto.encode_public_key(weak))
    await intruder.send(hello)
    assert (await intruder.receive("ERROR")).payload["code"] == "BAD_KEY"


def test_healthz_answers(node) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/healthz", timeout=5) as reply:
        assert reply.status == 200
        assert json.loads(reply.read())["status"] == "ok"


def test_stopping_the_node_leaves_no_process_behind(keys, tmp_path) -> None:
    data_dir = tmp_path / "short-lived"
    running = start_node(data_dir, keys[0], verifiers=1)
    assert processes_mentioning(str(data_dir))  # the actors are running
    assert running.stop() == 0
    assert running.leftovers_killed == 0
    assert not list(running.data_dir.glob("run/*.sock"))
