"""The textual app, headless (App.run_test): windows, keys, wrapping at 80x24, and
what it hands to the driver. The driver here is a fake that emits events and
records the lines it is given; test_real_node*.py drive the app against real nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from textual.pilot import Pilot
from textual.widgets import RichLog, Static

from socp.client.events import (
    FileOffered,
    HelpResult,
    ListResult,
    LoginRegisterFailed,
    MessageReceived,
    PresenceChanged,
    Ready,
    UserEntry,
)
from socp.client.tui import ChatApp

ALICE, BOB = "0b6f7c2e-8a31-4b8e-9a55-2f1d3c4b5a69", "5d7e2a1b-3c4f-4a6b-8e9d-0f1a2b3c4d5e"
DAVE = "7a1c9e2b-4d3f-4b6a-9c8d-1e2f3a4b5c6d"
TS = 1_700_000_000_000


class FakeClient:
    """Emits what the test gives it, records every line the app hands over."""

    def __init__(self, *opening) -> None:
        self.opening = opening
        self.typed: list[str] = []
        self.emit = None
        self.started = asyncio.Event()

    async def __call__(self, emit, lines: asyncio.Queue) -> int:
        self.emit = emit
        for event in self.opening:
            emit(event)
        self.started.set()
        while (line := await asyncio.wait_for(lines.get(), 30)) != "/quit":
            self.typed.append(line)
        return 0

    async def typed_count(self, pilot, count: int) -> list[str]:
        for _ in range(100):
            if len(self.typed) >= count:
                break
            await pilot.pause(0.02)
        return self.typed


def users(*extra: UserEntry) -> ListResult:
    return ListResult((UserEntry(ALICE, "alice", "alice", "s", "", True), UserEntry(BOB, "bob", "bob", "s", ""),
                       *extra), requested=False)


def shown(app: ChatApp) -> str:
    return "\n".join(strip.text for strip in app.query_one("#log", RichLog).lines)


def bar(app: ChatApp) -> str:
    return str(app.query_one("#bar", Static).content)


async def test_a_dm_opens_its_window_with_an_unread_count_and_the_bell(tmp_path):
    client = FakeClient(Ready(ALICE, "alice", "ab12:cd34", "ws://127.0.0.1:1"), users())
    app = ChatApp(client)
    async with app.run_test(size=(120, 35)) as pilot:
        await asyncio.wait_for(client.started.wait(), 10)
        client.emit(MessageReceived(BOB, "bob", "hello \x1b[2Jalice", TS, "dm", True, True))
        await pilot.pause()
        assert "3:bob(1)" in bar(app) and app.bells == 1
        assert "hello" not in shown(app)            # still looking at the public window
        await pilot.press("alt+3")
        assert "hello \\x1b[2Jalice" in shown(app) and "\x1b" not in shown(app)
        assert "3:bob " in bar(app)                  # read now
        await pilot.press(*"hi bob", "enter")        # plain text in bob's window is a DM to him
        await pilot.press("/", "t", "e", "right", *"bob x", "enter")   # → accepts the completion
        assert await client.typed_count(pilot, 2) == [f"/tell {BOB} hi bob", "/tell bob x"]
        await pilot.press("ctrl+p")                  # previous window, not the toolkit's palette
        assert len(app.screen_stack) == 1 and app.windows.current.key == "public"
        await pilot.press(*"/me waves", "enter", *"hello all", "enter")
        assert (await client.typed_count(pilot, 4))[2:] == ["/all /me waves", "/all hello all"]
        await pilot.press("ctrl+n", "ctrl+n")        # public → bob → status
        assert app.windows.current.key == "status"
        await pilot.press("ctrl+n", "ctrl+n", *"/close", "enter")   # status → public → bob, closed
        await pilot.pause()
        assert "bob" not in bar(app) and app.windows.current.key == "public"
        await pilot.press(*"/close", "enter")
        await pilot.pause()
        assert "public window stays open" in shown(app)
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
    assert app.return_value == 0


async def test_a_mention_in_the_public_channel_is_marked_and_rings():
    client = FakeClient(Ready(ALICE, "alice", "ab12:cd34", "ws://127.0.0.1:1"), users())
    app = ChatApp(client)
    async with app.run_test(size=(120, 35)) as pilot:
        await asyncio.wait_for(client.started.wait(), 10)
        await pilot.press("alt+1")                   # look at the status window
        client.emit(MessageReceived(BOB, "bob", "nothing for you", TS, "public", True, True))
        await pilot.pause()
        assert "2:public(1)" in bar(app) and app.bells == 0
        client.emit(MessageReceived(BOB, "bob", "ALICE, look", TS, "public", True, True))
        client.emit(MessageReceived(BOB, "bob", "malice is no mention", TS, "public", True, True))
        await pilot.pause()
        assert "2:public(3!)" in bar(app) and app.bells == 1
        await pilot.press("ctrl+q")


async def test_history_is_per_window_and_pgup_scrolls_from_the_input():
    client = FakeClient(Ready(ALICE, "alice", "ab12:cd34", "ws://127.0.0.1:1"), users())
    app = ChatApp(client)
    async with app.run_test(size=(80, 24)) as pilot:
        await asyncio.wait_for(client.started.wait(), 10)
        await pilot.press(*"first", "enter", *"second", "enter")
        await pilot.press("alt+1", *"/list", "enter", "alt+2")
        field = app.query_one("#input")
        await pilot.press(*"draft", "up")
        assert field.value == "second"
        await pilot.press("up", "up")
        assert field.value == "first"                # /list was typed in another window
        await pilot.press("down", "down")
        assert field.value == "draft"
        for n in range(60):
            client.emit(MessageReceived(BOB, "bob", f"line {n}", TS, "public", True, True))
        await pilot.pause()
        log = app.query_one("#log", RichLog)
        bottom = log.scroll_y
        await pilot.press("pageup")
        assert log.scroll_y < bottom and app.focused is field
        await pilot.press("pagedown")
        assert log.scroll_y == bottom
        await pilot.press("ctrl+q")


WORDS = [f"word{n:02d}" for n in range(40)]


@asynccontextmanager
async def showing_a_long_message(size: tuple[int, int]) -> AsyncIterator[tuple[ChatApp, Pilot]]:
    """The app at this size, bob's long public message shown."""
    client = FakeClient(Ready(ALICE, "alice", "ab12:cd34", "ws://127.0.0.1:1"), users())
    app = ChatApp(client)
    async with app.run_test(size=size) as pilot:
        await asyncio.wait_for(client.started.wait(), 10)
        client.emit(MessageReceived(BOB, "bob", " ".join(WORDS), TS, "public", True, True))
        await pilot.pause()
        yield app, pilot


