"""The client core paired in memory through a fake node (STYLE §9)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from socp.client.commands import CommandError
from socp.client.events import (
    ChannelKeyReceived,
    ErrorReceived,
    FileFailed,
    FileOffered,
    FileProgress,
    FileReceived,
    KeyChanged,
    ListResult,
    MessageReceived,
    MessageRejected,
    MessageSent,
    PresenceChanged,
)
from socp.protocol import crypto, signing
from socp.protocol.encoding import b64url_decode, b64url_encode
from socp.protocol.envelope import Envelope
from socp.protocol.errors import UserNotFound
from socp.protocol.ids import new_id

from .client_fakes import FakeNode, MemoryNet


def _pair(net, make_session, *names):
    sessions = [make_session(name) for name in names]
    for session in sessions:
        net.join(session)
    net.refresh(*sessions)
    for session in sessions:
        net.take(session)
    return sessions


def test_dm_round_trip_decrypts_and_verifies(net, make_session):
    alice, bob = _pair(net, make_session, "alice", "bob")
    net.send(alice, alice.messages.tell("bob", "hello bob ✓"))
    [received] = net.take(bob, MessageReceived)
    assert (received.sender, received.text, received.channel) == (alice.me.user_id, "hello bob ✓", "dm")
    assert received.verified and received.trusted and received.form == "encrypted"
    assert received.label == "alice"
    assert [type(e) for e in net.take(alice)] == [MessageSent]


def test_resolve_by_id_prefix_and_name(net, make_session):
    alice, bob = _pair(net, make_session, "alice", "bob")
    assert alice.users.resolve(bob.me.user_id) == bob.me.user_id
    assert alice.users.resolve(bob.me.user_id[:6]) == bob.me.user_id
    assert alice.users.resolve("BOB") == bob.me.user_id
    with pytest.raises(UserNotFound):
        alice.users.resolve("nobody")


def test_long_text_is_split_and_rejoined(net, make_session):
    alice, bob = _pair(net, make_session, "alice", "bob")
    text = "é" * 600 + "ok" + "🙂" * 200   # 2002 UTF-8 bytes: 5 parts
    actions = alice.messages.tell(bob.me.user_id, text)
    assert len(actions.frames) == 5
    for frame in actions.frames:
        assert len(b64url_decode(frame.payload["ciphertext"])) == 512
        assert frame.payload["part"]["count"] == 5
    # Parts may arrive in any order.
    net.send(alice, list(reversed(actions.frames)))
    [received] = net.take(bob, MessageReceived)
    assert received.text == text and received.parts == 5 and received.verified


def test_tampered_ciphertext_is_rejected(net, make_session):
    alice, bob = _pair(net, make_session, "alice", "bob")

    def flip(envelope: Envelope) -> Envelope:
        if envelope.type != "USER_DELIVER":
            return envelope
        raw = bytearray(b64url_decode(envelope.payload["ciphertext"]))
        raw[10] ^= 1
        return Envelope(envelope.type, envelope.from_, envelope.to, envelope.ts,
                        {**envelope.payload, "ciphertext": b64url_encode(bytes(raw))})

    net.node.tamper = flip
    net.send(alice, alice.messages.tell("bob", "secret"))
    events = net.take(bob)
    assert [type(e) for e in events] == [MessageRejected]
    assert "signature" in events[0].reason


def test_changed_key_warns_and_marks_untrusted(net, make_session, keys):
    alice, bob = _pair(net, make_session, "alice", "bob")
    net.send(alice, alice.messages.tell("bob", "first"))
    assert net.take(bob, MessageReceived)[0].trusted
    # Alice's id comes back with another key (carol's): a new device, or an impostor.
    net.leave(alice)
    impostor = make_session("alice", user_key_index=2, user_id=alice.me.user_id)
    net.join(impostor)
    net.refresh(impostor)
    net.send(impostor, impostor.messages.tell(bob.me.user_id, "trust me"))
    events = net.take(bob)
    changed = [e for e in events if isinstance(e, KeyChanged)]
    assert len(changed) == 1 and changed[0].user == alice.me.user_id
    assert changed[0].old_fingerprint == crypto.fingerprint(keys[0].public_key())
    assert changed[0].new_fingerprint == crypto.fingerprint(keys[2].public_key())
    [message] = [e for e in events if isinstance(e, MessageReceived)]
    assert message.verified and not message.trusted
    # Bob will not encrypt to the new key until he accepts it.
    with pytest.raises(CommandError, match="/trust"):
        bob.messages.tell(alice.me.user_id, "hi")
    bob.trust(alice.me.user_id)
    net.send(bob, bob.messages.tell(alice.me.user_id, "hi"))
    assert net.take(impostor, MessageReceived)[0].text == "hi"
    assert bob.whois(alice.me.user_id).trusted


def test_public_channel_key_shares_then_messages(net, make_session):
    alice, bob, carol = _pair(net, make_session, "alice", "bob", "carol")
    actions = alice.messages.post_public("hello all")
    kinds = [f.type for f in actions.frames]
    assert kinds == ["PUBLIC_CHANNEL_KEY_SHARE", "MSG_PUBLIC_CHANNEL"]
    net.send(alice, actions)
    for member in (bob, carol):
        events = net.take(member)
        assert isinstance(events[0], ChannelKeyReceived) and events[0].sender == alice.me.user_id
        [message] = [e for e in events if isinstance(e, MessageReceived)]
        assert (message.text, message.channel, message.form) == ("hello all", "public", "encrypted")
        assert message.verified and message.sender == alice.me.user_id
    # The second message needs no new shares; a long one is split and rejoined.
    second = alice.messages.post_public("x" * 1000)
    assert [f.type for f in second.frames] == ["MSG_PUBLIC_CHANNEL"] * 3
    net.send(alice, second)
    assert net.take(bob, MessageReceived)[0].text == "x" * 1000


def test_key_share_for_offline_member_arrives_on_connect(net, make_session):
    alice, bob = _pair(net, make_session, "alice", "bob")
    net.leave(bob)
    # Alice's last /list still shows bob: the node stores his share.
    net.send(alice, alice.messages.post_public("while you were away"))
    assert net.node.stored_shares[bob.me.user_id]
    net.join(bob)
    assert any(isinstance(e, ChannelKeyReceived) for e in net.take(bob))
    net.send(alice, alice.messages.post_public("welcome back"))
    assert net.take(bob, MessageReceived)[0].text == "welcome back"


def test_public_peer_forms(net, make_session, keys):
    alice, bob = _pair(net, make_session, "alice", "bob")
    # A peer that sends plaintext (base64url of the text), correctly signed.
    ts = 1_700_000_000_123
    ciphertext = b64url_encode(b"plain hi")
    sig = signing.sign_public(keys[0], ciphertext, alice.me.user_id, ts)
    frame = Envelope("MSG_PUBLIC_CHANNEL", alice.me.user_id, "public", ts,
                     {"ciphertext": ciphertext, "sender_pub": alice.me.pubkey, "content_sig": sig})
    [message] = bob.handle(frame.to_wire())
    assert (message.text, message.form) == ("plain hi", "unencrypted")
    # A peer format we cannot decrypt (an OAEP block under a key we lack), signed.
    ciphertext = b64url_encode(crypto.oaep_encrypt(keys[4].public_key(), b"group-key stuff"))
    sig = signing.sign_public(keys[0], ciphertext, alice.me.user_id, ts)
    frame = Envelope("MSG_PUBLIC_CHANNEL", alice.me.user_id, "public", ts,
                     {"ciphertext": ciphertext, "sender_pub": alice.me.pubkey, "content_sig": sig})
    [message] = bob.handle(frame.to_wire())
    assert (message.text, message.form, message.verified) == ("", "undecryptable", True)
    # The same with a bad signature is rejected, never shown.
    frame = Envelope("MSG_PUBLIC_CHANNEL", alice.me.user_id, "public", ts + 1,
                     {"ciphertext": ciphertext, "sender_pub": alice.me.pubkey, "content_sig": sig})
    assert [type(e) for e in bob.handle(frame.to_wire())] == [MessageRejected]


def test_dms_and_public_messages_pass_one_signature_check(make_session, keys):
    """No key for the sender, or a content_sig that holds under none of the claims
    (for a USER_DELIVER: a DM's, or a public message's fanned out), rejects a DM and a
    public message alike, each under its own channel."""
    bob = make_session("bob")
    stranger, server, ts = new_id(), new_id(), 1_700_000_000_000
    ciphertext = b64url_encode(crypto.oaep_encrypt(keys[1].public_key(), b"hi"))
    carols_sig = signing.sign_public(keys[2], ciphertext, stranger, ts)   # not the sender_pub's key
    alices_pub = crypto.encode_public_key(keys[0].public_key())
    keyless_dm = Envelope("USER_DELIVER", server, bob.me.user_id, ts,
                          {"ciphertext": ciphertext, "content_sig": carols_sig, "sender": stranger})
    forged_dm = Envelope("USER_DELIVER", server, bob.me.user_id, ts,
                         {**keyless_dm.payload, "sender_pub": alices_pub})
    forged_public = Envelope("MSG_PUBLIC_CHANNEL", stranger, "public", ts,
                             {"ciphertext": ciphertext, "sender_pub": alices_pub, "content_sig": carols_sig})
    rejected = [(e.sender, e.channel, e.reason) for frame in (keyless_dm, forged_dm, forged_public)
                for e in bob.handle(frame.to_wire()) if isinstance(e, MessageRejected)]
    assert rejected == [(stranger, "dm", "no key known for the sender"),
                        (stranger, "dm", "content signature does not verify"),
                        (stranger, "public", "content signature does not verify")]


def _send_file(net, session, target, path):
    for actions in session.outgoing_files.send(target, path):
        net.send(session, actions)


def test_file_transfer_arrives_intact(net, make_session, tmp_path):
    alice, bob = _pair(net, make_session, "alice", "bob")
    data = os.urandom(200 * 1024)
    source = tmp_path / "photo.bin"
    source.write_bytes(data)
    _send_file(net, alice, "bob", source)
    events = net.take(bob)
    [received] = [e for e in events if isinstance(e, FileReceived)]
    assert received.size == len(data) and received.sha256 == hashlib.sha256(data).hexdigest()
    assert received.verified and received.sender == alice.me.user_id
    saved = bob.incoming_files.downloads_dir / "photo.bin"
    assert received.path == str(saved) and saved.read_bytes() == data
    assert [p.name for p in bob.incoming_files.downloads_dir.iterdir()] == ["photo.bin"]  # no temp file left
    progress = [e for e in events if isinstance(e, FileProgress)]
    assert progress[0].done == 0 and progress[-1].done == len(data) and progress[-1].eta == 0
    # The same name again is not overwritten.
    small = tmp_path / "again" / "photo.bin"
    small.parent.mkdir()
    small.write_bytes(b"second")
    _send_file(net, alice, "bob", small)
    [again] = net.take(bob, FileReceived)
    assert again.path == str(bob.incoming_files.downloads_dir / "photo (1).bin")
    assert saved.read_bytes() == data


def test_hostile_file_name_is_saved_inside_downloads(net, make_session, tmp_path):
    alice, bob = _pair(net, make_session, "alice", "bob")
    source = tmp_path / "x"
    source.write_bytes(b"root:x:0:0\n")
    actions = list(alice.outgoing_files.send("bob", source))
    # Rewrite the manifest's name as a hostile sender would (and re-sign it: the
    # sender is the attacker here, so the signature is theirs and valid).
    start = actions[0].frames[0]
    from socp.client.outgoing_files import manifest_signed_bytes

    payload = {**start.payload, "name": "../../etc/\x1b[31mpasswd"}
    payload["content_sig"] = b64url_encode(crypto.sign_pss(
        alice.me.user_key, manifest_signed_bytes(payload, alice.me.user_id, start.to, start.ts)))
    actions[0] = type(actions[0])(frames=(Envelope(start.type, start.from_, start.to, start.ts, payload),))
    for step in actions:
        net.send(alice, step)
    [received] = net.take(bob, FileReceived)
    saved = os.path.realpath(received.path)
    assert os.path.dirname(saved) == os.path.realpath(bob.incoming_files.downloads_dir)
    assert os.path.basename(saved) == "[31mpasswd"
    assert open(saved, "rb").read() == b"root:x:0:0\n"


def test_corrupted_chunk_fails_and_leaves_no_file(net, make_session, tmp_path):
    alice, bob = _pair(net, make_session, "alice", "bob")
    source = tmp_path / "doc.txt"
    source.write_bytes(os.urandom(3000))
    seen = {"n": 0}

    def corrupt(envelope: Envelope) -> Envelope:
        if envelope.type == "FILE_CHUNK" and envelope.payload["index"] == 2:
            raw = bytearray(b64url_decode(envelope.payload["ciphertext"]))
            raw[100] ^= 0xFF
            seen["n"] += 1
            return Envelope(envelope.type, envelope.from_, envelope.to, envelope.ts,
                            {**envelope.payload, "ciphertext": b64url_encode(bytes(raw))})
        return envelope

    net.node.tamper = corrupt
    _send_file(net, alice, "bob", source)
    events = net.take(bob)
    assert seen["n"] == 1
    failed = [e for e in events if isinstance(e, FileFailed)]
    assert len(failed) == 1 and not any(isinstance(e, FileReceived) for e in events)
    assert list(bob.incoming_files.downloads_dir.iterdir()) == []


def test_chunks_that_arrive_out_of_order_are_put_back_in_order(net, make_session, tmp_path):
    """A chunk the node refused for its load is sent again after later ones
    (test_busy_parts.py): the receiver writes each chunk at its place, by index."""
    alice, bob = _pair(net, make_session, "alice", "bob")
    source = tmp_path / "doc.txt"
    source.write_bytes(b"a" * 400 + b"b" * 400 + b"c" * 200)
    steps = list(alice.outgoing_files.send("bob", source))
    steps[1], steps[2] = steps[2], steps[1]
    for step in steps:
        net.send(alice, step)
    events = net.take(bob)
    assert not [e for e in events if isinstance(e, FileFailed)]
    [received] = [e for e in events if isinstance(e, FileReceived)]
    assert open(received.path, "rb").read() == source.read_bytes()


def test_public_file_uses_the_channel_key(net, make_session, tmp_path):
    alice, bob, carol = _pair(net, make_session, "alice", "bob", "carol")
    source = tmp_path / "notes.md"
    source.write_bytes(b"# notes\n" * 200)
    _send_file(net, alice, "public", source)
    for member in (bob, carol):
        [received] = net.take(member, FileReceived)
        assert received.channel == "public"
        assert open(received.path, "rb").read() == b"# notes\n" * 200


def test_server_signature_is_checked_when_the_key_is_known(make_session, keys):
    node = FakeNode(server_key=keys[2])
    net = MemoryNet(node)
    alice, bob = make_session("alice"), make_session("bob")
    bob.server_key = keys[2].public_key()
    for session in (alice, bob):
        net.join(session)
    net.refresh(alice, bob)
    net.take(bob)
    net.send(alice, alice.messages.tell("bob", "signed hop"))
    assert net.take(bob, MessageReceived)[0].text == "signed hop"
    bob.server_key = keys[1].public_key()  # the wrong key: every frame is dropped
    net.send(alice, alice.messages.tell("bob", "forged hop"))
    [error] = net.take(bob)
    assert isinstance(error, ErrorReceived) and error.code == "INVALID_SIG"


def test_list_result_labels_users(net, make_session):
    alice, bob = _pair(net, make_session, "alice", "bob")
    net.send(alice, alice.users.list_request())
    [result] = net.take(alice, ListResult)
    assert result.requested
    assert {(u.label, u.is_self) for u in result.users} == {("alice", True), ("bob", False)}
    assert all(u.fingerprint for u in result.users)


def test_a_download_whose_sender_goes_silent_is_dropped(net, make_session, tmp_path):
    now = [1_700_000_000.0]
    alice = make_session("alice")
    bob = make_session("bob", clock=lambda: now[0], download_idle_timeout=30.0)
    for session in (alice, bob):
        net.join(session)
    net.refresh(alice, bob)
    path = tmp_path / "stalled.bin"
    path.write_bytes(os.urandom(2000))
    steps = alice.outgoing_files.send(bob.me.user_id, path)
    net.send(alice, next(steps))   # FILE_START
    net.send(alice, next(steps))   # the first chunk, then silence
    net.take(bob)
    partial = list(bob.incoming_files.downloads_dir.iterdir())
    assert len(partial) == 1 and partial[0].name.startswith(".socp-")
    now[0] += 30.0
    assert bob.incoming_files.expire_idle() == []          # not idle for more than the limit yet
    now[0] += 0.5
    [dropped] = bob.incoming_files.expire_idle()
    assert isinstance(dropped, FileFailed) and dropped.name == "stalled.bin" and dropped.sender == alice.me.user_id
    assert "went silent" in dropped.reason and "30 s" in dropped.reason
    assert list(bob.incoming_files.downloads_dir.iterdir()) == []    # the temporary file is gone
    for actions in steps:                             # the sender wakes up: nothing more is kept
        net.send(alice, actions)
    assert not net.take(bob, FileReceived) and list(bob.incoming_files.downloads_dir.iterdir()) == []


def test_a_file_start_without_sha256_is_received_flagged_not_verified_by_hash(net, make_session, tmp_path):
    """The node relays G17's FILE_START, which has no sha256 (and no content_sig): the
    file is kept after its size is checked, and shown as not verified by hash
    (docs/chat.md). Before: refused."""
    alice, bob = _pair(net, make_session, "alice", "bob")
    source = tmp_path / "doc.txt"
    source.write_bytes(b"x" * 500)

    def drop_hash(envelope: Envelope) -> Envelope:
        if envelope.type == "FILE_START":
            payload = {k: v for k, v in envelope.payload.items() if k not in ("sha256", "content_sig")}
            return Envelope(envelope.type, envelope.from_, envelope.to, envelope.ts, payload)
        return envelope

    net.node.tamper = drop_hash
    _send_file(net, alice, "bob", source)
    events = net.take(bob)
    assert not [e for e in events if isinstance(e, FileFailed)]
    [received] = [e for e in events if isinstance(e, FileReceived)]
    assert received.hashed is False and received.verified is False
    assert open(received.path, "rb").read() == b"x" * 500


def test_a_file_above_the_auto_accept_size_waits_for_accept(net, make_session, tmp_path):
    alice = make_session("alice")
    bob = make_session("bob", auto_accept_bytes=1000)
    for session in (alice, bob):
        net.join(session)
    net.refresh(alice, bob)
    net.take(alice), net.take(bob)
    small, big = tmp_path / "small.txt", tmp_path / "big file.bin"
    small.write_bytes(b"x" * 1000)
    big.write_bytes(os.urandom(5000))
    _send_file(net, alice, "bob", small)
    offers = net.take(bob)
    [offer] = [e for e in offers if isinstance(e, FileOffered)]
    assert offer.auto and offer.label == "alice" and offer.size == 1000
    assert any(isinstance(e, FileReceived) for e in offers)
    _send_file(net, alice, "bob", big)
    events = net.take(bob)
    [offer] = [e for e in events if isinstance(e, FileOffered)]
    assert not offer.auto and offer.name == "big file.bin" and offer.auto_limit == 1000
    assert not any(isinstance(e, FileReceived) for e in events)
    assert not (bob.incoming_files.downloads_dir / "big file.bin").exists()       # nothing named before /accept
    [waiting] = bob.incoming_files.transfers()
    assert waiting.state == "complete, waiting for /accept" and waiting.peer == "alice"
    [received] = [e for e in bob.incoming_files.accept("big file.bin") if isinstance(e, FileReceived)]
    assert Path(received.path).read_bytes() == big.read_bytes() and bob.incoming_files.transfers() == ()
    with pytest.raises(CommandError, match="no incoming file"):
        bob.incoming_files.accept("big file.bin")


def test_reject_deletes_what_came_and_says_so_in_words(net, make_session, tmp_path):
    alice = make_session("alice")
    bob = make_session("bob", auto_accept_bytes=10)
    for session in (alice, bob):
        net.join(session)
    net.refresh(alice, bob)
    net.take(alice), net.take(bob)
    source = tmp_path / "offer.bin"
    source.write_bytes(os.urandom(3000))
    steps = alice.outgoing_files.send("bob", source)
    net.send(alice, next(steps))            # FILE_START only
    [offer] = net.take(bob, FileOffered)
    [failed] = bob.incoming_files.reject(offer.file_id[:8])
    assert isinstance(failed, FileFailed) and "/reject" in failed.reason and failed.label == "alice"
    for actions in steps:                   # the rest is ignored
        net.send(alice, actions)
    assert not net.take(bob, FileReceived) and list(bob.incoming_files.downloads_dir.iterdir()) == []


def test_chunks_of_several_oaep_blocks_arrive_intact(net, make_session, tmp_path):
    alice = make_session("alice", chunk_blocks=4)
    bob = make_session("bob")
    for session in (alice, bob):
        net.join(session)
    net.refresh(alice, bob)
    net.take(alice), net.take(bob)
    source = tmp_path / "blocks.bin"
    source.write_bytes(os.urandom(446 * 9 + 17))
    frames_out = [frame for actions in alice.outgoing_files.send("bob", source) for frame in actions.frames]
    assert sum(frame.type == "FILE_CHUNK" for frame in frames_out) == 3     # 10 blocks, 4 a chunk
    net.send(alice, frames_out)
    [received] = net.take(bob, FileReceived)
    assert Path(received.path).read_bytes() == source.read_bytes()


def test_joins_and_leaves_come_from_list_answers_once_connected(net, make_session):
    alice, bob = _pair(net, make_session, "alice", "bob")
    alice.users.presence_news = True
    carol = make_session("carol")
    net.join(carol)
    net.take(alice)
    net.send(alice, alice.users.list_request(requested=False))
    [joined] = net.take(alice, PresenceChanged)
    assert (joined.user_id, joined.label, joined.joined) == (carol.me.user_id, "carol", True)
    net.leave(carol)
    net.send(alice, alice.users.list_request(requested=False))
    [left] = net.take(alice, PresenceChanged)
    assert (left.user_id, left.joined) == (carol.me.user_id, False)
    net.send(alice, alice.users.list_request(requested=False))
    assert net.take(alice, PresenceChanged) == []          # nothing changed, nothing said


def test_pushed_presence_makes_join_and_leave_lines(make_session, keys):
    alice = make_session("alice")
    server = "8c1e2a3b-4d5f-4a6b-9c8d-7e6f5a4b3c2d"
    dave = "7a1c9e2b-4d3f-4b6a-9c8d-1e2f3a4b5c6d"
    advert = Envelope("USER_ADVERTISE", server, "*", 1, {
        "user_id": dave, "server_id": server,
        "meta": {"pubkey": crypto.encode_public_key(keys[2]), "display_name": "Dave Smith"}})
    assert alice.handle_envelope(advert) == []            # the catch-up before Ready: no news
    assert alice.users.resolve("Dave Smith") == dave
    alice.handle_envelope(Envelope("USER_REMOVE", server, "*", 2, {"user_id": dave, "server_id": server}))
    alice.users.presence_news = True
    events = alice.handle_envelope(advert)
    assert [(type(e), e.label, e.joined) for e in events if isinstance(e, PresenceChanged)] == [
        (PresenceChanged, "Dave Smith", True)]
    events = alice.handle_envelope(Envelope("USER_REMOVE", server, "*", 3, {"user_id": dave, "server_id": server}))
    assert [(e.label, e.joined) for e in events] == [("Dave Smith", False)]
