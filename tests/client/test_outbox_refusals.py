"""The client reads the node's "no silent drops" answers (README, "Acknowledgements and
recovery"): ERROR RESEND is answered with the frame re-stamped, once and silently;
an ERROR naming frames (`msg_ref`, `msg_refs`) makes their message "not delivered",
said once per message; a file is "sent" only once the ACK covering its FILE_END came."""

from __future__ import annotations

from dataclasses import replace

from socp.client.events import (
    ErrorReceived,
    FileFailed,
    FileReceived,
    FileSent,
    MessageReceived,
    MessageSent,
    NotDelivered,
    Restamped,
)
from socp.client.render import event_text
from socp.protocol import crypto, frames, signing
from socp.protocol.acks import msg_ref
from socp.protocol.encoding import b64url_decode
from socp.protocol.envelope import Envelope, parse
from socp.protocol.frame_types import FrameType as T

from .client_fakes import MemoryNet
from .test_session import _pair


def _error(server_id: str, user_id: str, code: str, refs: list[str], *, listed: bool = True) -> str:
    payload = {"code": code, "detail": f"{code} detail", "msg_ref": refs[-1]}
    if listed:
        payload["msg_refs"] = refs
    return Envelope(T.ERROR, server_id, user_id, 1, payload).to_wire()


def _ack(server_id: str, user_id: str, ref: str) -> str:
    return frames.ack(server_id, user_id, 2, ref).to_wire()


def test_resend_restamps_the_same_ciphertext_with_a_fresh_signature(net: MemoryNet, make_session):
    alice, bob = _pair(net, make_session, "alice", "bob")
    actions = alice.messages.tell("bob", "hi after a crash")
    [frame] = actions.frames
    alice.outbox.sent(*actions.frames)
    events = alice.handle(_error(net.node.server_id, alice.me.user_id, "RESEND", [msg_ref(frame)], listed=False))
    [restamped] = events                       # nothing shown to the user
    assert isinstance(restamped, Restamped) and event_text(restamped) is None
    [again] = restamped.frames
    assert again.type == T.MSG_DIRECT and again.ts > frame.ts
    assert again.payload["ciphertext"] == frame.payload["ciphertext"]
    assert again.payload["content_sig"] != frame.payload["content_sig"]
    assert msg_ref(again) != msg_ref(frame)
    key = crypto.decode_public_key(alice.me.pubkey)
    assert signing.verify_dm(key, again.payload["content_sig"], again.payload["ciphertext"], alice.me.user_id,
                             bob.me.user_id, again.ts)
    signing.verify_transport(key, again)       # raises if the transport sig does not hold
    # It reaches bob as one message, verified under its new ts.
    net.send(alice, list(restamped.frames))
    [received] = net.take(bob, MessageReceived)
    assert received.text == "hi after a crash" and received.verified and received.ts == again.ts


def test_resend_is_answered_once_then_the_message_is_not_delivered(net: MemoryNet, make_session):
    alice, _ = _pair(net, make_session, "alice", "bob")
    [frame] = alice.messages.tell("bob", "twice unlucky").frames
    [restamped] = alice.handle(_error(net.node.server_id, alice.me.user_id, "RESEND", [msg_ref(frame)]))
    [again] = restamped.frames
    [refused] = alice.handle(_error(net.node.server_id, alice.me.user_id, "RESEND", [msg_ref(again)]))
    assert isinstance(refused, NotDelivered)
    assert (refused.kind, refused.summary, refused.code) == ("dm", "twice unlucky", "RESEND")


def test_msg_refs_name_each_refused_frame_and_the_message_is_reported_once(net: MemoryNet, make_session):
    """A long text is several frames; one ERROR listing them all (or several ERRORs)
    make one "not delivered" line, not one per frame."""
    alice, _ = _pair(net, make_session, "alice", "bob")
    long_text = "é" * 600                      # 1200 bytes: three parts
    parts = alice.messages.tell("bob", long_text).frames
    assert len(parts) == 3
    short = alice.messages.tell("bob", "short one").frames
    refs = [msg_ref(f) for f in parts[:2]]
    events = alice.handle(_error(net.node.server_id, alice.me.user_id, "RATE_LIMITED", refs))
    [first] = events
    assert isinstance(first, NotDelivered) and first.summary == long_text and first.code == "RATE_LIMITED"
    assert "NOT DELIVERED" in event_text(first).plain
    # The third part refused later: the same message, already reported.
    assert alice.handle(_error(net.node.server_id, alice.me.user_id, "RATE_LIMITED", [msg_ref(parts[2])])) == []
    # The short message is a message of its own.
    [second] = alice.handle(_error(net.node.server_id, alice.me.user_id, "RATE_LIMITED", [msg_ref(short[0])]))
    assert second.summary == "short one"


