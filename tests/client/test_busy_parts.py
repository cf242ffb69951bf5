"""A file survives a node that refuses some of its parts for a moment (OVERLOADED,
RATE_LIMITED naming them): the sender sends them again after the pause the node asks
for, the receiver holds the parts that overtook them, and the FILE_END waits until
the node has taken every part. Refused too often, the file fails as before.

The receiver's download (downloads.py) and the sender's session are tested without
sockets; the last test runs two ChatClients over websockets on 127.0.0.1 against the
FakeNode, refusing parts by name as our node does."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

import pytest

from socp.client import downloads
from socp.client.downloads import IncomingFile, TransferFailed
from socp.client.events import FileFailed, FileReceived, FileSent, NotDelivered, PartsToRetry
from socp.client.file_resume import RESUME_MARGIN_CHUNKS, resume_start
from socp.client.outbox import MAX_PART_RETRIES, RETRY_PAUSE, RETRY_PAUSE_BOUNDS, retry_pause
from socp.protocol import frames
from socp.protocol.acks import msg_ref
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T

from .client_fakes import FakeNode, MemoryNet, serve_fake_node, url_of
from .test_connection import _Running, _shut_down, _until
from .test_session import _pair

# --- the receiver holds what overtook a missing part -----------------------------------------


def _download(tmp_path: Path, parts: list[bytes], *, hashed: bool = True) -> IncomingFile:
    whole = b"".join(parts)
    return IncomingFile.open(tmp_path, file_id="f", sender="alice", name="x.bin", size=len(whole),
                             sha256=hashlib.sha256(whole).hexdigest() if hashed else "", channel="dm",
                             verified=True, creator_fingerprint="", now=0.0)


PARTS = [bytes([i]) * 100 for i in range(5)]


def test_parts_past_a_missing_one_are_held_and_written_once_it_comes(tmp_path):
    download = _download(tmp_path, PARTS)
    assert download.write(0, PARTS[0])
    for index in (2, 4, 3):                       # part 1 was refused; these overtook it
        assert not download.write(index, PARTS[index])
    assert (download.next_index, download.done, download.missing_part) == (1, 100, 1)
    assert download.write(1, PARTS[1])            # it came again: all four go to disk
    assert (download.next_index, download.done, download.missing_part, download.held_bytes) == (5, 500, None, 0)
    download.check()
    assert download.tmp_path.read_bytes() == b"".join(PARTS)


def test_a_copy_of_a_part_is_skipped_with_a_sha256_and_refused_without(tmp_path):
    hashed = _download(tmp_path, PARTS)
    hashed.write(0, PARTS[0])
    hashed.write(2, PARTS[2])
    assert not hashed.write(0, PARTS[0]) and not hashed.write(2, PARTS[2])
    assert (hashed.done, hashed.held_bytes) == (100, 100)
    unhashed = _download(tmp_path, PARTS, hashed=False)
    unhashed.write(0, PARTS[0])
    with pytest.raises(TransferFailed, match="chunk 0 arrived again"):
        unhashed.write(0, PARTS[0])


def test_a_part_that_never_comes_fails_the_file_at_its_end_naming_it(tmp_path):
    download = _download(tmp_path, PARTS)
    for index in (0, 2, 3, 4):
        download.write(index, PARTS[index])
    with pytest.raises(TransferFailed, match=r"part 1 never came \(3 later parts did\)"):
        download.check()


def test_the_parts_held_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "MAX_HELD_BYTES", 250)
    download = _download(tmp_path, PARTS)
    download.write(2, PARTS[2])
    download.write(3, PARTS[3])
    with pytest.raises(TransferFailed, match="part 0 was lost on the way .2 later parts came without it"):
        download.write(4, PARTS[4])


def test_held_parts_count_against_the_announced_size(tmp_path):
    download = _download(tmp_path, PARTS[:2])
    download.write(1, PARTS[1])
    download.write(2, PARTS[2])                   # 200 bytes held: the whole announced size
    with pytest.raises(TransferFailed, match="more data than the announced 200 bytes"):
        download.write(3, PARTS[3])


# --- the sender sends a refused part again -------------------------------------------------------


def test_the_pause_follows_the_nodes_retry_hint_within_bounds():
    assert retry_pause("queued for the next 300 ms; retry after 120 ms (retry_after_ms=120)") == 0.12
    assert retry_pause("retry after 1 ms (retry_after_ms=1)") == RETRY_PAUSE_BOUNDS[0]
    assert retry_pause("retry_after_ms=600000") == RETRY_PAUSE_BOUNDS[1]
    assert retry_pause("the recipient's server is not keeping up; retry later") == RETRY_PAUSE


def _error(net: MemoryNet, session, code: str, frame: Envelope, detail: str = "busy (retry_after_ms=200)") -> str:
    return Envelope(T.ERROR, net.node.server_id, session.me.user_id, 1,
                    {"code": code, "detail": detail, "msg_ref": msg_ref(frame)}).to_wire()


def _ack(net: MemoryNet, session, frame: Envelope) -> list:
    return session.handle(frames.ack(net.node.server_id, session.me.user_id, 2, msg_ref(frame)).to_wire())


def _acking_sender(net, make_session, tmp_path, size: int = 3000):
    """alice, with a server that has ACKed her before, and her file's steps to bob."""
    alice, bob = _pair(net, make_session, "alice", "bob")
    [warm] = alice.messages.tell("bob", "warm up").frames
    alice.outbox.sent(warm)
    _ack(net, alice, warm)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(size))
    return alice, bob, source, list(alice.outgoing_files.send("bob", source))


