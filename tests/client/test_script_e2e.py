"""`socp chat --script` as real subprocesses against a small websockets node on
127.0.0.1 (the FakeNode of client_fakes, signing every frame with a test key)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from socp.client.home import ClientHome
from socp.protocol import crypto
from socp.protocol.ids import new_id

from .chat_process import PASSWORD, Chat
from .client_fakes import FakeNode, serve_fake_node


async def test_dm_and_public_between_two_script_clients(keys, tmp_path):
    node = FakeNode(server_key=keys[2])
    server = await serve_fake_node(node)
    port = server.sockets[0].getsockname()[1]
    url, server_key = f"ws://127.0.0.1:{port}", crypto.encode_public_key(keys[2])
    alice_id, bob_id = new_id(), new_id()
    ClientHome(tmp_path / "alice").create("alice", PASSWORD, user_key=keys[0], channel_key=keys[3], user_id=alice_id)
    ClientHome(tmp_path / "bob").create("bob", PASSWORD, user_key=keys[1], user_id=bob_id)
    chats: list[Chat] = []
    try:
        bob = await Chat.start(tmp_path / "bob", url, server_key=server_key)
        chats.append(bob)
        ready = await bob.until("ready")
        assert ready["user_id"] == bob_id and ready["display_name"] == "bob"

        # The same identity twice: the node refuses, the client says why and exits 1.
        twin = await Chat.start(tmp_path / "bob", url, server_key=server_key)
        chats.append(twin)
        assert await twin.finish() == 1
        [error] = [e for e in twin.events if e["event"] == "error"]
        assert error["code"] == "NAME_IN_USE" and "is in use" in error["detail"]

        alice = await Chat.start(tmp_path / "alice", url, server_key=server_key)
        chats.append(alice)
        await alice.until("ready")
        attachment = tmp_path / "notes v2.txt"
        attachment.write_bytes(os.urandom(5000))
        await alice.send("/list", "/tell bob hello from alice", "/all hi everyone", "/tell nobody x",
                         f"/file bob {attachment}")
        assert await alice.finish() == 0
        assert any(e["event"] == "file_sent" and e["size"] == 5000 for e in alice.events)
        [listed] = [e for e in alice.events if e["event"] == "list"]
        assert {u["label"] for u in listed["users"]} == {"alice", "bob"}
        sent = [e for e in alice.events if e["event"] == "sent"]
        assert [(e["to"], e["channel"]) for e in sent] == [(bob_id, "dm"), ("public", "public")]
        [unknown] = [e for e in alice.events if e["event"] == "error"]
        assert unknown["code"] == "USER_NOT_FOUND" and unknown["source"] == "client"

        dm = await bob.until("message")
        assert {k: dm[k] for k in ("from", "label", "text", "channel", "verified", "trusted", "form")} == {
            "from": alice_id, "label": "alice", "text": "hello from alice", "channel": "dm",
            "verified": True, "trusted": True, "form": "encrypted"}
        public = await bob.until("message")
        assert (public["text"], public["channel"], public["from"]) == ("hi everyone", "public", alice_id)
        assert any(e["event"] == "channel_key" and e["from"] == alice_id for e in bob.events)
        received = await bob.until("file")
        assert received["name"] == "notes v2.txt" and received["size"] == 5000 and received["verified"]
        assert Path(received["path"]).read_bytes() == attachment.read_bytes()
        assert Path(received["path"]).parent == tmp_path / "bob" / "downloads"
        assert await bob.finish() == 0
        # Bob pinned alice's key on first sight, in his home.
        pins = json.loads((tmp_path / "bob" / "pins.json").read_text())
        assert pins[alice_id] == crypto.fingerprint(keys[0].public_key())
    finally:
        for chat in chats:
            chat.kill()
        server.close()
        await server.wait_closed()


async def test_unreachable_server_gives_a_clear_error(keys, tmp_path):
    ClientHome(tmp_path / "carol").create("carol", PASSWORD, user_key=keys[0])
    chat = await Chat.start(tmp_path / "carol", "ws://127.0.0.1:9", "--connect-attempts", "1",
                            server_key=crypto.encode_public_key(keys[2]))
    try:
        assert await chat.finish() == 1
        [error] = [e for e in chat.events if e["event"] == "error"]
        assert error["code"] == "UNREACHABLE" and "127.0.0.1:9" in error["detail"]
    finally:
        chat.kill()