def test_an_error_naming_unknown_frames_is_still_shown(net: MemoryNet, make_session):
    alice, _ = _pair(net, make_session, "alice", "bob")
    [event] = alice.handle(_error(net.node.server_id, alice.me.user_id, "RATE_LIMITED", ["0" * 32]))
    assert isinstance(event, ErrorReceived) and event.code == "RATE_LIMITED"


def test_replay_means_the_frame_went_through(net: MemoryNet, make_session):
    alice, _ = _pair(net, make_session, "alice", "bob")
    [frame] = alice.messages.tell("bob", "already there").frames
    assert alice.handle(_error(net.node.server_id, alice.me.user_id, "REPLAY", [msg_ref(frame)])) == []


def test_public_message_refused_by_msg_refs(net: MemoryNet, make_session):
    alice, _ = _pair(net, make_session, "alice", "bob")
    actions = alice.messages.post_public("to everyone")
    public = [f for f in actions.frames if f.type == T.MSG_PUBLIC_CHANNEL]
    [event] = alice.handle(_error(net.node.server_id, alice.me.user_id, "FORBIDDEN", [msg_ref(public[0])]))
    assert isinstance(event, NotDelivered) and event.kind == "public" and event.summary == "to everyone"


def _file_steps(session, target, path):
    return list(session.outgoing_files.send(target, path))


def test_a_refused_chunk_fails_the_file_once_and_it_is_never_said_sent(net: MemoryNet, make_session, tmp_path):
    alice, _ = _pair(net, make_session, "alice", "bob")
    source = tmp_path / "big.bin"
    source.write_bytes(b"z" * 3000)
    # The server has ACKed before: "sent" waits for the ACK covering FILE_END.
    [warm] = alice.messages.tell("bob", "warm up").frames
    alice.outbox.sent(warm)
    assert alice.handle(_ack(net.node.server_id, alice.me.user_id, msg_ref(warm))) == []
    steps = _file_steps(alice, "bob", source)
    sent_frames = [f for step in steps for f in step.frames]
    alice.outbox.sent(*sent_frames)
    assert not [e for step in steps for e in step.events if isinstance(e, FileSent)]
    chunks = [f for f in sent_frames if f.type == T.FILE_CHUNK]
    refs = [msg_ref(c) for c in chunks[2:]] + [msg_ref(sent_frames[-1])]
    [refused] = alice.handle(_error(net.node.server_id, alice.me.user_id, "USER_NOT_FOUND", refs))
    assert (refused.kind, refused.summary, refused.file_id) == ("file", "big.bin", sent_frames[0].payload["file_id"])
    assert "big.bin" in event_text(refused).plain
    # The ACK after the refusal covers the frames before: still no "sent".
    assert alice.handle(_ack(net.node.server_id, alice.me.user_id, msg_ref(chunks[1]))) == []


def test_a_file_is_said_sent_when_the_ack_covers_its_end(net: MemoryNet, make_session, tmp_path):
    alice, _ = _pair(net, make_session, "alice", "bob")
    source = tmp_path / "small.bin"
    source.write_bytes(b"q" * 1000)
    [warm] = alice.messages.tell("bob", "warm up").frames
    alice.outbox.sent(warm)
    alice.handle(_ack(net.node.server_id, alice.me.user_id, msg_ref(warm)))
    steps = _file_steps(alice, "bob", source)
    sent_frames = [f for step in steps for f in step.frames]
    alice.outbox.sent(*sent_frames)
    assert alice.handle(_ack(net.node.server_id, alice.me.user_id, msg_ref(sent_frames[-2]))) == []
    [sent] = alice.handle(_ack(net.node.server_id, alice.me.user_id, msg_ref(sent_frames[-1])))
    assert isinstance(sent, FileSent) and sent.name == "small.bin"


def test_a_server_that_never_acks_gets_sent_at_once(net: MemoryNet, make_session, tmp_path):
    """Peers' servers do not ACK by msg_ref: "sent" is then what we can say."""
    alice, _ = _pair(net, make_session, "alice", "bob")
    source = tmp_path / "small.bin"
    source.write_bytes(b"q" * 100)
    steps = _file_steps(alice, "bob", source)
    assert [e for e in steps[-1].events if isinstance(e, FileSent)]


def test_resend_of_a_file_chunk_keeps_its_ciphertext(net: MemoryNet, make_session, tmp_path):
    alice, _ = _pair(net, make_session, "alice", "bob")
    source = tmp_path / "f.bin"
    source.write_bytes(b"w" * 900)
    sent_frames = [f for step in _file_steps(alice, "bob", source) for f in step.frames]
    start, chunk = sent_frames[0], sent_frames[1]
    [restamped] = alice.handle(_error(net.node.server_id, alice.me.user_id, "RESEND", [msg_ref(start), msg_ref(chunk)]))
    again_start, again_chunk = restamped.frames
    assert again_chunk.payload == chunk.payload and again_chunk.ts > chunk.ts
    key = crypto.decode_public_key(alice.me.pubkey)
    from socp.client.outgoing_files import manifest_signed_bytes
    assert crypto.verify_pss(key, b64url_decode(again_start.payload["content_sig"]),
                             manifest_signed_bytes(again_start.payload, alice.me.user_id, again_start.to,
                                                   again_start.ts))
    assert parse(again_start.to_wire()).type == T.FILE_START