def test_a_part_refused_for_load_goes_again_restamped_until_it_was_refused_too_often(net, make_session, tmp_path):
    alice, _, _, steps = _acking_sender(net, make_session, tmp_path)
    sent = [frame for step in steps for frame in step.frames]
    alice.outbox.sent(*sent)
    chunk = next(frame for frame in sent if frame.type == T.FILE_CHUNK and frame.payload["index"] == 2)
    for attempt in range(MAX_PART_RETRIES):
        [again] = alice.handle(_error(net, alice, "OVERLOADED", chunk))
        assert isinstance(again, PartsToRetry) and again.pause == 0.2, attempt
        [copy] = again.frames
        assert copy.payload == chunk.payload and copy.ts > chunk.ts
        alice.outbox.sent(copy)
        chunk = copy
    [refused] = alice.handle(_error(net, alice, "RATE_LIMITED", chunk))
    assert isinstance(refused, NotDelivered) and refused.kind == "file" and refused.summary == "big.bin"


def test_other_refusals_and_other_frames_are_not_sent_again(net, make_session, tmp_path):
    alice, _, _, steps = _acking_sender(net, make_session, tmp_path)
    sent = [frame for step in steps for frame in step.frames]
    alice.outbox.sent(*sent)
    chunk = next(frame for frame in sent if frame.type == T.FILE_CHUNK)
    [refused] = alice.handle(_error(net, alice, "USER_NOT_FOUND", chunk, "no route"))
    assert isinstance(refused, NotDelivered) and refused.code == "USER_NOT_FOUND"
    [dm] = alice.messages.tell("bob", "a busy node refuses me").frames
    alice.outbox.sent(dm)
    [refused] = alice.handle(_error(net, alice, "OVERLOADED", dm))
    assert isinstance(refused, NotDelivered) and refused.kind == "dm"


def test_the_file_end_waits_until_the_node_took_every_part(net, make_session, tmp_path):
    alice, _, _, steps = _acking_sender(net, make_session, tmp_path)
    *sent_steps, settle, end = steps
    assert settle.settle and not settle.frames and [f.type for f in end.frames] == [T.FILE_END]
    file_id = end.frames[0].payload["file_id"]
    chunks = [frame for step in sent_steps for frame in step.frames if frame.type == T.FILE_CHUNK]
    alice.outbox.sent(*(frame for step in sent_steps for frame in step.frames))
    assert not alice.outgoing_files.settled(file_id)
    _ack(net, alice, chunks[-2])
    assert not alice.outgoing_files.settled(file_id)
    [again] = alice.handle(_error(net, alice, "OVERLOADED", chunks[-1]))
    assert not alice.outgoing_files.settled(file_id)     # the refused part is not sent again yet
    alice.outbox.sent(*again.frames)
    _ack(net, alice, again.frames[0])
    assert alice.outgoing_files.settled(file_id)


def test_a_server_that_never_acks_gets_no_wait_before_the_file_end(net, make_session, tmp_path):
    alice, _ = _pair(net, make_session, "alice", "bob")
    source = tmp_path / "small.bin"
    source.write_bytes(b"q" * 1000)
    assert not [step for step in alice.outgoing_files.send("bob", source) if step.settle]


def test_a_cut_file_resumes_no_later_than_a_part_still_to_go_again():
    assert resume_start(1000, {900}) == 1000 - RESUME_MARGIN_CHUNKS
    assert resume_start(1000, {700, 650}) == 650
    assert resume_start(-1, {5}) == 0


