"""The interactive `socp chat`: a textual app around the same driver as --script.

    ┌ scrollback (RichLog) ───────────────────────┬ online ─────┐
    │ 12:01 bob [3f2a…] → you: hi                 │ alice (you) │
    │ 12:02 you → public: hello all               │ bob         │
    ├─────────────────────────────────────────────┴─────────────┤
    │ status: file progress, connection                         │
    │ > input line (commands and names complete with Tab or →)  │
    └───────────────────────────────────────────────────────────┘

The app never touches the network itself: `run_client(emit, lines)` (normally
`ChatClient.run`) runs as a worker on the app's event loop, pushes events through
`emit`, and reads what the user typed from `lines`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.suggester import Suggester
from textual.widgets import Footer, Input, RichLog, Static

from . import commands
from .display import safe_text, short_id
from .events import (
    ConnectionState,
    ErrorReceived,
    Event,
    FileProgress,
    ListResult,
    LoginRegistered,
    LoginRegisterFailed,
    Ready,
    UserEntry,
)
from .render import connection_text, event_text, progress_text

RunClient = Callable[[Callable[[Event], None], "asyncio.Queue[str | None]"], Awaitable[int]]


class CommandSuggester(Suggester):
    """Completion from the command table, then from the user list (shown greyed)."""

    def __init__(self, app: ChatApp) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self._app = app

    async def get_suggestion(self, value: str) -> str | None:
        return self._app.completion(value)


class CommandInput(Input):
    """The input line. Tab accepts the completion, as → does; with nothing to
    complete it moves the focus as usual (textual binds Tab to focus_next)."""

    BINDINGS = [Binding("tab", "complete", "Complete", show=False)]

    def action_complete(self) -> None:
        completed = self.app.completion(self.value) if isinstance(self.app, ChatApp) else None
        if completed is not None and self.cursor_at_end:
            self.value = completed
            self.cursor_position = len(completed)
        else:
            self.screen.focus_next()


class ChatApp(App[int]):
    TITLE = "socp chat"
    CSS = """
    #main { height: 1fr; }
    #log { width: 1fr; border: round $primary; }
    #users { width: 28; border: round $secondary; padding: 0 1; }
    #status { height: 1; color: $text-muted; padding: 0 1; }
    #input { dock: bottom; }
    """
    BINDINGS = [Binding("ctrl+q", "leave", "Quit"), Binding("ctrl+c", "leave", "Quit", show=False)]

    def __init__(self, run_client: RunClient) -> None:
        super().__init__()
        self._run_client = run_client
        self.lines: asyncio.Queue[str | None] = asyncio.Queue(64)
        self.users: tuple[UserEntry, ...] = ()
        self._client_done = False
        self._client_code = 0
        self._ready_seen = False
        self.last_error = ""               # the client's last error of its own, for the shell
        self.online = False                # connected and past the hello
        self._connected = "connecting…"   # the status line's connection part

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield RichLog(id="log", wrap=True, markup=False, highlight=False, auto_scroll=True)
            yield Static("", id="users")
        yield Static("connecting…", id="status")
        yield CommandInput(placeholder="/help for commands; plain text goes to the public channel; Tab completes",
                           id="input", suggester=CommandSuggester(self))
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#users", Static).border_title = "online"
        self.query_one(Input).focus()
        self.run_worker(self._client_worker(), name="client", exclusive=True)

    async def _client_worker(self) -> None:
        code = await self._run_client(self.show_event, self.lines)
        self._client_done, self._client_code = True, code
        if code == 0 or not self._ready_seen:
            # Never connected: nothing to read here; the shell gets the reason and the code.
            self.exit(code)
        else:
            self._status("disconnected — press ctrl+q to leave")

    def completion(self, value: str) -> str | None:
        names = [u.display_name or u.user_id for u in self.users if not u.is_self]
        return commands.complete(value, names)

    def show_event(self, event: Event) -> None:
        """Called by the driver on the app's loop for every event."""
        if isinstance(event, ListResult):
            self.users = event.users
            self._show_users()
        if isinstance(event, ErrorReceived) and event.source == "client":
            self.last_error = f"{event.code}: {event.detail}"
        if isinstance(event, ConnectionState):
            self.online = False
            self._connected = connection_text(event)
            self._status(self._connected)
        if isinstance(event, Ready):
            self.online = True
            self._ready_seen = True
            self.sub_title = f"{safe_text(event.display_name)} [{short_id(event.user_id)}] @ {event.server}"
            self._connected = f"connected to {event.server}"
            self._status(self._connected)
        if isinstance(event, LoginRegistered):
            self._status(f"{self._connected} · login stored: `socp chat --login` works on other machines")
        if isinstance(event, LoginRegisterFailed):
            self._status(f"{self._connected} · login NOT stored on the server ({safe_text(event.code)}); "
                         "see the log")
        if isinstance(event, FileProgress) and self.online:
            self._status(f"{progress_text(event)} · {self._connected}")
        line = event_text(event)
        if line is not None:
            self.query_one("#log", RichLog).write(line)

    def _show_users(self) -> None:
        text = Text()
        for user in self.users:
            name = safe_text(user.display_name or short_id(user.user_id))
            text.append(f"{name}{' (you)' if user.is_self else ''}\n", style="bold" if user.is_self else "")
            text.append(f"  {short_id(user.user_id)}\n", style="dim")
        self.query_one("#users", Static).update(text)

    def _status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    async def on_input_submitted(self, message: Input.Submitted) -> None:
        line = message.value.strip()
        message.input.value = ""
        if not line:
            return
        if not self.online and not self._client_done and line not in ("/quit", "/help"):
            # Shown now, sent in order once connected (issue #16 item 3).
            self.query_one("#log", RichLog).write(
                Text(f"· queued (not connected): {safe_text(line)} — sent once the connection is back",
                     style="yellow"))
        await self.lines.put(line)

    async def action_leave(self) -> None:
        if self._client_done:
            self.exit(self._client_code)
            return
        try:
            self.lines.put_nowait("/quit")
        except asyncio.QueueFull:
            self.exit(0)
        else:
            self.set_timer(3.0, lambda: self.exit(0))  # bounded: leave even if the server is stuck
