"""The textual app, headless (App.run_test): it starts, shows an incoming message,
and hands what the user types to the driver."""

from __future__ import annotations

import asyncio

from textual.widgets import RichLog, Static

from socp.client.events import ListResult, LoginRegisterFailed, MessageReceived, Ready, UserEntry
from socp.client.tui import ChatApp

ALICE, BOB = "0b6f7c2e-8a31-4b8e-9a55-2f1d3c4b5a69", "5d7e2a1b-3c4f-4a6b-8e9d-0f1a2b3c4d5e"


async def test_app_shows_incoming_message_and_sends_input():
    typed: list[str] = []
    emitted = asyncio.Event()

    async def fake_client(emit, lines: asyncio.Queue) -> int:
        emit(Ready(ALICE, "alice", "ab12:cd34", "ws://127.0.0.1:1"))
        emit(ListResult((UserEntry(ALICE, "alice", "alice", "s", "", True), UserEntry(BOB, "bob", "bob", "s", "")),
                        requested=False))
        emit(MessageReceived(BOB, "bob", "hello \x1b[2Jalice", 1_700_000_000_000, "dm", True, True))
        emitted.set()
        while (line := await asyncio.wait_for(lines.get(), 10)) != "/quit":
            typed.append(line)
        return 0

    app = ChatApp(fake_client)
    async with app.run_test() as pilot:
        await asyncio.wait_for(emitted.wait(), 10)
        await pilot.pause()
        log = app.query_one("#log", RichLog)
        shown = "\n".join(strip.text for strip in log.lines)
        assert "bob" in shown and "hello \\x1b[2Jalice" in shown
        assert "\x1b" not in shown  # the peer's escape sequence is shown, not obeyed
        await pilot.press("/", "t", "e")
        await pilot.press("right")            # accept the completion: "/tell "
        await pilot.press(*"bob hi", "enter")
        for _ in range(50):
            if typed:
                break
            await pilot.pause(0.05)
        assert typed == ["/tell bob hi"]
        await pilot.press("/", "w", "h", "tab")   # Tab accepts the completion too: "/whois "
        await pilot.press("b", "tab", "enter")    # ...and a name: "/whois bob "
        for _ in range(50):
            if len(typed) == 2:
                break
            await pilot.pause(0.05)
        assert typed == ["/tell bob hi", "/whois bob"]
        assert app.focused is app.query_one("#input")
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
    assert app.return_value == 0


async def test_the_user_list_and_status_escape_what_the_server_supplied():
    hostile = "\x1b]0;owned\x07\x1b[2J"
    emitted = asyncio.Event()

    async def fake_client(emit, lines: asyncio.Queue) -> int:
        emit(Ready(ALICE, "alice", "ab12:cd34", "ws://127.0.0.1:1"))
        emit(ListResult((UserEntry(ALICE, "alice", "alice", "s", "", True),
                         UserEntry(f"{hostile}-4a6b", "", "", "s", ""),
                         UserEntry(BOB, f"bob{hostile}", f"bob{hostile}", "s", "")), requested=False))
        emit(LoginRegisterFailed(f"NO{hostile}", "d"))
        emitted.set()
        await asyncio.wait_for(lines.get(), 10)
        return 0

    app = ChatApp(fake_client)
    async with app.run_test() as pilot:
        await asyncio.wait_for(emitted.wait(), 10)
        await pilot.pause()
        users = app.query_one("#users", Static).content.plain
        status = str(app.query_one("#status", Static).content)
        for shown in (users, status):
            assert "\x1b" not in shown and "\x07" not in shown
        assert "\\x1b]0;own" in users and "bob\\x1b" in users and "NO\\x1b" in status
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
