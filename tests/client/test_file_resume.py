"""Issue #16 item 1: a file cut by a lost connection goes on after the reconnect, or
both sides are told it failed; never a wrong file. The decisions (file_resume.py) and
two sessions paired in memory (client_fakes.MemoryNet), no sockets. The real nodes'
run is test_real_node_resume.py."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from socp.client.events import FileFailed, FileReceived, FileSent, Info
from socp.client.file_resume import (
    MAX_CUTS,
    RESUME_MARGIN_CHUNKS,
    RESUME_WINDOW,
    Manifest,
    UnconfirmedFile,
    join_refusal,
    resume_refusal,
    resume_start,
)
from socp.client.outgoing_files import sign_manifest
from socp.client.render import event_text
from socp.protocol import frames
from socp.protocol.acks import msg_ref
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T
from socp.protocol.limits import OAEP_MAX_PLAINTEXT

from .client_fakes import MemoryNet

# --- the decisions ------------------------------------------------------------------


def _cut(**fields) -> UnconfirmedFile:
    values = dict(first_id="f1", file_id="f1", to="u", name="big.bin", path=Path("big.bin"), size=1000,
                  sha256="ab" * 32, channel="dm", done=250, cuts=1, cut_at=100.0)
    values.update(fields)
    return UnconfirmedFile(**values)  # type: ignore[arg-type] - a dict of mixed field types, each right


def test_a_cut_file_goes_again_from_the_margin_before_the_last_acknowledged_chunk():
    assert resume_start(-1) == 0                         # nothing acknowledged: the whole file
    assert resume_start(0) == 0
    assert resume_start(RESUME_MARGIN_CHUNKS + 10) == 10
    assert resume_start(1000) == 1000 - RESUME_MARGIN_CHUNKS


def test_a_cut_file_resumes_only_with_reconnect_within_the_window_and_a_few_cuts():
    assert resume_refusal(_cut(), reconnect=True, now=100.0 + RESUME_WINDOW) == ""
    assert "--reconnect" in resume_refusal(_cut(), reconnect=False, now=100.0)
    assert "within 90 s" in resume_refusal(_cut(), reconnect=True, now=100.0 + RESUME_WINDOW + 1)
    assert resume_refusal(_cut(cuts=MAX_CUTS), reconnect=True, now=100.0) == ""
    assert f"cut {MAX_CUTS + 1} times" in resume_refusal(_cut(cuts=MAX_CUTS + 1), reconnect=True, now=100.0)


def test_a_resumed_transfer_joins_only_the_same_file_from_the_same_sender():
    earlier = Manifest("alice", "big.bin", 1000, "ab" * 32, "dm")
    assert join_refusal(earlier, earlier) == ""
    for field, value in (("sender", "mallory"), ("name", "other.bin"), ("size", 999), ("sha256", "cd" * 32),
                         ("channel", "public")):
        other = Manifest(**{**_fields(earlier), field: value})
        assert join_refusal(earlier, other), field
    unhashed = Manifest("alice", "big.bin", 1000, "", "dm")
    assert "SHA-256" in join_refusal(unhashed, unhashed)


def _fields(manifest: Manifest) -> dict:
    return {name: getattr(manifest, name) for name in ("sender", "name", "size", "sha256", "channel")}


# --- two sessions in memory -----------------------------------------------------------


def _ack(net: MemoryNet, session, frame: Envelope) -> list:
    return session.handle(frames.ack(net.node.server_id, session.me.user_id, 2, msg_ref(frame)).to_wire())


def _deliver(net: MemoryNet, session, steps) -> list[Envelope]:
    """Hand the steps' frames to the node (and so to the receiver), in wire order."""
    sent = []
    for actions in steps:
        session.outbox.sent(*actions.frames)
        net.send(session, actions)
        sent.extend(actions.frames)
    return sent


