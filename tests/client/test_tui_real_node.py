"""The textual app headless (Pilot) against a REAL node, as a user at 80x24 sees it:
join and leave lines, a DM opening its window, answering in it, a file offer
accepted with /accept, /files. The peer is a `socp chat --script` subprocess."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from socp.client.connection import ChatClient, ConnectionSettings
from socp.client.home import ClientHome
from socp.client.tui import ChatApp
from socp.protocol import crypto

from .chat_process import PASSWORD
from .test_real_node import make_home, node_a, start_chat  # noqa: F401 - node_a: a pytest fixture, used by name

pytestmark = pytest.mark.e2e


async def until(pilot, check: Callable[[], bool], timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await pilot.pause(0.1)
    raise AssertionError("timed out")


def app_for(node, home, *, auto_accept: int) -> tuple[ChatApp, asyncio.Event]:
    client_home = ClientHome(home)
    session = client_home.session(client_home.load_user_key(PASSWORD), PASSWORD,
                                  server_key=crypto.decode_public_key(node.pubkey))
    session.incoming_files.auto_accept_bytes = auto_accept
    ready = asyncio.Event()

    def run_client(emit, lines):
        def observed(event):
            emit(event)
            if type(event).__name__ == "Ready":
                ready.set()

        return ChatClient(session, node.url, observed, ConnectionSettings(
            connect_attempts=3, linger=0.2, reconnect=True, auto_refresh=True, presence_poll=0.5)).run(lines)

    return ChatApp(run_client), ready


async def test_windows_presence_dms_and_a_file_offer_at_80x24(node_a, keys, tmp_path, chats):  # noqa: F811 - the fixture imported above
    alice_home, alice_id = make_home(keys, tmp_path, "alice")
    bob_home, bob_id = make_home(keys, tmp_path, "bob")
    app, ready = app_for(node_a, alice_home, auto_accept=1000)
    words = [f"word{n:02d}" for n in range(45)]
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(ready.wait(), 20)
        bob = await start_chat(chats, bob_home, node_a)
        public = app.windows.items[1]
        await until(pilot, lambda: any("bob" in line.plain and "is online" in line.plain for line in public.lines))

        await bob.send(f"/tell alice {' '.join(words)}")
        await until(pilot, lambda: "3:bob(1)" in app.windows.bar().plain)
        assert app.bells >= 1
        await pilot.press("alt+3")
        await pilot.pause()
        screen = app.screen_text()
        assert all(word in screen for word in words), screen          # wrapped to the pane, nothing cut

        await pilot.press(*"hello from the app", "enter")              # plain text in bob's window: a DM
        received = await bob.until("message")
        assert received["text"] == "hello from the app" and received["from"] == alice_id

        offered = tmp_path / "offer.bin"
        offered.write_bytes(b"o" * 3000)
        await bob.send(f"/file alice {offered}")
        window = app.windows.current
        await until(pilot, lambda: any("arrived whole and checked" in line.plain for line in window.lines))
        assert any("incoming file from bob: offer.bin (2.9 KiB)" in line.plain and "/accept offer.bin" in line.plain
                   for line in window.lines)
        downloads = alice_home / "downloads"
        assert not (downloads / "offer.bin").exists()
        await pilot.press(*"/files", "enter")
        await until(pilot, lambda: any("complete, waiting for /accept" in line.plain for line in window.lines))
        await pilot.press(*"/accept offer.bin", "enter")
        await until(pilot, lambda: (downloads / "offer.bin").exists())
        assert (downloads / "offer.bin").read_bytes() == offered.read_bytes()

        assert await bob.finish() == 0
        await until(pilot, lambda: any("bob" in line.plain and "left" in line.plain for line in window.lines))
        assert any("left" in line.plain for line in public.lines)
        await pilot.press(*"/quit", "enter")
        await until(pilot, lambda: app.return_value is not None)
    assert app.return_value == 0


async def test_script_mode_sees_presence_and_accepts_an_offered_file(node_a, keys, tmp_path, chats):  # noqa: F811 - the fixture imported above
    """The same flows in --script: `presence` events, a `file_offer` that waits, /files,
    /accept, then the `file`; /reject of another deletes it."""
    alice_home, alice_id = make_home(keys, tmp_path, "alice")
    bob_home, bob_id = make_home(keys, tmp_path, "bob")
    (alice_home / "config.toml").write_text('[files]\nauto_accept = "1 KiB"\n')
    alice = await start_chat(chats, alice_home, node_a)
    bob = await start_chat(chats, bob_home, node_a)
    joined = await alice.until("presence", lambda e: e["user_id"] == bob_id, timeout=30)
    assert joined["joined"] is True and joined["label"] == "bob"
    for name in ("keep.bin", "drop.bin"):
        (tmp_path / name).write_bytes(os.urandom(5000))
        await bob.send(f"/file alice {tmp_path / name}")
        offer = await alice.until("file_offer", lambda e, name=name: e["name"] == name)
        assert offer["auto"] is False and offer["size"] == 5000 and offer["label"] == "bob"
        await bob.until("file_sent")
    await alice.until("info", lambda e: "drop.bin" in e["text"] and "arrived whole" in e["text"])
    await alice.send("/files")
    listed = await alice.until("files")
    assert {(t["name"], t["state"]) for t in listed["transfers"]} == {
        ("keep.bin", "complete, waiting for /accept"), ("drop.bin", "complete, waiting for /accept")}
    await alice.send("/accept keep.bin", "/reject drop.bin")
    saved = await alice.until("file")
    assert saved["name"] == "keep.bin" and Path(saved["path"]).read_bytes() == (tmp_path / "keep.bin").read_bytes()
    dropped = await alice.until("file_failed")
    assert dropped["name"] == "drop.bin" and "/reject" in dropped["reason"]
    assert sorted(p.name for p in (alice_home / "downloads").iterdir()) == ["keep.bin"]
    assert await bob.finish() == 0
    left = await alice.until("presence", lambda e: e["user_id"] == bob_id and not e["joined"], timeout=30)
    assert left["label"] == "bob"
    assert await alice.finish() == 0
