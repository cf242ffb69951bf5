"""The textual app, headless (App.run_test): it starts, shows an incoming message,
and hands what the user types to the driver."""

from __future__ import annotations

import asyncio

from textual.widgets import RichLog

from socp.client.events import ListResult, MessageReceived, Ready, UserEntry
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
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
    assert app.return_value == 0