def _source(tmp_path: Path, chunks: int) -> tuple[Path, bytes]:
    data = bytes((i * 7 + i // 446) % 256 for i in range(chunks * OAEP_MAX_PLAINTEXT - 100))
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, data


def _senders(net, make_session):
    alice = make_session("alice", sign_file_chunks=False)
    bob = make_session("bob")
    for session in (alice, bob):
        net.join(session)
    net.refresh(alice, bob)
    [warm] = alice.messages.tell("bob", "warm up").frames
    alice.outbox.sent(warm)
    _ack(net, alice, warm)                 # this server ACKs: "sent" waits for the ACK of FILE_END
    net.take(alice)
    net.take(bob)
    return alice, bob


def _chunks(sent: list[Envelope]) -> list[int]:
    return [f.payload["index"] for f in sent if f.type == T.FILE_CHUNK]


def test_a_cut_transfer_goes_on_under_a_new_id_and_the_receiver_saves_the_same_bytes(net, make_session, tmp_path):
    alice, bob = _senders(net, make_session)
    source, data = _source(tmp_path, 300)
    steps = list(alice.outgoing_files.send("bob", source))        # FILE_START, 300 chunks, FILE_END
    first = _deliver(net, alice, steps[:281])           # FILE_START and chunks 0..279 reach bob
    assert _ack(net, alice, first[270]) == []           # the node acknowledged chunks 0..269
    first_id = first[0].payload["file_id"]
    [going_on] = alice.connection_lost(resumable=True)
    assert isinstance(going_on, Info) and "big.bin to bob" in going_on.text and "goes on" in going_on.text
    alice.connection_reset()
    [cut], failed = alice.outgoing_files.take_cut()
    assert failed == []
    again = _deliver(net, alice, list(alice.outgoing_files.resume(cut)))
    start = again[0]
    assert start.type == T.FILE_START and start.payload["resumes"] == first_id
    assert start.payload["file_id"] != first_id
    assert _chunks(again) == list(range(269 - RESUME_MARGIN_CHUNKS, 300))
    events = net.take(bob)
    assert any(isinstance(e, Info) and "goes on after alice's connection was lost" in e.text for e in events)
    [received] = [e for e in events if isinstance(e, FileReceived)]
    assert not [e for e in events if isinstance(e, FileFailed)]
    assert Path(received.path).read_bytes() == data and received.file_id == first_id
    [sent] = _ack(net, alice, again[-1])
    assert isinstance(sent, FileSent) and sent.resumes == 1 and "resumed" in event_text(sent).plain


def test_a_gap_the_resumed_transfer_cannot_fill_fails_the_file_and_saves_nothing(net, make_session, tmp_path):
    alice, bob = _senders(net, make_session)
    source, _ = _source(tmp_path, 300)
    steps = list(alice.outgoing_files.send("bob", source))
    first = _deliver(net, alice, steps[:11])            # chunks 0..9 reach bob
    for actions in steps[11:290]:                        # the node took 10..288, then lost them
        alice.outbox.sent(*actions.frames)
    _ack(net, alice, steps[289].frames[0])
    alice.connection_lost(resumable=True)
    alice.connection_reset()
    [cut], _ = alice.outgoing_files.take_cut()
    again = _deliver(net, alice, list(alice.outgoing_files.resume(cut)))
    assert _chunks(again)[0] == 288 - RESUME_MARGIN_CHUNKS
    [failed] = net.take(bob, FileFailed)
    assert failed.file_id == first[0].payload["file_id"] and failed.label == "alice"
    assert "part 10 never came" in failed.reason and "ask alice to send it again" in failed.reason
    assert list(bob.incoming_files.downloads_dir.iterdir()) == []
    assert not net.take(bob, FileReceived)


def test_nothing_acknowledged_means_the_whole_file_again_taken_as_new_by_a_receiver_without_the_start(
        net, make_session, tmp_path):
    alice, bob = _senders(net, make_session)
    source, data = _source(tmp_path, 3)
    steps = list(alice.outgoing_files.send("bob", source))
    for actions in steps[:3]:                            # written, never handled by the node
        alice.outbox.sent(*actions.frames)
    alice.connection_lost(resumable=True)
    alice.connection_reset()
    [cut], _ = alice.outgoing_files.take_cut()
    again = _deliver(net, alice, list(alice.outgoing_files.resume(cut)))
    assert _chunks(again) == [0, 1, 2]
    [received] = net.take(bob, FileReceived)
    assert Path(received.path).read_bytes() == data


def test_a_resumed_start_for_another_file_does_not_join(net, make_session, tmp_path):
    alice, bob = _senders(net, make_session)
    source, _ = _source(tmp_path, 5)
    steps = list(alice.outgoing_files.send("bob", source))
    first = _deliver(net, alice, steps[:3])
    first_id = first[0].payload["file_id"]
    net.take(bob)
    # A well-signed FILE_START that names bob's download but announces another name.
    ts = alice.me.now_ms()
    payload = {"file_id": "7d0c7a52-4c1b-4c57-9d7a-5c2b6a1b0a11", "name": "other.bin",
               "size": first[0].payload["size"], "sha256": first[0].payload["sha256"], "mode": "dm",
               "resumes": first_id, "sender_pub": alice.me.pubkey}
    payload["content_sig"] = sign_manifest(alice.me, payload, bob.me.user_id, ts)
    net.send(alice, alice.me.sign(Envelope(T.FILE_START, alice.me.user_id, bob.me.user_id, ts, payload)))
    [refused] = net.take(bob, FileFailed)
    assert refused.name == "other.bin" and "name differs" in refused.reason
    assert first_id in bob.incoming_files.downloads         # the earlier download waits on


def test_without_reconnect_the_cut_file_fails_in_words_naming_the_receiver(net, make_session, tmp_path):
    alice, _ = _senders(net, make_session)
    source, _ = _source(tmp_path, 8)
    _deliver(net, alice, islice(alice.outgoing_files.send("bob", source), 3))     # 2 of 8 parts handed on
    [failed] = alice.connection_lost(resumable=False)
    assert isinstance(failed, FileFailed) and failed.outgoing and failed.label == "bob"
    assert "lost at 25 %" in failed.reason and "--reconnect" in failed.reason
    line = event_text(failed).plain
    assert "big.bin to bob" in line and alice.me.user_id not in line and failed.file_id not in line
    assert alice.outgoing_files.take_cut() == ([], [])


def test_a_file_cut_too_often_or_for_too_long_fails(net, make_session, tmp_path):
    now = [1_700_000_000.0]
    alice, _ = _senders(net, make_session)
    alice.me.clock = lambda: now[0]
    source, _ = _source(tmp_path, 2)
    _deliver(net, alice, islice(alice.outgoing_files.send("bob", source), 2))
    for _ in range(MAX_CUTS):
        assert not [e for e in alice.connection_lost(resumable=True) if isinstance(e, FileFailed)]
        alice.connection_reset()
        [cut], _ = alice.outgoing_files.take_cut()
        _deliver(net, alice, islice(alice.outgoing_files.resume(cut), 2))
    [failed] = alice.connection_lost(resumable=True)
    assert isinstance(failed, FileFailed) and f"cut {MAX_CUTS + 1} times" in failed.reason
    # Another file, cut once, whose reconnect took longer than the window.
    _deliver(net, alice, islice(alice.outgoing_files.send("bob", source), 2))
    alice.connection_lost(resumable=True)
    now[0] += RESUME_WINDOW + 5
    resumable, [late] = alice.outgoing_files.take_cut()
    assert resumable == [] and isinstance(late, FileFailed) and "95 s later" in late.reason


def test_a_resume_of_a_file_the_receiver_already_saved_is_ignored(net, make_session, tmp_path):
    """FILE_END went and bob saved the file, but the ACK was lost with the connection:
    alice sends the end again; bob says nothing more."""
    alice, bob = _senders(net, make_session)
    source, _ = _source(tmp_path, 4)
    _deliver(net, alice, list(alice.outgoing_files.send("bob", source)))
    assert len(net.take(bob, FileReceived)) == 1
    assert [type(e) for e in alice.connection_lost(resumable=True)] == [Info]
    alice.connection_reset()
    [cut], _ = alice.outgoing_files.take_cut()
    _deliver(net, alice, list(alice.outgoing_files.resume(cut)))
    events = net.take(bob)
    assert not [e for e in events if isinstance(e, (FileFailed, FileReceived))]
    assert len(list(bob.incoming_files.downloads_dir.iterdir())) == 1


def test_a_cut_public_file_goes_on_and_every_member_saves_the_same_bytes(net, make_session, tmp_path):
    alice, bob = _senders(net, make_session)
    carol = make_session("carol")
    net.join(carol)
    net.refresh(alice, bob, carol)
    for session in (alice, bob, carol):
        net.take(session)
    source, data = _source(tmp_path, 300)
    steps = list(alice.outgoing_files.send("public", source))     # key shares, FILE_START, 300 chunks, FILE_END
    first = _deliver(net, alice, steps[:-20])           # chunks 0..280 reach the channel
    [acked] = [f for f in first if f.type == T.FILE_CHUNK and f.payload["index"] == 269]
    assert _ack(net, alice, acked) == []                # the node acknowledged chunks 0..269
    alice.connection_lost(resumable=True)
    alice.connection_reset()
    [cut], failed = alice.outgoing_files.take_cut()
    assert failed == [] and cut.channel == "public"
    again = _deliver(net, alice, list(alice.outgoing_files.resume(cut)))
    [first_start] = [f for f in first if f.type == T.FILE_START]
    [start] = [f for f in again if f.type == T.FILE_START]        # after the channel key shares, if any
    assert start.payload["resumes"] == first_start.payload["file_id"]
    assert _chunks(again) == list(range(269 - RESUME_MARGIN_CHUNKS, 300))
    for member in (bob, carol):
        events = net.take(member)
        assert not [e for e in events if isinstance(e, FileFailed)]
        [received] = [e for e in events if isinstance(e, FileReceived)]
        assert received.channel == "public" and Path(received.path).read_bytes() == data
