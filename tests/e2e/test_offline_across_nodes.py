"""Issue #19: a sender on one node reaches a user who is away from another node where
they have a password account. The home node's USER_REMOVE says it holds for them, the
sender's node routes the DM there, the home node holds it (and a public message and a
file sent meanwhile) and delivers both at the next login, each verifiable end to end."""

from __future__ import annotations

import asyncio

import pytest

from router.test_offline import file_frames
from socp.protocol import crypto, frames, login, signing
from socp.protocol.encoding import b64url_decode, b64url_encode
from support.nodes import start_node
from support.wsclient import RawUser, now_ms

from .test_offline_delivery import FAST, SETTLE, held_rows, kill_and_wait, rows_become

pytestmark = pytest.mark.e2e

FAST_LINKS = ("--heartbeat-interval", "0.5", "--link-timeout", "2")


async def sees(user: RawUser, user_id: str, present: bool, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (user_id in (await user.list_users()).payload["users"]) != present:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{user_id} {'never appeared' if present else 'never left'}")
        await asyncio.sleep(0.2)


async def test_a_sender_on_another_node_reaches_an_away_account(keys, tmp_path) -> None:
    home = start_node(tmp_path / "home", keys[0], verifiers=1, extra_args=FAST_LINKS)
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(home.bootstrap_yaml())
    other = start_node(tmp_path / "other", keys[5], verifiers=1,
                       extra_args=(*FAST_LINKS, "--bootstrap", str(bootstrap)))
    bob = RawUser(home.url, keys[2])
    alice = RawUser(other.url, keys[1])
    carol = RawUser(home.url, keys[3])
    try:
        await bob.connect(display_name="bob")
        registration = login.register("pw", keys[2], FAST)
        await bob.send(frames.login_register(bob.user_id, home.server_id, now_ms(), registration.privkey_store,
                                             registration.pake_password))
        await bob.receive("ACK")
        await carol.connect(display_name="carol")   # no account: not held for after she leaves
        await alice.connect(display_name="alice")
        await sees(alice, bob.user_id, True)
        await sees(alice, carol.user_id, True)
        await bob.close()
        await carol.close()
        await sees(alice, bob.user_id, False)
        await sees(alice, carol.user_id, False)
        # The sender's node forgets who is away with its router; it learns again from
        # the home node when their link is made again.
        await kill_and_wait(other, "router")
        await asyncio.sleep(SETTLE)

        await alice.send(alice.dm_to(bob.user_id, bob.pubkey, b"sent from the other node"))
        ciphertext = b64url_encode(b"a public post")
        ts = now_ms()
        post = frames.msg_public_channel(alice.user_id, ts, ciphertext, alice.pubkey,
                                         signing.sign_public(keys[1], ciphertext, alice.user_id, ts))
        await alice.send(post)
        data = bytes(range(256)) * 3   # two chunks
        sent_file = file_frames(alice.user_id, bob.user_id, keys[2], data, file_id="away-file", ts=now_ms())
        for frame in sent_file:
            await alice.send(frame)
        assert await alice.nothing_of("ERROR", wait=1.5)
        await rows_become(home, 2 + len(sent_file))
        assert held_rows(other) == 0

        # A user without an account at her home is still refused, not silently lost.
        await alice.send(alice.dm_to(carol.user_id, carol.pubkey, b"nobody keeps this"))
        assert (await alice.receive("ERROR")).payload["code"] == "USER_NOT_FOUND"

        back = RawUser(home.url, keys[2], user_id=bob.user_id)
        await back.connect(display_name="bob")
        assert back.open_dm(await back.receive("USER_DELIVER")) == b"sent from the other node"   # verifies
        public = await back.receive("MSG_PUBLIC_CHANNEL", where=lambda f: f.from_ == alice.user_id)
        assert public.ts == ts and public.payload["ciphertext"] == ciphertext
        assert signing.verify_public(crypto.decode_public_key(public.payload["sender_pub"]),
                                     public.payload["content_sig"], ciphertext, alice.user_id, ts)
        got = [await back.receive(frame.type, where=lambda f: f.payload.get("file_id") == "away-file")
               for frame in sent_file]
        assert [(f.from_, f.payload) for f in got] == [(f.from_, f.payload) for f in sent_file]
        assert b"".join(crypto.oaep_decrypt(keys[2], b64url_decode(f.payload["ciphertext"])) for f in got[1:-1]) == data
        assert await back.nothing_of("USER_DELIVER", wait=1.0)   # once
        await rows_become(home, 0)
        await back.close()
    finally:
        await alice.close()
        other.stop()
        home.stop()