def test_in_memory_the_receiver_saves_the_file_whole_when_a_refused_part_comes_last(net, make_session, tmp_path):
    alice, bob, source, steps = _acking_sender(net, make_session, tmp_path, size=4000)
    refused_step = next(i for i, step in enumerate(steps)
                        if step.frames and step.frames[0].type == T.FILE_CHUNK and step.frames[0].payload["index"] == 3)
    *parts, settle, end = steps
    for index, step in enumerate(parts):
        alice.outbox.sent(*step.frames)
        if index != refused_step:                   # the node refused part 3; the rest reach bob
            net.send(alice, step)
    [again] = alice.handle(_error(net, alice, "OVERLOADED", steps[refused_step].frames[0]))
    assert not [e for e in net.take(bob) if isinstance(e, (FileReceived, FileFailed))]   # bob waits for part 3
    alice.outbox.sent(*again.frames)
    net.send(alice, list(again.frames))
    alice.outbox.sent(*end.frames)
    net.send(alice, end)
    [received] = net.take(bob, FileReceived)
    assert Path(received.path).read_bytes() == source.read_bytes()
    [sent] = _ack(net, alice, end.frames[0])
    assert isinstance(sent, FileSent)


# --- over websockets: two clients and a node that refuses parts by name -----------------------


class _BusyNode:
    """Refuses some FILE_CHUNKs by name, as our busy node does (each index as many
    times as `refusals` says), and records the order the file's frames came in."""

    def __init__(self, refusals: dict[int, int]) -> None:
        self.refusals = dict(refusals)
        self.seen: list[tuple[str, int]] = []

    def __call__(self, frame: Envelope) -> tuple[str, str] | None:
        if frame.type not in (T.FILE_CHUNK, T.FILE_END):
            return None
        index = frame.payload.get("index", -1)
        if self.refusals.get(index, 0) > 0:
            self.refusals[index] -= 1
            self.seen.append(("refused", index))
            return "OVERLOADED", "the node is busy; retry after 50 ms (retry_after_ms=50)"
        self.seen.append((frame.type, index))
        return None


async def test_a_busy_node_refusing_parts_costs_a_pause_not_the_file(make_session, tmp_path):
    busy = _BusyNode({2: 1, 5: 2, 11: 1})
    node = FakeNode(acks=True, refuse=busy, error_delay=0.2)   # the last part's refusal comes late
    server = await serve_fake_node(node)
    alice = _Running(make_session("alice", sign_file_chunks=False), url_of(server))
    bob = _Running(make_session("bob"), url_of(server))
    try:
        await alice.ready()
        await bob.ready()
        await alice.lines.put("/tell bob first")     # an ACK: alice knows this server ACKs
        await _until(bob.events, lambda e: e.__class__.__name__ == "MessageReceived")
        source = tmp_path / "twelve parts.bin"
        source.write_bytes(os.urandom(446 * 12 - 10))
        await alice.lines.put(f"/file bob {source}")
        received = await _until(bob.events, lambda e: isinstance(e, FileReceived))
        assert Path(received.path).read_bytes() == source.read_bytes()
        await _until(alice.events, lambda e: isinstance(e, FileSent))
        assert not [e for e in alice.events + bob.events if isinstance(e, (FileFailed, NotDelivered))]
        taken = [index for kind, index in busy.seen if kind == T.FILE_CHUNK]
        assert sorted(taken) == list(range(12))                  # each part taken once
        assert busy.seen[-1] == (T.FILE_END, -1)                  # after every part, the retried ones too
        assert Counter(index for kind, index in busy.seen if kind == "refused") == {2: 1, 5: 2, 11: 1}
    finally:
        await _shut_down(server, alice, bob)


def test_a_part_that_can_no_longer_go_again_makes_the_file_not_delivered_once(net, make_session, tmp_path):
    alice, _, _, steps = _acking_sender(net, make_session, tmp_path)
    file_id = steps[0].frames[0].payload["file_id"]
    sent = [frame for step in steps for frame in step.frames]     # its FILE_END went too (SETTLE_WAIT passed)
    alice.outbox.sent(*sent)
    [lost] = alice.outgoing_files.part_lost(file_id)
    assert isinstance(lost, NotDelivered) and (lost.summary, lost.code, lost.file_id) == ("big.bin", "OVERLOADED",
                                                                                          file_id)
    assert alice.outgoing_files.part_lost(file_id) == []


def test_a_lost_part_is_reported_with_the_code_the_node_refused_it_with(net, make_session, tmp_path):
    alice, _, _, steps = _acking_sender(net, make_session, tmp_path)
    file_id = steps[0].frames[0].payload["file_id"]
    alice.outbox.sent(*[frame for step in steps for frame in step.frames])
    [lost] = alice.outgoing_files.part_lost(file_id, "RATE_LIMITED")
    assert isinstance(lost, NotDelivered) and lost.code == "RATE_LIMITED"


def test_a_cancelled_file_says_nothing_of_its_late_refused_parts(net, make_session, tmp_path):
    alice, _, _, steps = _acking_sender(net, make_session, tmp_path)
    file_id = steps[0].frames[0].payload["file_id"]
    alice.outbox.sent(*steps[0].frames, *steps[1].frames)
    alice.outgoing_files.abandon(file_id, steps[0].frames[0].to, "big.bin", "you cancelled it (/cancel)")
    assert alice.outgoing_files.part_lost(file_id) == []