async def test_at_80x24_text_wraps_to_the_pane_and_no_line_is_cut():
    async with showing_a_long_message((80, 24)) as (app, pilot):
        assert app.query_one("#users").display is False      # collapsed at 80 columns
        screen = app.screen_text()
        assert all(word in screen for word in WORDS), screen
        assert len(screen.splitlines()) <= 24 and max(len(line) for line in screen.splitlines()) <= 80
        await pilot.press("f2")                                # the user list comes back...
        await pilot.pause()
        assert app.query_one("#users").display is True
        screen = app.screen_text()
        assert "bob" in screen and all(word in screen for word in WORDS), screen   # ...and the text rewraps
        await pilot.press("ctrl+q")


async def test_at_120x35_text_wraps_to_the_pane_not_to_80_columns():
    async with showing_a_long_message((120, 35)) as (app, pilot):
        log = app.query_one("#log", RichLog)
        pane = log.scrollable_content_region.width
        assert pane > 80
        widest = max(len(strip.text.rstrip()) for strip in log.lines)
        assert pane - 8 <= widest <= pane            # lines fill the pane, less at most one word
        await pilot.press("ctrl+q")


async def test_join_and_leave_lines_and_the_online_panel(tmp_path):
    client = FakeClient(Ready(ALICE, "alice", "ab12:cd34", "ws://127.0.0.1:1"), users())
    app = ChatApp(client)
    async with app.run_test(size=(120, 35)) as pilot:
        await asyncio.wait_for(client.started.wait(), 10)
        client.emit(PresenceChanged(DAVE, "Dave Smith", "s", True))
        client.emit(users(UserEntry(DAVE, "Dave Smith", "Dave Smith", "s", "")))
        await pilot.pause()
        assert "Dave Smith [7a1c9e2b" in shown(app) and "is online" in shown(app)
        assert "Dave Smith" in str(app.query_one("#users", Static).content)
        await pilot.press(*"/tell Da", "tab", *"hi", "enter")     # a name with a space completes quoted
        assert await client.typed_count(pilot, 1) == ['/tell "Dave Smith" hi']
        client.emit(PresenceChanged(DAVE, "Dave Smith", "s", False))
        client.emit(users())
        await pilot.pause()
        assert "Dave Smith [7a1c9e2b…] left" in shown(app) or "left" in shown(app).splitlines()[-1]
        assert "Dave Smith" not in str(app.query_one("#users", Static).content)
        await pilot.press("ctrl+q")


async def test_a_large_file_offer_asks_and_help_lists_the_keys():
    client = FakeClient(Ready(ALICE, "alice", "ab12:cd34", "ws://127.0.0.1:1"), users())
    app = ChatApp(client)
    async with app.run_test(size=(120, 35)) as pilot:
        await asyncio.wait_for(client.started.wait(), 10)
        client.emit(FileOffered("f1", BOB, "bob", "big.iso", 50 * 1024**2, "dm", False, 16 * 1024**2))
        await pilot.pause()
        assert "3:bob(1)" in bar(app) and app.bells == 1
        await pilot.press("alt+3")
        assert "incoming file from bob: big.iso (50.0 MiB)" in shown(app) and "/accept big.iso" in shown(app)
        client.emit(HelpResult((("/list", "List."),)))
        await pilot.pause()
        assert "Alt+1..9" in shown(app)
        await pilot.press("ctrl+q")


async def test_the_user_list_and_status_escape_what_the_server_supplied():
    hostile = "\x1b]0;owned\x07\x1b[2J"
    client = FakeClient(
        Ready(ALICE, "alice", "ab12:cd34", "ws://127.0.0.1:1"),
        ListResult((UserEntry(ALICE, "alice", "alice", "s", "", True),
                    UserEntry(f"{hostile}-4a6b", "", "", "s", ""),
                    UserEntry(BOB, f"bob{hostile}", f"bob{hostile}", "s", "")), requested=False),
        LoginRegisterFailed(f"NO{hostile}", "d"))
    app = ChatApp(client)
    async with app.run_test(size=(120, 35)) as pilot:
        await asyncio.wait_for(client.started.wait(), 10)
        await pilot.pause()
        users_text = app.query_one("#users", Static).content.plain
        status = str(app.query_one("#status", Static).content)
        for text in (users_text, status):
            assert "\x1b" not in text and "\x07" not in text
        assert "\\x1b]0;own" in users_text and "bob\\x1b" in users_text and "NO\\x1b" in status
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
