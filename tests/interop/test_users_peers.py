"""Other teams' own clients on our node, replayed from what they really sent (issue #14).

`recorded/<peer>-client.jsonl` holds the frames two instances of each peer's client
(G45, G56, G17, G101, at the commits peers.md names) exchanged with our node through a
recording proxy, one JSON line per frame: {"dir": "client->node" | "node->client",
"conn": <connection number>, "frame": {...}}. Trimmed to two chunks per file and one
heartbeat per connection; `privkey_store` (G17's password-encrypted private key) is
replaced by a placeholder. G17's file holds two runs: connections 1-3 (register,
a wrong then a right password, chat) and 11-12 (the public channel, once the node
issued G17's group key).

Each test replays the peer's frames against a real node (ts refreshed: the node
refuses stale frames; the node's content_sig check is off for them, since it covers ts) and
asserts on the fields that peer's client code reads, named in each test:

- G45 (`src/client.py` `_recv`): USER_LIST `payload.users`; USER_DB_USER
  `payload.found`, `.user_id`, `.pubkey` (base64url DER, loaded with
  `load_der_public_key`); USER_DELIVER `payload.sender`, `.sender_pub`, `.ciphertext`,
  `.content_sig` and the envelope `ts`; MSG_PUBLIC_CHANNEL `payload.text`, `.from`,
  `.channel`, `.ts`, `.sender_pub`, `.content_sig`; FILE_START `payload.file_id`,
  `.name`, `.size`, `.mode`, `.sender`.
- G56 (`client/socp_cli.py` `default_handler`): USER_ADVERTISE `payload.user_id`,
  `payload.meta.pubkey` (base64url of PEM: `load_public_key_from_b64url`);
  USER_REMOVE `payload.user_id`; USER_DELIVER `payload.sender`, `.sender_pub` (PEM
  form), `.ciphertext`, `.content_sig`, envelope `ts`; MSG_PUBLIC_CHANNEL
  `payload.ciphertext`, `.sender_pub`, `.content_sig`, envelope `from` and `ts`.
- G17 (`integration/client.py` `receiver`): ACK `payload.msg_ref` == "REGISTER_OK";
  PUBLIC_CHANNEL_KEY_SHARE `payload.version`, `.shares[].member`, `.shares[].wrapped`,
  `.creator_pub`, `.content_sig` (checked over SHA-256(shares) ‖ DER(creator_pub));
  MSG_PUBLIC_CHANNEL `payload.ciphertext`, `.content_sig`, `.sender_pub`,
  `.public_version`, envelope `from` and `ts`;
  LOGIN_SUCCESS / LOGIN_FAIL by type, LOGIN_SUCCESS `payload.pubkey`,
  `.privkey_store`; LIST_RESPONSE `payload.online_users`; PUBKEY_RESPONSE
  `payload.user_id`, `.pubkey`; PUBLIC_MEMBERS_SNAPSHOT `payload.members`,
  `.version`; USER_DELIVER `payload.sender`, `.sender_pub`, `.ciphertext`,
  `.content_sig`; FILE_START `payload.file_id`, `.name`, `.size`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from socp.protocol import crypto
from socp.protocol.encoding import b64url_decode, canonical_json
from socp.protocol.key_forms import KeyForm, form_of
from support.nodes import start_node

pytestmark = pytest.mark.e2e

RECORDED = Path(__file__).parent / "recorded"
G17_PASSWORD = "pw-g17-a"   # what the recorded G17 user typed (a throwaway account)


def recorded(peer: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (RECORDED / f"{peer}-client.jsonl").read_text().splitlines()]


def sent_by_client(peer: str, frame_type: str, sender: str | None = None, to: str | None = None,
                   conns: range = range(1, 10)) -> list[dict]:
    """The peer client's frames of one type, in the order it sent them."""
    return [row["frame"] for row in recorded(peer)
            if row["dir"] == "client->node" and row["frame"]["type"] == frame_type and row["conn"] in conns
            and (sender is None or row["frame"]["from"] == sender) and (to is None or row["frame"]["to"] == to)]


def fresh(frame: dict[str, Any]) -> str:
    return json.dumps({**frame, "ts": int(time.time() * 1000)})


