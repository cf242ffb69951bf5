"""The app's windows (buffers), one per conversation: pure state, no textual.

    1 status   what the client and the server say (connection, errors, logins)
    2 public   the public channel, and who comes and goes
    3...       one per user you exchange direct messages with (/query, or their
               first message)

Each window keeps its lines (bounded), an unread count, a mention mark and its own
input history. `route` says where an event's line goes; `add` puts it there and
says whether it deserves the bell (a DM or a mention in a window you are not
looking at). The app (tui.py) only draws this.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from rich.text import Text

from . import events as ev
from .display import safe_text, short_id

STATUS, PUBLIC = "status", "public"
MAX_LINES = 2000          # per window; older lines scroll away
MAX_HISTORY = 200         # input lines remembered per window


@dataclass(slots=True)
class Window:
    key: str                  # STATUS, PUBLIC, or the peer's user id
    title: str
    lines: deque[Text] = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    unread: int = 0           # messages (and file offers) that came while not shown
    mentioned: bool = False   # one of them named you
    history: list[str] = field(default_factory=list)
    history_at: int | None = None   # index into history while browsing with Up/Down
    draft: str = ""                 # what was typed before browsing began

    @property
    def is_query(self) -> bool:
        return self.key not in (STATUS, PUBLIC)


class Windows:
    def __init__(self, own_name: str = "") -> None:
        self.items: list[Window] = [Window(STATUS, "status"), Window(PUBLIC, "public")]
        self.active = 1
        self.own_name = own_name

    # --- which window ------------------------------------------------------------

    @property
    def current(self) -> Window:
        return self.items[self.active]

    def find(self, key: str) -> int | None:
        return next((i for i, window in enumerate(self.items) if window.key == key), None)

    def query(self, user_id: str, label: str) -> int:
        """The window of direct messages with `user_id`, opened if need be."""
        index = self.find(user_id)
        if index is None:
            self.items.append(Window(user_id, label or short_id(user_id)))
            index = len(self.items) - 1
        elif label and label != user_id:
            self.items[index].title = label
        return index

    def switch(self, index: int) -> bool:
        if not 0 <= index < len(self.items):
            return False
        self.active = index
        self.current.unread, self.current.mentioned = 0, False
        return True

    def step(self, delta: int) -> None:
        self.switch((self.active + delta) % len(self.items))

    def close(self) -> str:
        """Close the current window; "" when done, else why not."""
        if not self.current.is_query:
            return f"the {self.current.title} window stays open"
        del self.items[self.active]
        self.switch(min(self.active, len(self.items) - 1))
        return ""

    def route(self, event: ev.Event) -> list[int]:
        """The windows an event's line goes to (opening a query window for a peer's DM)."""
        if isinstance(event, ev.MessageReceived):
            return [self._conversation(event.channel, event.sender, event.label)]
        if isinstance(event, ev.MessageSent):
            return [self._conversation(event.channel, event.recipient, event.label)]
        if isinstance(event, ev.MessageRejected):
            index = self.find(event.sender) if event.channel == "dm" else self.find(PUBLIC)
            return [index if index is not None else 0]
        if isinstance(event, ev.NotDelivered):
            channel = "public" if event.recipient == "public" else "dm"
            return [self._conversation(channel, event.recipient, event.label)]
        if isinstance(event, (ev.FileOffered, ev.FileReceived)):
            return [self._conversation(event.channel, event.sender, event.label)]
        if isinstance(event, ev.FileFailed) and not event.outgoing:
            index = self.find(event.sender)
            return [index if index is not None else 1]
        if isinstance(event, ev.PresenceChanged):
            peer = self.find(event.user_id)
            return [1] if peer is None else [1, peer]
        if isinstance(event, ev.QueryOpened):
            return [self.query(event.user_id, event.label)]
        if isinstance(event, ev.Ready):
            return [0, 1]      # the status line says "connected" wherever you are
        # Answers to commands, and what the client and server say: where you look,
        # and always in the status window.
        return sorted({0, self.active})

    def _conversation(self, channel: str, peer: str, label: str) -> int:
        if channel == "public" or peer == "public":
            return 1
        return self.query(peer, label)

    # --- lines, unread, mentions ----------------------------------------------------

    def mentions_me(self, event: ev.Event) -> bool:
        if not (isinstance(event, ev.MessageReceived) and event.channel == "public" and self.own_name):
            return False
        return re.search(rf"(?<!\w){re.escape(self.own_name)}(?!\w)", event.text, re.IGNORECASE) is not None

    def add(self, index: int, line: Text, event: ev.Event | None = None) -> bool:
        """Put `line` in window `index`; True when it deserves the bell."""
        window = self.items[index]
        window.lines.append(line)
        if index == self.active or event is None:
            return False
        mention = self.mentions_me(event)
        if isinstance(event, (ev.MessageReceived, ev.FileOffered)):
            window.unread += 1
            window.mentioned |= mention
        return (isinstance(event, (ev.MessageReceived, ev.FileOffered)) and window.is_query) or mention

    def bar(self) -> Text:
        """The window bar: number, title, unread count; a mention in red, the current one reversed."""
        bar = Text()
        for number, window in enumerate(self.items, start=1):
            label = f" {number}:{safe_text(window.title)}"
            if window.unread:
                label += f"({window.unread}{'!' if window.mentioned else ''})"
            label += " "
            if number - 1 == self.active:
                style = "reverse bold"
            elif window.mentioned:
                style = "bold red"
            elif window.unread:
                style = "bold yellow"
            else:
                style = "dim"
            bar.append(label, style=style)
        return bar

    # --- input history -----------------------------------------------------------

    def remember(self, line: str) -> None:
        window = self.current
        if line and (not window.history or window.history[-1] != line):
            window.history.append(line)
            del window.history[:-MAX_HISTORY]
        window.history_at, window.draft = None, ""

    def older(self, typed: str) -> str:
        """Up: the previous line of this window's history."""
        window = self.current
        if not window.history:
            return typed
        if window.history_at is None:
            window.history_at, window.draft = len(window.history), typed
        window.history_at = max(0, window.history_at - 1)
        return window.history[window.history_at]

    def newer(self, typed: str) -> str:
        """Down: the next line, and past the newest what was being typed."""
        window = self.current
        if window.history_at is None:
            return typed
        window.history_at += 1
        if window.history_at >= len(window.history):
            window.history_at = None
            return window.draft
        return window.history[window.history_at]
