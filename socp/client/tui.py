"""The interactive `socp chat`: a textual app around the same driver as --script.

    ┌ public ────────────────────────────────────┬ online ────┐
    │ 12:01 → bob [3f2a…] is online              │ alice (you)│
    │ 12:02 you → public: hello all              │ bob        │
    ├────────────────────────────────────────────┴────────────┤
    │  1:status  2:public  3:bob(2)                           │  window bar
    │ connected to ws://… · ↑ big.bin 40% …                   │  status line
    │ > input line (commands and names complete with Tab)     │
    └─────────────────────────────────────────────────────────┘

Windows (windows.py): status, public, and one per DM peer; Alt+1..9, Ctrl+N /
Ctrl+P and /query, /msg, /close move between them. Up/Down browse the window's
input history, PgUp/PgDn scroll from the input line, F2 shows or hides the user
list (hidden by itself below USERS_MIN_WIDTH columns). Text is wrapped to the
log's own width and wrapped again when that changes.

The app never touches the network itself: `run_client(emit, lines)` (normally
`ChatClient.run`) runs as a worker on the app's event loop, pushes events through
`emit`, and reads what the user typed from `lines`.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable

from rich.console import Console
from rich.text import Text
from textual import events as textual_events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.suggester import Suggester
from textual.widgets import Input, RichLog, Static

from . import commands, palette
from .display import safe_text, short_id
from .events import (
    ConnectionState,
    ErrorReceived,
    Event,
    FileProgress,
    HelpResult,
    Info,
    ListResult,
    LoginRegistered,
    LoginRegisterFailed,
    QueryOpened,
    Ready,
    UserEntry,
)
from .render import connection_text, event_text, progress_text
from .windows import Windows

RunClient = Callable[[Callable[[Event], None], "asyncio.Queue[str | None]"], Awaitable[int]]
USERS_MIN_WIDTH = 100     # below this many columns the user list starts hidden (F2 shows it)
KEYS_HELP = ("keys: Alt+1..9 or Ctrl+N / Ctrl+P switch windows · Up/Down input history · PgUp/PgDn scroll · "
             "F2 user list · Tab completes (names with spaces are quoted) · Ctrl+Q quits")


class CommandSuggester(Suggester):
    """Completion from the command table, then from the user list (shown greyed)."""

    def __init__(self, app: ChatApp) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self._app = app

    async def get_suggestion(self, value: str) -> str | None:
        return self._app.completion(value)


class CommandInput(Input):
    """The input line. Tab accepts the completion, as → does; with nothing to
    complete it moves the focus as usual. Up/Down browse this window's history;
    PgUp/PgDn scroll the log without leaving the line."""

    BINDINGS = [
        Binding("tab", "complete", "Complete", show=False),
        Binding("up", "history(-1)", "Older", show=False),
        Binding("down", "history(1)", "Newer", show=False),
        Binding("pageup", "scroll_log(-1)", "Scroll up", show=False),
        Binding("pagedown", "scroll_log(1)", "Scroll down", show=False),
    ]

    def action_complete(self) -> None:
        completed = self.app.completion(self.value) if isinstance(self.app, ChatApp) else None
        if completed is not None and self.cursor_at_end:
            self.value = completed
            self.cursor_position = len(completed)
        else:
            self.screen.focus_next()

    def action_history(self, delta: int) -> None:
        if isinstance(self.app, ChatApp):
            windows = self.app.windows
            self.value = windows.older(self.value) if delta < 0 else windows.newer(self.value)
            self.cursor_position = len(self.value)

    def action_scroll_log(self, delta: int) -> None:
        log = self.app.query_one("#log", RichLog)
        if delta < 0:
            log.scroll_page_up(animate=False)
        else:
            log.scroll_page_down(animate=False)


TEXTUAL_THEMES = {"dark": "textual-dark", "light": "textual-light"}   # home.THEMES -> Textual's


class ChatApp(App[int]):
    TITLE = "socp chat"
    ENABLE_COMMAND_PALETTE = False      # Ctrl+P is "previous window" here
    CSS = """
    #main { height: 1fr; }
    #log { width: 1fr; border: round $primary; scrollbar-size-vertical: 1; }
    #users { width: 24; border: round $secondary; padding: 0 1; }
    #users.hidden { display: none; }
    #bar { height: 1; background: $boost; }
    #status { height: auto; max-height: 3; color: $text; padding: 0 1; }
    #input { dock: bottom; }
    """
    BINDINGS = [
        Binding("ctrl+q", "leave", "Quit"),
        Binding("ctrl+c", "leave", "Quit", show=False),
        Binding("ctrl+n", "step(1)", "Next window", priority=True),
        Binding("ctrl+p", "step(-1)", "Previous window", priority=True),
        Binding("f2", "toggle_users", "User list"),
        *(Binding(f"alt+{n}", f"window({n})", f"Window {n}", show=False, priority=True) for n in range(1, 10)),
    ]

    def __init__(self, run_client: RunClient, *, notes: tuple[str, ...] = (), theme: str = "dark") -> None:
        super().__init__()
        # Textual paints its own background, and maps the named colours of our lines
        # (yellow, green, ...) through a palette made for that background's darkness.
        self.theme = TEXTUAL_THEMES[theme]
        self.ansi_theme_dark, self.ansi_theme_light = palette.DARK, palette.LIGHT
        self._notes = notes                # said before the client starts (e.g. "Created identity …")
        self._run_client = run_client
        self.lines: asyncio.Queue[str | None] = asyncio.Queue(64)
        self.users: tuple[UserEntry, ...] = ()
        self.windows = Windows()
        self.bells = 0                     # rung so far (tests read it)
        self._client_done = False
        self._client_code = 0
        self._ready_seen = False
        self._users_chosen: bool | None = None   # F2's choice; None: by the width
        self.last_error = ""               # the client's last error of its own, for the shell
        self.online = False                # connected and past the hello
        self._connected = "connecting…"   # the status line's connection part
        self._progress: dict[str, str] = {}   # file id -> progress text, for the status line
        self._log_width = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield RichLog(id="log", wrap=True, markup=False, highlight=False, auto_scroll=True, min_width=10)
            yield Static("", id="users")
        yield Static("", id="bar")
        yield Static("connecting…", id="status")
        yield CommandInput(placeholder="/help for commands and keys; Tab completes",
                           id="input", suggester=CommandSuggester(self))

    def on_mount(self) -> None:
        self.query_one("#users", Static).border_title = "online"
        self.query_one(Input).focus()
        self._place_users()
        for note in self._notes:
            self.show_event(Info(note))
        self._show_window()
        self.run_worker(self._client_worker(), name="client", exclusive=True)

    def on_resize(self, event: textual_events.Resize) -> None:
        self._place_users()

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

    # --- events from the driver ---------------------------------------------------

    def show_event(self, event: Event) -> None:
        """Called by the driver on the app's loop for every event."""
        if isinstance(event, ListResult):
            self.users = event.users
            self._show_users()
        if isinstance(event, ErrorReceived) and event.source == "client":
            self.last_error = f"{event.code}: {event.detail}"
        if isinstance(event, ConnectionState):
            self.online = False
            self._progress.clear()          # a stale progress line would say it goes on
            self._connected = connection_text(event)
            self._status()
        if isinstance(event, Ready):
            self.online = True
            self._ready_seen = True
            self.windows.own_name = event.display_name
            self.sub_title = f"{safe_text(event.display_name)} [{short_id(event.user_id)}] @ {event.server}"
            self._connected = f"connected to {event.server}"
            self._status()
        if isinstance(event, LoginRegistered):
            self._status("login stored: `socp chat --login` works on other machines")
        if isinstance(event, LoginRegisterFailed):
            self._status(f"login NOT stored on the server ({safe_text(event.code)}); see the status window")
        if isinstance(event, FileProgress):
            if event.done >= event.total:
                self._progress.pop(event.file_id, None)
            elif self.online:
                self._progress[event.file_id] = progress_text(event)
            self._status()
        line = event_text(event)
        if line is None:
            return
        if self.windows.mentions_me(event):
            line.stylize("bold yellow")
        before = self.windows.active
        targets = self.windows.route(event)
        if not self.online and isinstance(event, (Info, ErrorReceived)):
            targets = [0]   # retries and their reasons: the status window (the status line says it too)
        bell = False
        for index in targets:
            bell |= self.windows.add(index, line, event)
        if isinstance(event, HelpResult):
            self.windows.add(self.windows.active, Text(KEYS_HELP), event)
        if isinstance(event, QueryOpened):
            self.windows.switch(targets[0])
        if bell:
            self.bells += 1
            self.bell()
        if self.windows.active != before or self.windows.active in targets or isinstance(event, HelpResult):
            self._show_window()
        else:
            self._show_bar()

    # --- drawing -------------------------------------------------------------------

    def _show_window(self) -> None:
        """Draw the current window's lines, wrapped to the log's width now."""
        log = self.query_one("#log", RichLog)
        window = self.windows.current
        log.border_title = safe_text(window.title)
        log.clear()
        # Wrap to the log's own width: left to itself RichLog measures a line against
        # the app's console, which may be narrower (80 columns when headless).
        width = log.scrollable_content_region.width or None
        for line in window.lines:
            log.write(line, width=width, scroll_end=True)
        self._log_width = log.size.width
        self._show_bar()

    def _show_bar(self) -> None:
        self.query_one("#bar", Static).update(self.windows.bar())

    def _place_users(self) -> None:
        users = self.query_one("#users", Static)
        show = self._users_chosen if self._users_chosen is not None else self.size.width >= USERS_MIN_WIDTH
        users.set_class(not show, "hidden")
        self.call_after_refresh(self._rewrap)

    def _rewrap(self) -> None:
        if self.query_one("#log", RichLog).size.width != self._log_width:
            self._show_window()

    def _show_users(self) -> None:
        text = Text()
        for user in self.users:
            name = safe_text(user.display_name or short_id(user.user_id))
            text.append(f"{name}{' (you)' if user.is_self else ''}\n", style="bold" if user.is_self else "")
            text.append(f"  {short_id(user.user_id)}\n", style="dim")
        users = self.query_one("#users", Static)
        users.update(text)
        users.border_title = f"online ({len(self.users)})"

    def _status(self, note: str = "") -> None:
        parts = [self._connected, *self._progress.values()]
        if note:
            parts.append(note)
        self.query_one("#status", Static).update(Text(" · ".join(parts)))

    # --- keys ----------------------------------------------------------------------

    def action_step(self, delta: int) -> None:
        self.windows.step(delta)
        self._show_window()

    def action_window(self, number: int) -> None:
        if self.windows.switch(number - 1):
            self._show_window()

    def action_toggle_users(self) -> None:
        shown = not self.query_one("#users", Static).has_class("hidden")
        self._users_chosen = not shown
        self._place_users()

    # --- what the user typed --------------------------------------------------------

    def _note(self, text: str, style: str = "yellow") -> None:
        self.windows.add(self.windows.active, Text(text, style=style))
        self._show_window()

    def _for_window(self, line: str) -> str | None:
        """What the current window makes of a line: plain text and /me go to its
        conversation; /close closes it. None: handled here, nothing to send."""
        window = self.windows.current
        head = line.split(" ", 1)[0].lower()
        if head == "/close":
            problem = self.windows.close()
            if problem:
                self._note(f"· {problem}")
            else:
                self._show_window()
            return None
        if head == "/me":
            text = line[len("/me"):].strip()
            if not text:
                return line   # the command table's usage error
            line = commands.ME_PREFIX + text
        elif line.startswith("/"):
            return line
        if window.is_query:
            return f"/tell {window.key} {line}"
        if window.key == "status":
            self._note("· this is the status window: Alt+2 (or Ctrl+N) goes to the public channel, "
                       "/query <user> opens a conversation")
            return None
        return f"/all {line}"

    async def on_input_submitted(self, message: Input.Submitted) -> None:
        typed = message.value.strip()
        message.input.value = ""
        if not typed:
            return
        self.windows.remember(typed)
        line = self._for_window(typed)
        if line is None:
            return
        if not self.online and not self._client_done and line not in ("/quit", "/help"):
            # Shown now, sent in order once connected (issue #16 item 3).
            self._note(f"· queued (not connected): {safe_text(typed)} — sent once the connection is back")
        await self.lines.put(line)

    def screen_text(self) -> str:
        """The screen as plain text, line by line (tests, and the captures in docs/chat.md)."""
        width, height = self.size
        console = Console(width=width, height=height, file=io.StringIO(), record=True, legacy_windows=False,
                          safe_box=False, color_system=None)
        console.print(self.screen._compositor.render_update(full=True))
        return console.export_text()

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

