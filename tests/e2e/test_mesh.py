"""End to end: three real nodes form one network through an introducer (SOCP §6)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_decode, b64url_encode, canonical_json
from socp.protocol.ids import new_id
from socp.protocol.text import chunk_bytes
from support.http import aget_json
from support.nodes import start_node
from support.wsclient import RawUser, now_ms

pytestmark = pytest.mark.e2e

FAST_LINKS = ("--heartbeat-interval", "0.5", "--link-timeout", "2")


@pytest.fixture(scope="module")
def mesh(keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("mesh")
    introducer = start_node(base / "a", keys[0], verifiers=1, extra_args=FAST_LINKS)
    bootstrap = base / "bootstrap.yaml"
    bootstrap.write_text(introducer.bootstrap_yaml())
    others = [start_node(base / name, keys[5 + i], verifiers=1,
                         extra_args=(*FAST_LINKS, "--bootstrap", str(bootstrap)))
              for i, name in enumerate(("b", "c"))]
    nodes = [introducer, *others]
    yield nodes
    for node in reversed(nodes):
        node.stop()


async def wait_for(predicate, timeout: float = 15.0, step: float = 0.2):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


async def connect_all(mesh, keys) -> list[RawUser]:
    people = []
    for i, node in enumerate(mesh):
        user = await RawUser(node.url, keys[1 + i]).connect(display_name=f"u{i}")
        await user.list_users()
        people.append(user)
    everyone = sorted(u.user_id for u in people)

    async def all_listed() -> bool:
        for user in people:
            listed = (await user.list_users()).payload["users"]
            if not set(everyone) <= set(listed):
                return False
        return True

    await wait_for(all_listed)
    return people


async def test_every_pair_exchanges_direct_messages(mesh, keys) -> None:
    people = await connect_all(mesh, keys)
    for sender in people:
        for recipient in people:
            if sender is recipient:
                continue
            text = f"{sender.user_id[:8]} -> {recipient.user_id[:8]}".encode()
            await sender.send(sender.dm_to(recipient.user_id, recipient.pubkey, text))
            deliver = await recipient.receive(
                "USER_DELIVER", where=lambda f, s=sender: f.payload["sender"] == s.user_id
            )
            assert recipient.open_dm(deliver) == text
    for user in people:
        await user.close()


async def test_public_channel_reaches_everyone_exactly_once(mesh, keys) -> None:
    people = await connect_all(mesh, keys)
    sender = people[0]
    ciphertext = b64url_encode(crypto.oaep_encrypt(keys[1].public_key(), b"all hands"))
    ts = now_ms()
    await sender.send(
        frames.msg_public_channel(
            sender.user_id, ts, ciphertext, sender.pubkey, signing.sign_public(keys[1], ciphertext, sender.user_id, ts)
        )
    )
    for member in people[1:]:
        got = await member.receive("MSG_PUBLIC_CHANNEL", where=lambda f: f.from_ == sender.user_id)
        assert got.ts == ts
        assert await member.nothing_of("MSG_PUBLIC_CHANNEL", wait=0.7)  # no duplicate
    for user in people:
        await user.close()


async def test_a_file_crosses_servers_intact(mesh, keys) -> None:
    people = await connect_all(mesh, keys)
    alice, carol = people[0], people[2]
    data = bytes(range(256)) * 200
    file_id = new_id()
    await alice.send(
        frames.file_start(
            alice.user_id, carol.user_id, now_ms(), file_id, "x.bin", len(data), hashlib.sha256(data).hexdigest(), "dm"
        )
    )
    chunks = chunk_bytes(data)
    for index, chunk in enumerate(chunks):
        ciphertext = b64url_encode(crypto.oaep_encrypt(keys[3].public_key(), chunk))
        await alice.send(frames.file_chunk(alice.user_id, carol.user_id, now_ms(), file_id, index, ciphertext))
    await alice.send(frames.file_end(alice.user_id, carol.user_id, now_ms(), file_id))
    await carol.receive("FILE_START", timeout=30)
    received = bytearray()
    for index in range(len(chunks)):
        chunk = await carol.receive("FILE_CHUNK", timeout=30)
        assert chunk.payload["index"] == index
        received += crypto.oaep_decrypt(keys[3], b64url_decode(chunk.payload["ciphertext"]))
    await carol.receive("FILE_END", timeout=30)
    assert bytes(received) == data
    for user in people:
        await user.close()


async def test_disconnect_disappears_from_every_list(mesh, keys) -> None:
    people = await connect_all(mesh, keys)
    leaving = people[1]
    await leaving.close()

    async def gone_everywhere() -> bool:
        for user in (people[0], people[2]):
            if leaving.user_id in (await user.list_users()).payload["users"]:
                return False
        return True

    await wait_for(gone_everywhere, timeout=5)
    for user in (people[0], people[2]):
        await user.close()


async def test_http_directory_serves_a_remote_users_key_marked_remote(mesh, keys) -> None:
    people = await connect_all(mesh, keys)
    here, there = mesh[0], mesh[1]
    far = people[1]  # said hello to `there`; `here` knows its key from signed gossip
    reply = await aget_json(f"http://127.0.0.1:{here.port}/directory/{far.user_id}")
    assert reply.status == 200, reply.body
    assert reply.body["entry"] == {
        "user_id": far.user_id,
        "pubkey": far.pubkey,
        "server_id": there.server_id,
        "remote": True,
        "version": 1,
        "revoked": False,
    }
    assert reply.body["signed_by"] == here.server_id  # the directory asked answers for it
    assert crypto.verify_pss(
        crypto.decode_public_key(here.pubkey), b64url_decode(reply.body["sig"]), canonical_json(reply.body["entry"])
    )
    for user in people:
        await user.close()
