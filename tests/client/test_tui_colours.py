"""Issue #16: readable colours on dark and light terminals. Every line the app can
show, in both themes, has enough contrast against the log's background (WCAG's
contrast ratio; 4.5:1 is its level AA for text, 3:1 for large text). Textual paints
its own background and maps the named colours of our lines through a palette made
for that background's darkness; a dim part is blended toward the background."""

from __future__ import annotations

import asyncio

import pytest
from rich.color import Color
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from textual.filter import ANSIToTruecolor
from textual.widgets import RichLog

from socp.client.events import (
    ErrorReceived,
    FileFailed,
    FileOffered,
    FileReceived,
    FileSent,
    Info,
    MessageReceived,
    MessageSent,
    NotDelivered,
    PresenceChanged,
    Ready,
)
from socp.client.render import event_text
from socp.client.tui import ChatApp

from .test_tui import ALICE, BOB, TS, FakeClient, users

TEXT_CONTRAST = 4.5       # WCAG AA, normal text: what a message, a warning or an error must reach
DIM_CONTRAST = 3.0        # the dim parts (times, "while you were away", info lines): WCAG AA, large text

EVERY_KIND_OF_LINE = (
    MessageReceived(BOB, "bob", "a public message", TS, "public", True, True),
    MessageReceived(BOB, "bob", "a direct message", TS, "dm", True, True),
    MessageReceived(BOB, "bob", "/me waves", TS, "dm", True, True),
    MessageReceived(BOB, "bob", "unsigned, untrusted, in clear", TS, "dm", False, False, form="unencrypted"),
    MessageReceived(BOB, "bob", "", TS, "dm", True, True, form="undecryptable"),
    MessageReceived(BOB, "bob", "kept for you", TS, "dm", True, True, while_away=True),
    MessageSent(BOB, "bob", "dm", "a reply", 1),
    MessageSent("public", "public", "public", "/me waves back", 1),
    NotDelivered("dm", BOB, "bob", "a reply", "USER_NOT_FOUND", "no route"),
    ErrorReceived("BAD_KEY", "a server error"),
    FileOffered("f1", BOB, "bob", "big.iso", 50 * 1024**2, "dm", False, 16 * 1024**2),
    FileReceived("f2", BOB, "bob", "a.txt", "/tmp/a.txt", 10, "ab" * 32, "dm", True),
    FileReceived("f3", BOB, "bob", "b.txt", "/tmp/b.txt", 10, "", "dm", False, hashed=False),
    FileSent("f4", BOB, "c.txt", 10, "ab" * 32),
    FileFailed("f5", BOB, "d.txt", "it ended early", label="bob"),
    PresenceChanged(BOB, "bob", "s", True),
    PresenceChanged(BOB, "bob", "s", False),
    Info("an info line"),
)


def luminance(color: Color) -> float:
    """WCAG relative luminance of an sRGB colour."""
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    red, green, blue = color.get_truecolor()
    return 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)


def contrast(one: Color, other: Color) -> float:
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("theme", ["dark", "light"])
async def test_every_line_is_readable_on_the_themes_background(theme):
    client = FakeClient(Ready(ALICE, "alice", "ab12:cd34", "ws://127.0.0.1:1"), users())
    app = ChatApp(client, theme=theme)
    async with app.run_test(size=(120, 35)) as pilot:
        await asyncio.wait_for(client.started.wait(), 10)
        for event in EVERY_KIND_OF_LINE:
            app.show_event(event)
        await pilot.pause()
        assert app.current_theme.dark is (theme == "dark")
        log = app.query_one("#log", RichLog)
        background = log.background_colors[1]
        plain = Style(color=log.styles.color.rich_color)       # what an uncoloured part is drawn in
        to_truecolor = ANSIToTruecolor(app.ansi_theme)
        console = Console(width=200, color_system="truecolor")
        too_faint = []
        parts = 0
        for window in app.windows.items:
            for line in window.lines:
                segments = [Segment(segment.text, plain + segment.style if segment.style else plain)
                            for segment in console.render(line)]
                for segment in to_truecolor.apply(segments, background):
                    if not segment.text.strip():
                        continue
                    parts += 1
                    assert segment.style is not None and segment.style.color is not None
                    ratio = contrast(segment.style.color, background.rich_color)
                    if ratio < (DIM_CONTRAST if segment.style.dim else TEXT_CONTRAST):
                        too_faint.append((round(ratio, 2), segment.style.dim, segment.text))
        assert parts > 30
        assert too_faint == []
        await pilot.press("ctrl+q")


def test_only_the_time_of_a_line_is_dim_not_the_message():
    for event in (EVERY_KIND_OF_LINE[0], EVERY_KIND_OF_LINE[6], FileSent("f4", BOB, "c.txt", 10, "ab" * 32)):
        line = event_text(event, now=TS / 1000)
        assert line is not None and "dim" not in str(line.style)
        clock_end = line.plain.index(" ") + 1
        styles = {str(span.style) for span in line.spans if span.start < clock_end}
        assert styles == {"dim"}, line.spans
        text_styles = [str(span.style) for span in line.spans if span.start >= clock_end]
        assert all("dim" not in style for style in text_styles), line.spans
