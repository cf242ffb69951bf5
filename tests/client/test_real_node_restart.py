"""Issue #16 item 1 against REAL nodes: a file transfer cut by a node restart is
reported on both sides; nothing vanishes and nothing is said "sent" that the
receiver did not get. `socp chat --script --reconnect` clients, as in test_real_node.py.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from textual.widgets import Static

from socp.client import connection
from socp.client.connection import ChatClient, ConnectionSettings
from socp.client.events import ErrorReceived, NotDelivered, Ready
from socp.client.home import ClientHome
from socp.client.tui import ChatApp
from socp.protocol import crypto
from support.nodes import start_node
from support.wsclient import RawUser

from .chat_process import PASSWORD, Chat
from .test_real_node import (
    FAST_LINKS,
    MEGABYTE,
    NODE_A,
    NODE_B,
    make_home,
    start_chat,
    wait_listed,
    write_random,
)

pytestmark = pytest.mark.e2e
RECONNECT = ("--reconnect", "--connect-attempts", "30")
# The cut must come while alice is still sending: at FAST_FILES' pace a loaded machine
# let her hand node A the whole file before bob (decrypting ~4 ms a chunk) reached a
# quarter of it, so node A had taken it all ("sent") before node B went away.
STILL_SENDING = ("--file-rate", "40")     # 1 MiB = 2,351 chunks: about a minute


async def _progress_past(chat: Chat, fraction: float, timeout: float = 60.0) -> None:
    await chat.until("progress", lambda e: e["total"] and e["done"] >= fraction * e["total"], timeout=timeout)


async def test_a_file_cut_by_a_restart_of_the_receivers_node_is_reported_on_both_sides(keys, tmp_path, chats):
    """alice on node A sends 1 MiB to bob on node B; node B stops at ~25 % and starts
    again. Before: alice said "sent", bob was told nothing and had no file."""
    node_a = start_node(tmp_path / "a", keys[NODE_A], verifiers=1, extra_args=FAST_LINKS)
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(node_a.bootstrap_yaml())
    b_args = (*FAST_LINKS, "--bootstrap", str(bootstrap))
    node_b = start_node(tmp_path / "b", keys[NODE_B], verifiers=1, extra_args=b_args)
    try:
        alice_home, alice_id = make_home(keys, tmp_path, "alice")
        bob_home, bob_id = make_home(keys, tmp_path, "bob")
        alice = await start_chat(chats, alice_home, node_a, *STILL_SENDING)
        bob = await start_chat(chats, bob_home, node_b, *RECONNECT)
        await wait_listed(alice, {alice_id, bob_id})
        write_random(tmp_path / "big.bin", MEGABYTE)
        await alice.send(f"/file bob {tmp_path / 'big.bin'}")
        await _progress_past(bob, 0.25)
        node_b.stop()
        cut = await bob.until("info", lambda e: "cut at" in e["text"], timeout=30)
        assert "big.bin" in cut["text"]
        node_b = start_node(tmp_path / "b", keys[NODE_B], verifiers=1, port=node_b.port, extra_args=b_args)
        await bob.until("ready", timeout=60)
        # The rest cannot come (node A gave up on node B's backlog): bob is told, at
        # the latest RESUME_GRACE (30 s) after the reconnect.
        failed = await bob.until("file_failed", timeout=60)
        assert failed["name"] == "big.bin" and failed["from"] == alice_id and "interrupted" in failed["reason"]
        # The sender hears of it: the node refuses the frames it cannot deliver any
        # more (not_delivered), or the transfer ends without a "sent".
        outcome = await alice.until("not_delivered", timeout=90)
        assert (outcome["kind"], outcome["summary"], outcome["to"]) == ("file", "big.bin", bob_id)
        await asyncio.sleep(2)
        assert not alice.of("file_sent") and not bob.of("file")
        downloads = bob_home / "downloads"
        assert not downloads.exists() or [p.name for p in downloads.iterdir()] == []
        # One line per message, not one per refused chunk (before: hundreds of
        # "FILE_CHUNK not delivered" errors).
        assert len(alice.of("error")) <= 3 and len(alice.of("not_delivered")) == 1, alice.of("error")
        assert await alice.finish() == 0
        assert await bob.finish() == 0
    finally:
        node_b.stop()
        node_a.stop()


def _status(app) -> str:
    return str(app.query_one("#status", Static).render())


def _log(app) -> str:
    """Every window's lines (a DM goes to its own window)."""
    return "\n".join(line.plain for window in app.windows.items for line in window.lines)