class PeerClient:
    """One WebSocket speaking exactly the recorded frames; keeps what the node sends."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.inbox: list[dict[str, Any]] = []
        self.socket: Any = None

    async def connect(self) -> PeerClient:
        self.socket = await websockets.connect(self.url, max_size=2**24, open_timeout=10)
        return self

    async def send(self, frame: dict[str, Any]) -> dict[str, Any]:
        text = fresh(frame)
        await self.socket.send(text)
        return json.loads(text)

    async def send_as_recorded(self, frame: dict[str, Any]) -> None:
        """Unchanged: a frame signed over its whole envelope (G101) keeps its ts."""
        await self.socket.send(json.dumps(frame))

    async def receive(self, frame_type: str, where: Any = None, timeout: float = 10.0) -> dict[str, Any]:
        for index, frame in enumerate(self.inbox):
            if frame["type"] == frame_type and (where is None or where(frame)):
                return self.inbox.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await self.socket.recv())
                if frame["type"] == frame_type and (where is None or where(frame)):
                    return frame
                self.inbox.append(frame)

    async def close(self) -> None:
        await self.socket.close()


@pytest.fixture(scope="module")
def node(keys, tmp_path_factory):
    # The recorded frames are sent with a fresh ts (the node refuses stale ones), which
    # their content_sig covers: the node's check of it is off here, and each recorded
    # content_sig is checked as recorded in tests/protocol/test_content_frame.py.
    running = start_node(tmp_path_factory.mktemp("peer-clients") / "data", keys[0], verifiers=1,
                         env={"SOCP_CHECK_CONTENT_SIG": "0"})
    yield running
    running.stop()


async def said_hello(node, hello: dict[str, Any]) -> PeerClient:
    client = await PeerClient(node.url).connect()
    await client.send(hello)
    return client


# --- G45 -------------------------------------------------------------------------------


async def test_g45_clients_list_look_up_keys_dm_post_and_send_files(node) -> None:
    (alice_hello,) = sent_by_client("g45", "USER_HELLO", "alice45")
    (bob_hello,) = sent_by_client("g45", "USER_HELLO", "bob45")
    alice, bob = await said_hello(node, alice_hello), await said_hello(node, bob_hello)
    await alice.receive("USER_ADVERTISE", lambda f: f["payload"]["user_id"] == "bob45")
    # /list: USER_LIST_REQ is answered USER_LIST, whose `users` G45 prints.
    await alice.send(sent_by_client("g45", "USER_LIST_REQ")[0])
    listing = await alice.receive("USER_LIST")
    assert {"alice45", "bob45"} <= set(listing["payload"]["users"])
    assert listing["payload"]["users"] == sorted(listing["payload"]["users"])
    # /dbget bob45: USER_DB_USER {found, user_id, pubkey}, the key in G45's own DER form.
    await alice.send(sent_by_client("g45", "USER_DB_GET", "alice45")[0])
    entry = await alice.receive("USER_DB_USER")
    assert entry["payload"]["found"] is True and entry["payload"]["user_id"] == "bob45"
    assert entry["payload"]["pubkey"] == bob_hello["payload"]["pubkey"]
    serialization.load_der_public_key(b64url_decode(entry["payload"]["pubkey"]))
    # /tell bob45: USER_DELIVER with sender, sender_pub, ciphertext, content_sig and the ts it was sent with.
    dm = await alice.send(sent_by_client("g45", "MSG_DIRECT", "alice45", "bob45")[0])
    deliver = await bob.receive("USER_DELIVER")
    assert deliver["payload"]["sender"] == "alice45" and deliver["ts"] == dm["ts"]
    for name in ("ciphertext", "sender_pub", "content_sig"):
        assert deliver["payload"][name] == dm["payload"][name]
    # /all: plaintext `text`, relayed intact; G45's signature over its own fields still verifies.
    post = await alice.send(sent_by_client("g45", "MSG_PUBLIC_CHANNEL", "alice45")[0])
    public = await bob.receive("MSG_PUBLIC_CHANNEL")
    assert public["payload"] == post["payload"] and public["from"] == "alice45"
    signed = {name: public["payload"][name] for name in ("channel", "text", "from", "ts")}
    key = serialization.load_der_public_key(b64url_decode(public["payload"]["sender_pub"]))
    key.verify(b64url_decode(public["payload"]["content_sig"]),
               json.dumps(signed, sort_keys=True, separators=(",", ":")).encode(),
               padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO), hashes.SHA256())
    # /file bob45: FILE_START {file_id, name, size, mode, sender}, then its chunks and end.
    start = sent_by_client("g45", "FILE_START", "alice45", "bob45")[0]
    await alice.send(start)
    got = await bob.receive("FILE_START")
    assert {name: got["payload"][name] for name in ("file_id", "name", "size", "mode", "sender")} == {
        name: start["payload"][name] for name in ("file_id", "name", "size", "mode", "sender")}
    for chunk in sent_by_client("g45", "FILE_CHUNK", "alice45", "bob45"):
        await alice.send(chunk)
        got_chunk = await bob.receive("FILE_CHUNK")
        assert got_chunk["payload"]["ciphertext"] == chunk["payload"]["ciphertext"]
    await alice.close()
    await bob.close()


# --- G56 -------------------------------------------------------------------------------


async def test_g56_clients_learn_users_and_pem_keys_only_from_pushed_presence(node) -> None:
    hellos = sent_by_client("g56", "USER_HELLO")
    first_hello, second_hello = hellos[0], hellos[1]
    first_id, second_id = first_hello["from"], second_hello["from"]
    first = await said_hello(node, first_hello)
    second = await said_hello(node, second_hello)
    # The newcomer's catch-up, and the change pushed to the one already there: each
    # names the user and carries its key as base64url(PEM), the only form G56 loads.
    for client, other, other_hello in ((first, second_id, second_hello), (second, first_id, first_hello)):
        advert = await client.receive("USER_ADVERTISE", lambda f, other=other: f["payload"]["user_id"] == other)
        pubkey = advert["payload"]["meta"]["pubkey"]
        assert form_of(pubkey) is KeyForm.PEM_B64URL
        assert serialization.load_pem_public_key(b64url_decode(pubkey)).public_numbers() == \
            serialization.load_pem_public_key(b64url_decode(other_hello["payload"]["pubkey"])).public_numbers()
    # /tell: USER_DELIVER with `sender`, and sender_pub in PEM form, ts preserved.
    dm = await first.send(sent_by_client("g56", "MSG_DIRECT", first_id, second_id)[0])
    deliver = await second.receive("USER_DELIVER")
    assert deliver["payload"]["sender"] == first_id and deliver["ts"] == dm["ts"]
    assert deliver["payload"]["ciphertext"] == dm["payload"]["ciphertext"]
    assert deliver["payload"]["content_sig"] == dm["payload"]["content_sig"]
    assert form_of(deliver["payload"]["sender_pub"]) is KeyForm.PEM_B64URL
    # /all: base64 plaintext as `ciphertext`, accepted and relayed unchanged.
    post = await first.send(sent_by_client("g56", "MSG_PUBLIC_CHANNEL", first_id)[0])
    public = await second.receive("MSG_PUBLIC_CHANNEL")
    assert public["from"] == first_id and public["ts"] == post["ts"] and public["payload"] == post["payload"]
    # /file: FILE_START {file_id, name, size, sha256, mode} reaches the recipient.
    start = sent_by_client("g56", "FILE_START", first_id, second_id)[0]
    await first.send(start)
    assert (await second.receive("FILE_START"))["payload"] == start["payload"]
    # Leaving: the other gets USER_REMOVE, which G56 drops from its presence list.
    await first.close()
    gone = await second.receive("USER_REMOVE", lambda f: f["payload"]["user_id"] == first_id)
    assert gone["payload"]["user_id"] == first_id
    await second.close()


# --- G17 -------------------------------------------------------------------------------


async def test_g17_clients_register_log_in_with_a_password_then_chat(node) -> None:
    registers = sent_by_client("g17", "LOCAL_REGISTER")
    alice_id, bob_id = registers[0]["from"], registers[1]["from"]
    logins = {frame["from"]: frame for frame in sent_by_client("g17", "LOGIN_REQUEST")}
    wrong = next(
        f for f in sent_by_client("g17", "LOGIN_REQUEST", alice_id) if f["payload"]["password"] != G17_PASSWORD
    )
    right = next(
        f for f in sent_by_client("g17", "LOGIN_REQUEST", alice_id) if f["payload"]["password"] == G17_PASSWORD
    )
    clients = {}
    for register in registers:
        client = await PeerClient(node.url).connect()
        await client.send(register)
        ack = await client.receive("ACK")
        assert ack["payload"]["msg_ref"] == "REGISTER_OK"
        clients[register["from"]] = client
    alice, bob = clients[alice_id], clients[bob_id]
    # A wrong password: LOGIN_FAIL (G17's client waits for LOGIN_SUCCESS or LOGIN_FAIL), the link stays.
    await alice.send(wrong)
    assert (await alice.receive("LOGIN_FAIL"))["payload"]["code"] == "FORBIDDEN"
    await alice.send(right)
    success = await alice.receive("LOGIN_SUCCESS")
    assert success["payload"]["pubkey"] == registers[0]["payload"]["pubkey"]
    assert success["payload"]["privkey_store"] == registers[0]["payload"]["privkey_store"]
    await bob.send(logins[bob_id])
    await bob.receive("LOGIN_SUCCESS")
    # Its hello on the same connection, then /list, a key look-up, a DM, the channel snapshot, a file.
    await alice.send(sent_by_client("g17", "USER_HELLO", alice_id)[0])
    await bob.send(sent_by_client("g17", "USER_HELLO", bob_id)[0])
    await alice.receive("USER_ADVERTISE", lambda f: f["payload"]["user_id"] == bob_id)
    await alice.send(sent_by_client("g17", "LIST_REQUEST", alice_id)[0])
    assert {alice_id, bob_id} <= set((await alice.receive("LIST_RESPONSE"))["payload"]["online_users"])
    await alice.send(
        next(f for f in sent_by_client("g17", "PUBKEY_REQUEST", alice_id) if f["payload"]["user_id"] == bob_id)
    )
    answer = await alice.receive("PUBKEY_RESPONSE")
    assert answer["payload"] == {"user_id": bob_id, "pubkey": registers[1]["payload"]["pubkey"]}
    dm = await alice.send(sent_by_client("g17", "MSG_DIRECT", alice_id, bob_id)[0])
    deliver = await bob.receive("USER_DELIVER")
    assert deliver["payload"]["sender"] == alice_id and deliver["ts"] == dm["ts"]
    assert deliver["payload"]["ciphertext"] == dm["payload"]["ciphertext"]
    assert deliver["payload"]["content_sig"] == dm["payload"]["content_sig"]
    assert deliver["payload"]["sender_pub"] == dm["payload"]["sender_pub"]
    await alice.send(sent_by_client("g17", "PUBLIC_MEMBERS_SNAPSHOT", alice_id)[0])
    snapshot = await alice.receive("PUBLIC_MEMBERS_SNAPSHOT")
    assert {alice_id, bob_id} <= set(snapshot["payload"]["members"]) and snapshot["payload"]["version"] >= 1
    start = sent_by_client("g17", "FILE_START", alice_id, bob_id)[0]
    assert "sha256" not in start["payload"]  # G17 sends none; accepted all the same
    await alice.send(start)
    got = await bob.receive("FILE_START")
    assert {name: got["payload"][name] for name in ("file_id", "name", "size")} == {
        name: start["payload"][name] for name in ("file_id", "name", "size")
    }
    await alice.close()
    await bob.close()


async def test_g17_unknown_login_shape_gets_an_error_naming_what_we_support(node) -> None:
    client = await PeerClient(node.url).connect()
    (register,) = sent_by_client("g17", "LOCAL_REGISTER")[:1]
    await client.send({**register, "type": "LOGIN_REQUEST", "payload": {}})
    error = await client.receive("ERROR")
    assert "LOGIN_REQUEST {password}" in error["payload"]["detail"]


async def test_g17_public_posts_reach_each_member_alone_with_the_issued_group_key(node) -> None:
    run = range(11, 20)
    registers = sent_by_client("g17", "LOCAL_REGISTER", conns=run)
    alice_id, bob_id = registers[0]["from"], registers[1]["from"]
    passwords = {alice_id: "pw-g17-a", bob_id: "pw-g17-b"}
    clients = {}
    for register in registers:
        user_id = register["from"]
        client = await PeerClient(node.url).connect()
        await client.send(register)
        await client.receive("ACK")
        (login,) = sent_by_client("g17", "LOGIN_REQUEST", user_id, conns=run)
        assert login["payload"]["password"] == passwords[user_id]
        await client.send(login)
        await client.receive("LOGIN_SUCCESS")
        await client.send(sent_by_client("g17", "USER_HELLO", user_id, conns=run)[0])
        share = await client.receive("PUBLIC_CHANNEL_KEY_SHARE")
        shares = share["payload"]["shares"]
        assert [s["member"] for s in shares] == [user_id] and shares[0]["wrapped"]
        signed = hashlib.sha256(
            json.dumps(shares, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        ).digest() + b64url_decode(share["payload"]["creator_pub"])
        assert crypto.verify_pss(
            crypto.decode_public_key(share["payload"]["creator_pub"]),
            b64url_decode(share["payload"]["content_sig"]),
            signed,
        )
        clients[user_id] = client
    alice, bob = clients[alice_id], clients[bob_id]
    bystander = await said_hello(node, sent_by_client("g45", "USER_HELLO", "alice45")[0])
    await alice.send(sent_by_client("g17", "PUBLIC_MEMBERS_SNAPSHOT", alice_id, conns=run)[0])
    assert set((await alice.receive("PUBLIC_MEMBERS_SNAPSHOT"))["payload"]["members"]) == {alice_id, bob_id}
    # One copy per member, `to` = that member: each goes to its member alone, unchanged.
    for copy in sent_by_client("g17", "MSG_PUBLIC_CHANNEL", alice_id, conns=run):
        sent = await alice.send(copy)
        target = clients[copy["to"]]
        got = await target.receive("MSG_PUBLIC_CHANNEL", lambda f, sent=sent: f["ts"] == sent["ts"])
        assert got["from"] == alice_id and got["to"] == copy["to"] and got["payload"] == copy["payload"]
    with pytest.raises(TimeoutError):
        await bystander.receive("MSG_PUBLIC_CHANNEL", timeout=1.0)
    for client in (alice, bob, bystander):
        await client.close()


# --- G101 ------------------------------------------------------------------------------


async def test_g101_clients_hello_list_dm_and_post_to_the_public_channel(node) -> None:
    """G101 (`socp/client.py` `listen`): WHO `payload.users`; USER_DELIVER with
    `payload.from`, `.to`, `.ts`, `.ciphertext`, `.content_sig`, `.sender_pub` (a DM),
    or without `from`/`to` and envelope `from` = the poster (a public post);
    PUBLIC_CHANNEL_KEY_SHARE `payload.shares[].member`, `.wrapped_public_channel_key`,
    `.creator_pub`, `.content_sig`."""
    run = range(9, 11)
    (alice_hello,) = sent_by_client("g101", "USER_HELLO", "alice101", conns=run)
    (bob_hello,) = sent_by_client("g101", "USER_HELLO", "bob101", conns=run)
    assert "id" in alice_hello and alice_hello["sig"]  # signed over the envelope as sent, `id` included
    alice, bob = await PeerClient(node.url).connect(), await PeerClient(node.url).connect()
    await alice.send_as_recorded(alice_hello)
    await bob.send_as_recorded(bob_hello)
    for client, user_id in ((alice, "alice101"), (bob, "bob101")):
        share = await client.receive("PUBLIC_CHANNEL_KEY_SHARE")
        (mine,) = share["payload"]["shares"]
        assert mine["member"] == user_id and mine["wrapped_public_channel_key"]
        signed = canonical_json({"shares": share["payload"]["shares"], "creator_pub": share["payload"]["creator_pub"]})
        assert crypto.verify_pss(
            crypto.decode_public_key(share["payload"]["creator_pub"]),
            b64url_decode(share["payload"]["content_sig"]),
            signed,
        )
    (who,) = sent_by_client("g101", "WHO", "alice101", conns=run)
    assert "to" not in who and "ts" not in who  # and answered all the same
    await alice.send_as_recorded(who)
    assert {"alice101", "bob101"} <= set((await alice.receive("WHO"))["payload"]["users"])
    dm = await alice.send(sent_by_client("g101", "MSG_DIRECT", "alice101", "bob101", conns=run)[0])
    deliver = await bob.receive("USER_DELIVER", lambda f: "to" in f["payload"])
    assert (deliver["payload"]["from"], deliver["payload"]["to"]) == ("alice101", "bob101")
    assert deliver["payload"]["ts"] == dm["payload"]["ts"]  # the ts its content_sig covers
    for name in ("ciphertext", "content_sig", "sender_pub"):
        assert deliver["payload"][name] == dm["payload"][name]
    post = await alice.send(sent_by_client("g101", "MSG_PUBLIC_CHANNEL", "alice101", conns=run)[0])
    public = await bob.receive("USER_DELIVER", lambda f: "to" not in f["payload"])
    assert public["from"] == "alice101" and public["ts"] == post["ts"]
    assert public["payload"] == {k: post["payload"][k] for k in ("ciphertext", "sender_pub", "content_sig")}
    await alice.close()
    await bob.close()
