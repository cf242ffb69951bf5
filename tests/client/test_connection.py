"""The network driver (`ChatClient`) in process, two clients on the FakeNode served
over websockets on 127.0.0.1: what runs beside what, and how things stop."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest

from socp.client import render
from socp.client.connection import WHILE_AWAY_MARGIN_MS, ChatClient, ConnectionSettings, command_queue, sent_while_away
from socp.client.events import (
    ErrorReceived,
    Event,
    FileFailed,
    FileProgress,
    FileReceived,
    FileSent,
    MessageReceived,
    Ready,
)
from socp.client.sending import IDLE_NODE_GRANTS, MAX_SENDING_FILES, NODE_GRANTS, ChunkPacer

from .client_fakes import FakeNode, serve_fake_node, url_of

STEP = 10.0   # seconds: the bound of every wait


async def _until(events: list[Event], matches: Callable[[Event], bool], timeout: float = STEP) -> Event:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = next((event for event in events if matches(event)), None)
        if found is not None:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not seen within {timeout}s; saw {events[-10:]}")
        await asyncio.sleep(0.01)


class _Running:
    """One ChatClient running as a task, its events in `events`."""

    def __init__(self, session, url: str, **options) -> None:
        self.session, self.events, self.lines = session, [], command_queue()
        self.client = ChatClient(session, url, self.events.append,
                                 ConnectionSettings(connect_attempts=2, linger=0.1, **options))
        self.task = asyncio.get_running_loop().create_task(self.client.run(self.lines))

    async def ready(self) -> None:
        await _until(self.events, lambda e: isinstance(e, Ready))

    async def stop(self) -> int:
        if not self.task.done():
            await self.lines.put(None)
        return await asyncio.wait_for(self.task, STEP)


@pytest.fixture
async def pair(make_session, tmp_path):
    """alice (chunks paced at 20/s, so a 100 KB file takes 11 s) and bob, connected."""
    server = await serve_fake_node(FakeNode())
    alice = _Running(make_session("alice"), url_of(server), file_chunk_rate=20, file_chunk_burst=1)
    bob = _Running(make_session("bob"), url_of(server))
    try:
        await alice.ready()
        await bob.ready()
        yield alice, bob
    finally:
        await _shut_down(server, alice, bob)


async def test_a_tell_is_delivered_while_a_file_is_sent_and_cancel_stops_the_file(pair, tmp_path):
    alice, bob = pair
    big = tmp_path / "big file.bin"
    big.write_bytes(os.urandom(100_000))
    loop = asyncio.get_running_loop()
    await alice.lines.put(f"/file bob {big}")
    await _until(alice.events, lambda e: isinstance(e, FileProgress) and e.done > 0)
    sent_at = loop.time()
    await alice.lines.put("/tell bob not stuck behind the file")
    dm = await _until(bob.events, lambda e: isinstance(e, MessageReceived), timeout=3)
    assert dm.text == "not stuck behind the file" and loop.time() - sent_at < 2
    assert not any(isinstance(e, (FileSent, FileFailed)) for e in alice.events)   # still sending

    await alice.lines.put("/cancel big file.bin")
    stopped = await _until(alice.events, lambda e: isinstance(e, FileFailed))
    assert stopped.name == "big file.bin" and "cancelled" in stopped.reason
    # The FILE_END came early: bob's client drops the partial file at once.
    dropped = await _until(bob.events, lambda e: isinstance(e, FileFailed))
    assert dropped.file_id == stopped.file_id
    assert not any(isinstance(e, FileReceived) for e in bob.events)
    assert [p.name for p in (bob.session.incoming_files.downloads_dir).iterdir()] == []

    await alice.lines.put("/cancel big file.bin")   # nothing of that name is being sent any more
    refused = await _until(alice.events, lambda e: isinstance(e, ErrorReceived))
    assert refused.code == "USAGE" and "no file called" in refused.detail
    assert await alice.stop() == 0


async def test_quit_stops_the_files_being_sent_and_their_number_is_bounded(pair, tmp_path):
    alice, bob = pair
    paths = []
    for n in range(MAX_SENDING_FILES + 1):
        paths.append(tmp_path / f"file{n}.bin")
        paths[-1].write_bytes(os.urandom(50_000))
    for path in paths:
        await alice.lines.put(f"/file bob {path}")
    refused = await _until(alice.events, lambda e: isinstance(e, ErrorReceived))
    assert refused.code == "USAGE" and f"already sending {MAX_SENDING_FILES} files" in refused.detail
    await alice.lines.put("/quit")
    assert await asyncio.wait_for(alice.task, 3) == 0   # no waiting for the files
    failed = [e for e in alice.events if isinstance(e, FileFailed)]
    assert sorted(e.name for e in failed) == [p.name for p in paths[:MAX_SENDING_FILES]]
    assert all("/quit" in e.reason for e in failed)
    assert not any(isinstance(e, FileSent) for e in alice.events)


async def test_a_missing_file_has_its_own_error_code(pair, tmp_path):
    alice, _ = pair
    await alice.lines.put(f"/file bob {tmp_path / 'no such file.txt'}")
    await alice.lines.put(f"/file bob {tmp_path}")
    await _until(alice.events, lambda e: len([x for x in alice.events if isinstance(x, ErrorReceived)]) == 2)
    missing, directory = [e for e in alice.events if isinstance(e, ErrorReceived)]
    assert (missing.code, directory.code) == ("FILE_NOT_FOUND", "FILE_NOT_FOUND")
    assert "no such file.txt" in missing.detail and "not a regular file" in directory.detail


async def test_the_client_drops_a_download_whose_sender_went_silent(make_session, tmp_path):
    """alice sends one chunk a second; bob gives up on a file after 0.3 s of silence."""
    server = await serve_fake_node(FakeNode())
    alice = _Running(make_session("alice"), url_of(server), file_chunk_rate=1, file_chunk_burst=1)
    bob = _Running(make_session("bob", clock=time.time, download_idle_timeout=0.3), url_of(server))
    try:
        await alice.ready()
        await bob.ready()
        slow = tmp_path / "slow.bin"
        slow.write_bytes(os.urandom(5000))
        await alice.lines.put(f"/file bob {slow}")
        dropped = await _until(bob.events, lambda e: isinstance(e, FileFailed), timeout=5)
        assert dropped.name == "slow.bin" and "went silent" in dropped.reason
        assert list(bob.session.incoming_files.downloads_dir.iterdir()) == []
        await alice.lines.put("/quit")
        assert await alice.stop() == 0 and await bob.stop() == 0
    finally:
        await _shut_down(server, alice, bob)


async def _shut_down(server, *clients: _Running) -> None:
    for running in clients:
        running.task.cancel()
        await asyncio.gather(running.task, return_exceptions=True)
        running.session.close()
    server.close()
    await server.wait_closed()


def test_the_chunk_pacer_follows_the_node_grants_and_no_slower():
    """2351 chunks (1 MiB) through the pacer at the node's guaranteed grants: the
    connection's (190/s after 450) sets the time, 10.0 s, and no second ever carries
    more than it allows."""
    now = [0.0]
    pacer = ChunkPacer(NODE_GRANTS, lambda: now[0])
    sent_at = []
    for _ in range(2351):
        now[0] += pacer.delay()
        sent_at.append(now[0])
    assert sent_at[449] == 0.0 and sent_at[450] > 0          # the connection's burst at once
    assert sent_at[-1] == pytest.approx((2351 - 450) / 190, abs=0.1)
    for start in range(0, 15):
        in_window = sum(start <= t < start + 1 for t in sent_at)
        assert in_window <= 450 + 190


def test_the_chunk_pacer_uses_what_an_idle_node_spares_until_the_node_refuses():
    """Issue #16: on an idle node 1 MiB goes at the idle grant (240/s after the same
    burst of 450), not the floor's 190/s; once the node refuses a frame (RATE_LIMITED,
    OVERLOADED) the pacer keeps to the floor, from an empty burst, for the cooldown."""
    now = [0.0]
    pacer = ChunkPacer(NODE_GRANTS, lambda: now[0], idle=IDLE_NODE_GRANTS, cooldown=60.0)
    sent_at = []
    for _ in range(2351):
        now[0] += pacer.delay()
        sent_at.append(now[0])
    assert sent_at[449] == 0.0 and sent_at[450] > 0
    assert sent_at[-1] == pytest.approx((2351 - 450) / 240, abs=0.1)
    pacer.node_refused()
    assert not pacer.on_idle_grant
    gaps = []
    for _ in range(10):
        wait = pacer.delay()
        now[0] += wait
        gaps.append(wait)
    assert all(gap == pytest.approx(1 / 190, abs=1e-3) for gap in gaps)   # the connection's floor, no burst
    now[0] += 60.0
    assert pacer.on_idle_grant
    # A user's own cap (--file-rate) holds on the idle grant too.
    capped = ChunkPacer(NODE_GRANTS, lambda: now[0], idle=IDLE_NODE_GRANTS, caps=((10.0, 1),))
    assert capped.delay() == 0.0 and capped.delay() == pytest.approx(0.1)


async def test_a_message_sent_long_before_our_hello_is_marked_while_away(make_session, tmp_path):
    """A node that kept DMs for us (#19) hands them over at login; the client says they
    came while we were away. Alice's clock runs 5 minutes behind, so her DM is stamped
    long before bob's hello; a DM stamped now is not marked."""
    server = await serve_fake_node(FakeNode())
    late = _Running(make_session("alice", clock=lambda: time.time() - 300), url_of(server))
    now = _Running(make_session("carol", clock=time.time), url_of(server))
    bob = _Running(make_session("bob", clock=time.time), url_of(server))
    try:
        for running in (late, now, bob):
            await running.ready()
        await late.lines.put(f"/tell {bob.session.me.user_id} kept for you")
        await now.lines.put(f"/tell {bob.session.me.user_id} just now")
        kept = await _until(bob.events, lambda e: isinstance(e, MessageReceived) and e.text == "kept for you")
        fresh = await _until(bob.events, lambda e: isinstance(e, MessageReceived) and e.text == "just now")
        assert kept.while_away and not fresh.while_away
        line = render.event_text(kept)
        assert line is not None and "while you were away" in line.plain
        assert "while you were away" not in render.event_text(fresh).plain
    finally:
        await _shut_down(server, late, now, bob)


def test_while_away_needs_a_hello_and_a_margin():
    hello = 1_000_000_000_000
    assert not sent_while_away(hello - 10 * WHILE_AWAY_MARGIN_MS, 0)          # no hello yet
    assert not sent_while_away(hello - WHILE_AWAY_MARGIN_MS + 1, hello)       # clocks may differ this much
    assert sent_while_away(hello - WHILE_AWAY_MARGIN_MS - 1, hello)