async def _until(pilot, check, timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await pilot.pause(0.1)
    raise AssertionError("condition not met in time")


async def test_the_app_says_reconnecting_and_queues_what_is_typed_meanwhile(keys, tmp_path, chats):
    """Issue #16 item 3, on a real node restarted under a headless app. Before: the
    status line kept saying "connected to …" and a line typed meanwhile showed
    nothing until the reconnect."""
    node = start_node(tmp_path / "node", keys[NODE_A], verifiers=1)
    try:
        alice_home, _ = make_home(keys, tmp_path, "alice")
        bob_home, _ = make_home(keys, tmp_path, "bob")
        bob = await start_chat(chats, bob_home, node, *RECONNECT)
        home = ClientHome(alice_home)
        session = home.session(home.load_user_key(PASSWORD), PASSWORD,
                               server_key=crypto.decode_public_key(node.pubkey))

        def run_client(emit, lines):
            return ChatClient(session, node.url, emit, ConnectionSettings(linger=0.2, reconnect=True,
                              auto_refresh=True, backoff_max=1.0)).run(lines)

        app = ChatApp(run_client)
        async with app.run_test(size=(120, 35)) as pilot:
            await _until(pilot, lambda: "connected to" in _status(app))
            await pilot.press(*"/list", "enter")
            await _until(pilot, lambda: "online (2)" in _log(app))
            node.stop()
            await _until(pilot, lambda: "RECONNECTING" in _status(app))
            await pilot.press(*"/tell bob typed while offline", "enter")
            await _until(pilot, lambda: "queued (not connected): /tell bob typed while offline" in _log(app))
            node = start_node(tmp_path / "node", keys[NODE_A], verifiers=1, port=node.port)
            await _until(pilot, lambda: "connected to" in _status(app))
            # The queued line runs once connected: it is sent (or, should bob not be
            # back yet, refused in words), never dropped.
            await _until(pilot, lambda: "you → bob" in _log(app) or "NOT DELIVERED" in _log(app)
                         or "USER_NOT_FOUND" in _log(app))
            await pilot.press("ctrl+q")
            await pilot.pause(0.5)
        assert await bob.finish() == 0
    finally:
        node.stop()


async def test_a_message_caught_by_a_node_crash_is_restamped_and_arrives_once(keys, tmp_path, monkeypatch):
    """A DM written to the socket as the node was SIGKILLed: after the restart the
    client sends it again (it was never ACKed), the node cannot tell it from a copy
    and answers ERROR RESEND, and the client re-stamps it, silently. Before: the
    client ignored RESEND (and never sent the unacknowledged message again)."""
    node = start_node(tmp_path / "node", keys[NODE_A], verifiers=1)
    bob = RawUser(node.url, keys[1])
    bob_back = asyncio.Event()
    real_dial = connection.dial

    async def dial_once_bob_is_back(url, emit, **options):
        # Deterministic order: alice reconnects only once bob is there again.
        if readies:
            await asyncio.wait_for(bob_back.wait(), 60)
        return await real_dial(url, emit, **options)

    monkeypatch.setattr(connection, "dial", dial_once_bob_is_back)
    home_dir, _ = make_home(keys, tmp_path, "alice")
    home = ClientHome(home_dir)
    session = home.session(home.load_user_key(PASSWORD), PASSWORD, server_key=crypto.decode_public_key(node.pubkey))
    events: list = []
    readies: list = []

    def emit(event) -> None:
        events.append(event)
        if isinstance(event, Ready):
            readies.append(event)

    lines: asyncio.Queue = asyncio.Queue()
    client = ChatClient(session, node.url, emit, ConnectionSettings(reconnect=True, linger=0.2, backoff_max=1.0))
    task = asyncio.create_task(client.run(lines))
    try:
        await bob.connect(display_name="bob")
        for _ in range(200):
            if readies:
                break
            await asyncio.sleep(0.05)
        await lines.put("/tell bob warm up")
        await bob.receive("USER_DELIVER", timeout=20)
        for _ in range(100):
            if session.outbox.server_acks:
                break
            await asyncio.sleep(0.05)
        assert session.outbox.server_acks
        # Written to the socket as the node dies: never handled, never ACKed.
        caught = session.messages.tell(bob.user_id, "typed as the node crashed").frames
        session.outbox.sent(*caught)
        await asyncio.sleep(1.5)                  # the node has flushed the keys it saw
        os.killpg(node.process.pid, signal.SIGKILL)
        node.stop()
        node = start_node(tmp_path / "node", keys[NODE_A], verifiers=1, port=node.port)
        bob.inbox.clear()
        await bob.connect(display_name="bob")
        await bob.list_users()
        bob_back.set()
        deliver = await bob.receive("USER_DELIVER", timeout=60)
        assert bob.open_dm(deliver) == b"typed as the node crashed"
        assert deliver.ts > caught[0].ts and deliver.payload["ciphertext"] == caught[0].payload["ciphertext"]
        assert await bob.nothing_of("USER_DELIVER", 1.5)       # once
        assert not [e for e in events if isinstance(e, NotDelivered)]
        assert not [e for e in events if isinstance(e, ErrorReceived) and e.source == "server"], events
        await lines.put(None)
        assert await asyncio.wait_for(task, 20) == 0
    finally:
        task.cancel()
        await bob.close()
        node.stop()