def test_sent_event_of_a_dm_is_unchanged(net: MemoryNet, make_session):
    alice, _ = _pair(net, make_session, "alice", "bob")
    assert [type(e) for e in alice.messages.tell("bob", "x").events] == [MessageSent]


# --- a lost connection (issue #16 item 1) --------------------------------------------


def test_a_download_interrupted_by_a_lost_connection_is_reported_and_deleted(net: MemoryNet, make_session,
                                                                             tmp_path):
    """Before: connection_reset dropped it without a word."""
    alice, bob = _pair(net, make_session, "alice", "bob")
    source = tmp_path / "big.bin"
    source.write_bytes(b"b" * 5000)
    steps = _file_steps(alice, "bob", source)
    for actions in steps[:4]:                 # FILE_START and a few chunks, then the node goes away
        net.send(alice, actions)
    net.take(bob)
    [failed] = bob.connection_lost()
    assert isinstance(failed, FileFailed) and failed.name == "big.bin" and failed.sender == alice.me.user_id
    assert "interrupted" in failed.reason and "send it again" in failed.reason and not failed.outgoing
    assert [p for p in bob.incoming_files.downloads_dir.iterdir()] == []
    bob.connection_reset()
    # The rest, should it come after the reconnect, is ignored: it was reported once.
    for actions in steps[4:]:
        net.send(alice, actions)
    assert not [e for e in net.take(bob) if isinstance(e, (FileFailed, FileReceived))]


def test_a_file_whose_ack_never_came_is_not_said_sent(net: MemoryNet, make_session, tmp_path):
    alice, _ = _pair(net, make_session, "alice", "bob")
    [warm] = alice.messages.tell("bob", "warm up").frames
    alice.outbox.sent(warm)
    alice.handle(_ack(net.node.server_id, alice.me.user_id, msg_ref(warm)))
    source = tmp_path / "f.bin"
    source.write_bytes(b"f" * 900)
    steps = _file_steps(alice, "bob", source)
    alice.outbox.sent(*(f for step in steps for f in step.frames))
    [failed] = alice.connection_lost()
    assert isinstance(failed, FileFailed) and failed.outgoing and "may not have arrived" in failed.reason
    assert "NOT SENT" in event_text(failed).plain and alice.me.user_id not in event_text(failed).plain


def test_unconfirmed_messages_are_sent_again_after_a_reconnect(net: MemoryNet, make_session):
    alice, bob = _pair(net, make_session, "alice", "bob")
    [first] = alice.messages.tell("bob", "confirmed").frames
    [second] = alice.messages.tell("bob", "not confirmed").frames
    alice.outbox.sent(first, second)
    alice.handle(_ack(net.node.server_id, alice.me.user_id, msg_ref(first)))
    assert alice.connection_lost() == []
    alice.connection_reset()
    assert alice.take_unconfirmed() == (second,)       # byte for byte
    assert alice.take_unconfirmed() == ()


def test_a_server_that_never_acks_gets_nothing_sent_again(net: MemoryNet, make_session):
    alice, _ = _pair(net, make_session, "alice", "bob")
    frames_out = alice.messages.tell("bob", "x").frames
    alice.outbox.sent(*frames_out)
    alice.connection_lost()
    assert alice.take_unconfirmed() == ()


def test_a_restamped_copy_of_a_message_already_shown_is_dropped(net: MemoryNet, make_session):
    alice, bob = _pair(net, make_session, "alice", "bob")
    [frame] = alice.messages.tell("bob", "maybe twice").frames
    net.send(alice, frame)
    [restamped] = alice.handle(_error(net.node.server_id, alice.me.user_id, "RESEND", [msg_ref(frame)]))
    net.send(alice, list(restamped.frames))
    assert [e.text for e in net.take(bob, MessageReceived)] == ["maybe twice"]


# --- errors that name no frame ------------------------------------------------------


def test_the_same_server_error_again_and_again_is_shown_once_then_counted(make_session):
    clock = iter(1_700_000_000 + i * 0.01 for i in range(10_000))
    alice = make_session("alice", clock=lambda: next(clock))
    flood = frames.error("srv", alice.me.user_id, 1, "USER_NOT_FOUND", "FILE_CHUNK not delivered: server unreachable")
    shown = [e for _ in range(200) for e in alice.handle(flood.to_wire())]
    assert len([e for e in shown if isinstance(e, ErrorReceived)]) == 1     # before: 200 lines
    other = frames.error("srv", alice.me.user_id, 1, "FORBIDDEN", "something else").to_wire()
    after = alice.handle(other)
    assert [type(e).__name__ for e in after] == ["Info", "ErrorReceived"] and "199" in after[0].text


