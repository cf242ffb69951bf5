"""Text screen captures of `socp chat` for docs/chat.md, made against a real node.

    .venv/bin/python tests/client/make_captures.py docs/captures

Starts a node on a free port in a temporary directory and a second node that joins
it, alice in the app (headless, Textual's Pilot), bob and Dave Smith on the first
node and carol on the second as `socp chat --script`, plays a short conversation, a
file transfer, a conversation and a file across the two nodes and a node restart, and writes each screen as plain
text (`ChatApp.screen_text`) at 120x35 and 80x24. Everything it starts is stopped
at the end.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from chat_process import PASSWORD, Chat  # noqa: E402 - run as a script: sys.path is set first

from socp.client.connection import ChatClient, ConnectionSettings  # noqa: E402 - run as a script: sys.path is set first
from socp.client.home import ClientHome  # noqa: E402 - run as a script: sys.path is set first
from socp.client.tui import ChatApp  # noqa: E402 - run as a script: sys.path is set first
from socp.protocol import crypto  # noqa: E402 - run as a script: sys.path is set first
from support.nodes import start_node  # noqa: E402 - run as a script: sys.path is set first

SIZES = ((120, 35), (80, 24))


async def until(pilot, check: Callable[[], bool], timeout: float = 60.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await pilot.pause(0.1)
    print(pilot.app.screen_text())
    raise AssertionError("timed out")


async def go(pilot, app: ChatApp, title: str) -> None:
    """Alt+<number> of the window with this title (the order DMs came in varies)."""
    number = next(i for i, window in enumerate(app.windows.items, start=1) if window.title == title)
    await pilot.press(f"alt+{number}")


def said(app: ChatApp, text: str) -> bool:
    return any(text in line.plain for window in app.windows.items for line in window.lines)


def said_together(app: ChatApp, *texts: str) -> bool:
    """One line says all of these."""
    return any(all(text in line.plain for text in texts) for window in app.windows.items for line in window.lines)


async def capture(out: Path, size: tuple[int, int], keys: list[crypto.PrivateKey], work: Path) -> None:
    width, height = size
    node = start_node(work / "node", keys[0], verifiers=2)
    # A second node that joins through the first: carol is a user there.
    bootstrap = work / "bootstrap.yaml"
    bootstrap.write_text(node.bootstrap_yaml())
    node_b = start_node(work / "node-b", keys[5], verifiers=1, extra_args=("--bootstrap", str(bootstrap)))
    chats: list[Chat] = []
    try:
        homes = {}
        for name, key in (("alice", keys[1]), ("bob", keys[2]), ("Dave Smith", keys[3]), ("carol", keys[4])):
            home = work / name.replace(" ", "-")
            ClientHome(home).create(name, PASSWORD, user_key=key)
            homes[name] = home
        (homes["alice"] / "config.toml").write_text('[files]\nauto_accept = "64 KiB"\n')
        client_home = ClientHome(homes["alice"])
        session = client_home.session(client_home.load_user_key(PASSWORD), PASSWORD,
                                      server_key=crypto.decode_public_key(node.pubkey))

        def run_client(emit, lines):
            return ChatClient(session, node.url, emit, ConnectionSettings(
                connect_attempts=None, linger=0.2, reconnect=True, auto_refresh=True, backoff_max=1.0,
                presence_poll=0.5)).run(lines)

        app = ChatApp(run_client)
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.online)
            bob = await Chat.start(homes["bob"], node.url, "--reconnect", "--connect-attempts", "30",
                                   server_key=node.pubkey)
            dave = await Chat.start(homes["Dave Smith"], node.url, server_key=node.pubkey)
            chats += [bob, dave]
            await bob.until("ready")
            await dave.until("ready")
            await until(pilot, lambda: said(app, "Dave Smith") and said(app, "bob ["))
            await bob.send("/all good morning, everyone")
            await until(pilot, lambda: said(app, "good morning"))
            await pilot.press(*"morning bob, and hi Dave", "enter")
            await pilot.press(*"/me waves", "enter")
            await dave.send("/tell alice hello alice, a question about the report: can you send me the "
                            "latest figures before noon? The ones from Friday had the old totals.")
            await until(pilot, lambda: said(app, "old totals"))
            await bob.send("/tell alice alice, lunch at one?")
            await until(pilot, lambda: said(app, "lunch at one"))
            await pilot.pause(0.3)
            (out / f"windows-{width}x{height}.txt").write_text(app.screen_text())

            await go(pilot, app, "Dave Smith")
            await pilot.press(*"sure, sending them now", "enter")
            figures = work / "figures.csv"
            figures.write_bytes(os.urandom(300 * 1024))
            await pilot.press(*f"/file 'Dave Smith' {figures}", "enter")
            report = work / "q3-report.pdf"
            report.write_bytes(os.urandom(200 * 1024))
            await dave.send(f"/file alice {report}")
            await until(pilot, lambda: said(app, "incoming file from Dave Smith"))
            await pilot.press(*"/files", "enter")
            await until(pilot, lambda: said(app, "files ("))
            await pilot.pause(0.3)
            (out / f"transfer-{width}x{height}.txt").write_text(app.screen_text())
            await until(pilot, lambda: said(app, "arrived whole and checked"))
            await pilot.press(*"/accept q3-report.pdf", "enter")
            await until(pilot, lambda: said(app, "saved as"))
            await dave.until("file")
            await pilot.pause(0.3)
            (out / f"accepted-{width}x{height}.txt").write_text(app.screen_text())

            # Across two nodes: carol, on node B, and alice on node A.
            carol = await Chat.start(homes["carol"], node_b.url, server_key=node_b.pubkey)
            chats.append(carol)
            await carol.until("ready")
            await until(pilot, lambda: said(app, "carol ["))
            await pilot.press(*"/query carol", "enter")
            await pilot.press(*"hi carol, how is it on node B?", "enter")
            await carol.until("message")
            await carol.send("/tell alice all well here; the minutes of the meeting follow")
            minutes = work / "minutes.txt"
            minutes.write_bytes(b"minutes of the meeting\n" * 2000)
            await carol.send(f"/file alice {minutes}")
            await until(pilot, lambda: said(app, "all well here") and said_together(app, "minutes.txt", "saved as"))
            await pilot.pause(0.3)
            (out / f"two-nodes-{width}x{height}.txt").write_text(app.screen_text())

            node.stop()
            await until(pilot, lambda: "RECONNECTING" in str(app.query_one("#status").render()))
            await go(pilot, app, "bob")
            await pilot.press(*"are you still there?", "enter")
            await pilot.pause(0.5)
            (out / f"reconnecting-{width}x{height}.txt").write_text(app.screen_text())
            node = start_node(work / "node", keys[0], verifiers=2, port=node.port)
            # The queued line goes once alice is back: to bob if he is back first, else
            # the node refuses it in words.
            await until(pilot, lambda: (said(app, "you → bob") or said(app, "NOT DELIVERED")) and app.online)
            bob_window = app.windows.current
            # Bob is back: seen coming online again, or his node took the queued line for him.
            await until(pilot, lambda: any("is online" in line.plain or "you → bob" in line.plain
                                           for line in bob_window.lines))
            await pilot.pause(1.0)
            (out / f"reconnected-{width}x{height}.txt").write_text(app.screen_text())
            await pilot.press("ctrl+q")
            await pilot.pause(0.5)
    finally:
        for chat in chats:
            chat.kill()
            await asyncio.wait_for(chat.proc.wait(), 10)
        node.stop()
        node_b.stop()


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    keys = [crypto.generate_private_key() for _ in range(6)]
    sizes = [s for s in SIZES if os.environ.get('ONLY', '') in ('', f'{s[0]}x{s[1]}')]
    for size in sizes:
        with tempfile.TemporaryDirectory() as work:
            await capture(out, size, keys, Path(work))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/captures")))