def test_an_unreferenced_file_frame_refusal_reports_files_to_other_servers(net: MemoryNet, make_session,
                                                                          tmp_path):
    """Our node gives up on a backlog for a server that went away with ERRORs that
    name no frame; those frames had been ACKed, so a file said "sent" may be lost."""
    alice, bob = _pair(net, make_session, "alice", "bob")
    alice.users.server_id = "node-a"
    alice.users.users[bob.me.user_id] = replace(alice.users.users[bob.me.user_id], server_id="node-b")
    source = tmp_path / "far.bin"
    source.write_bytes(b"r" * 2000)
    _file_steps(alice, "bob", source)
    flood = frames.error("node-a", alice.me.user_id, 1, "USER_NOT_FOUND",
                         "FILE_CHUNK not delivered: server unreachable").to_wire()
    events = alice.handle(flood)
    [lost] = [e for e in events if isinstance(e, NotDelivered)]
    assert (lost.kind, lost.summary, lost.recipient) == ("file", "far.bin", bob.me.user_id)
    assert "may not have arrived" in lost.detail
    assert not [e for e in alice.handle(flood) if isinstance(e, NotDelivered)]       # once


def test_an_unreferenced_refusal_leaves_files_to_our_own_server_alone(net: MemoryNet, make_session, tmp_path):
    alice, bob = _pair(net, make_session, "alice", "bob")
    alice.users.server_id = "node-a"
    alice.users.users[bob.me.user_id] = replace(alice.users.users[bob.me.user_id], server_id="node-a")
    source = tmp_path / "near.bin"
    source.write_bytes(b"r" * 2000)
    _file_steps(alice, "bob", source)
    flood = frames.error("node-a", alice.me.user_id, 1, "USER_NOT_FOUND",
                         "FILE_CHUNK not delivered: server unreachable")
    assert not [e for e in alice.handle(flood.to_wire()) if isinstance(e, NotDelivered)]


# --- a download that resumes after a reconnect ----------------------------------------


def _cut_transfer(net, alice, bob, tmp_path, *, size=5000, before=4):
    source = tmp_path / "cut.bin"
    data = bytes(range(256)) * (size // 256) + b"e" * (size % 256)
    source.write_bytes(data)
    steps = _file_steps(alice, "bob", source)
    for actions in steps[:before]:
        net.send(alice, actions)
    net.take(bob)
    return steps, data


def test_a_download_cut_by_a_reconnect_goes_on_when_the_rest_comes(net: MemoryNet, make_session, tmp_path):
    alice, bob = _pair(net, make_session, "alice", "bob")
    steps, data = _cut_transfer(net, alice, bob, tmp_path)
    [waiting] = bob.connection_lost(resumable=True)
    assert "cut at" in waiting.text and "cut.bin" in waiting.text
    bob.connection_reset()
    bob.reconnected()
    for actions in steps[4:]:
        net.send(alice, actions)
    events = net.take(bob)
    [received] = [e for e in events if isinstance(e, FileReceived)]
    assert open(received.path, "rb").read() == data
    assert any("goes on" in getattr(e, "text", "") for e in events)


def test_a_download_that_lost_chunks_while_disconnected_fails_saying_so(net: MemoryNet, make_session, tmp_path):
    alice, bob = _pair(net, make_session, "alice", "bob")
    steps, _ = _cut_transfer(net, alice, bob, tmp_path)
    bob.connection_lost(resumable=True)
    bob.connection_reset()
    for actions in steps[6:]:                  # two chunks went down with the connection
        net.send(alice, actions)
    [failed] = net.take(bob, FileFailed)
    assert "lost while the connection was down" in failed.reason and "send it again" in failed.reason
    assert [p for p in bob.incoming_files.downloads_dir.iterdir()] == []


def test_a_download_whose_rest_never_comes_is_dropped_after_the_grace(net: MemoryNet, make_session, tmp_path):
    now = [1_700_000_000.0]
    alice, bob = _pair(net, make_session, "alice", "bob")
    bob.me.clock = lambda: now[0]
    _cut_transfer(net, alice, bob, tmp_path)
    bob.connection_lost(resumable=True)
    bob.connection_reset()
    bob.reconnected()
    now[0] += 10
    assert bob.incoming_files.expire_idle() == []
    now[0] += 25
    [failed] = bob.incoming_files.expire_idle()
    assert "did not come within 30 s" in failed.reason
    assert [p for p in bob.incoming_files.downloads_dir.iterdir()] == []
