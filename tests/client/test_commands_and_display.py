from __future__ import annotations

import json

import pytest

from socp.client import commands
from socp.client import events as ev
from socp.client.connection import ChatClient
from socp.client.display import safe_filename, safe_text
from socp.client.render import EVENT_NAMES, event_text, event_to_json_line


def test_every_command_in_the_table_has_a_handler(make_session):
    client = ChatClient(make_session("alice"), "ws://127.0.0.1:1", lambda e: None)
    assert client.handled_commands == set(commands.COMMANDS_BY_NAME)
    assert {spec.name for spec in commands.COMMANDS} >= {"list", "tell", "all", "file", "whois", "trust", "help",
                                                          "quit"}


def test_parse_checks_arguments_from_the_table():
    assert commands.parse("/tell bob  hello  there ") == commands.Command("tell", {"user": "bob",
                                                                                  "text": "hello  there"})
    assert commands.parse("/file public '/tmp/my file.txt'").args == {"target": "public", "path": "/tmp/my file.txt"}
    assert commands.parse("just text") == commands.Command("all", {"text": "just text"})
    assert commands.parse("/LIST").name == "list"
    with pytest.raises(commands.CommandError, match="usage: /tell <user> <text>"):
        commands.parse("/tell bob")
    with pytest.raises(commands.CommandError, match="too many"):
        commands.parse("/list now")
    with pytest.raises(commands.CommandError, match="unknown command"):
        commands.parse("/nope")


def test_names_with_spaces_are_quoted_and_complete_quoted():
    assert commands.parse('/tell "Dave Smith" hi there').args == {"user": "Dave Smith", "text": "hi there"}
    assert commands.parse("/whois 'Dave Smith'").args == {"user": "Dave Smith"}
    assert commands.parse('/msg "Dave Smith"  hi').args == {"user": "Dave Smith", "text": "hi"}
    with pytest.raises(commands.CommandError, match="no closing"):
        commands.parse('/tell "Dave Smith hi')
    assert commands.complete("/tell Da", ["Dave Smith", "bob"]) == '/tell "Dave Smith" '
    assert commands.complete('/query "Dave S', ["Dave Smith"]) == '/query "Dave Smith" '
    assert commands.complete('/tell "Dave Smith" h', ["Dave Smith"]) is None
    assert commands.quote_name('say "hi"') == """'say "hi"'"""


def test_window_and_file_commands_are_in_the_table():
    assert commands.parse("/me waves at bob") == commands.Command("me", {"text": "waves at bob"})
    assert commands.parse("/accept 'my file.iso'").args == {"file": "my file.iso"}
    assert commands.parse("/files").name == "files" and commands.parse("/close").name == "close"
    assert commands.complete("/que", []) == "/query "
    assert commands.complete("/fi", []) is None        # /file and /files


def test_completion_and_help_come_from_the_table():
    assert commands.complete("/te", []) == "/tell "
    assert commands.complete("/tell b", ["bob", "alice"]) == "/tell bob "
    assert commands.complete("/file pu", ["bob"]) == "/file public "
    assert commands.complete("/list x", ["x1"]) is None
    usages = [usage for usage, _ in commands.help_rows()]
    assert "/file <target> <path>" in usages and len(usages) == len(commands.COMMANDS)


def test_safe_text_escapes_controls_and_bidi():
    assert safe_text("a\x1b[31mb\nc\u202ed\x00") == "a\\x1b[31mb\\nc\\u202ed\\x00"
    assert safe_text("héllo 🙂") == "héllo 🙂"


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("..", "download"),
    ("", "download"),
    (".bashrc", "bashrc"),
    ("a\x1b]0;pwn\x07.txt", "a]0;pwn.txt"),
    ("/", "download"),
])
def test_safe_filename(name, expected):
    assert safe_filename(name) == expected


def test_safe_filename_bounds_length_and_keeps_extension():
    name = safe_filename("x" * 500 + ".pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= 200


def test_every_event_renders_as_json_and_text():
    samples = [
        ev.Ready("u", "n", "fp", "ws://x"),
        ev.ConnectionState("reconnecting", "lost", 2.0),
        ev.MessageReceived("u", "n", "t", 1, "dm", True, True),
        ev.MessageSent("u", "n", "dm", "t", 1),
        ev.MessageRejected("u", "dm", "bad"),
        ev.NotDelivered("dm", "u", "n", "hello", "RATE_LIMITED", "d"),
        ev.KeyChanged("u", "n", "a", "b"),
        ev.ChannelKeyReceived("u", "n", "fp"),
        ev.FileProgress("f", "n", "send", 1, 2, 1.0, 1.0),
        ev.FileReceived("f", "u", "n", "x", "/p", 1, "h", "dm", True),
        ev.FileSent("f", "u", "n", 1, "h"),
        ev.FileFailed("f", "u", "n", "r"),
        ev.ListResult((ev.UserEntry("u", "n", "n", "s", "fp", True),)),
        ev.WhoisResult("u", "n", "n", "s", "fp", "fp", True),
        ev.HelpResult((("/x", "y"),)),
        ev.ErrorReceived("C", "d"),
        ev.Info("i"),
        ev.LoginRegistered("s"),
        ev.LoginRegisterFailed("FORBIDDEN", "d"),
        ev.LoggedIn("u", "s", "ws://x", "fp"),
        ev.FileOffered("f", "u", "n", "x", 10, "dm", False, 5),
        ev.TransferList((ev.Transfer("f", "x", "receive", "n", 1, 10, "receiving"),)),
        ev.PresenceChanged("u", "n", "s", True),
        ev.QueryOpened("u", "n"),
    ]
    assert {type(e) for e in samples} == set(EVENT_NAMES)
    for event in samples:
        assert json.loads(event_to_json_line(event))["event"] == EVENT_NAMES[type(event)]
        if not isinstance(event, (ev.FileProgress, ev.ConnectionState)):   # both: the status line
            assert event_text(event) is not None
    message = json.loads(event_to_json_line(samples[2]))
    assert set(message) == {"event", "from", "label", "text", "ts", "channel", "verified", "trusted", "form",
                            "parts", "message_id", "while_away"}
    listed = json.loads(event_to_json_line(samples[12]))
    assert listed["users"][0]["self"] is True


def test_text_lines_escape_what_a_server_supplied():
    """A malicious server picks error codes and details, user and server ids, and
    the reasons some failures quote: none of its escape sequences reach the terminal."""
    hostile = "\x1b]0;owned\x07\x1b[2J"
    events = [
        ev.ErrorReceived(f"CODE{hostile}", f"detail{hostile}"),
        ev.ErrorReceived(f"CODE{hostile}", "d", "client"),
        ev.LoginRegisterFailed(f"NO{hostile}", f"d{hostile}"),
        ev.ListResult((ev.UserEntry(f"{hostile}-4b8e-9a55", "mallory", "mallory", "s", "fp"),
                       ev.UserEntry(f"x{hostile}", f"x{hostile}", "", "s", ""))),
        ev.WhoisResult(f"u{hostile}", "n", "n", f"server{hostile}", "fp", "fp", False),
        ev.KeyChanged(f"u{hostile}", "n", "a", "b"),
        ev.MessageRejected("u", "dm", f"reason{hostile}"),
        ev.FileFailed("f", "u", "n", f"reason{hostile}"),
    ]
    for event in events:
        line = event_text(event)
        assert line is not None
        assert "\x1b" not in line.plain and "\x07" not in line.plain, event
        assert "\\x1b" in line.plain, event
        # JSON keeps the exact value, escaped by JSON itself.
        assert "\x1b" not in event_to_json_line(event)


def test_client_core_imports_no_io_libraries():
    import subprocess
    import sys

    code = (
        "import sys, socp.client.session, socp.client.home, socp.client.commands, socp.client.display;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'asyncio','websockets','textual'});"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


def test_a_channel_key_from_an_unlisted_user_is_not_named_by_a_fingerprint():
    fp = "ab12:cd34:ef56:0789:ab12:cd34:ef56:0789"
    line = event_text(ev.ChannelKeyReceived(fp, fp, fp)).plain
    assert "a user not in your list yet" in line and line.count(fp) == 0
    assert "of bob [" in event_text(ev.ChannelKeyReceived("5d7e2a1b-3c4f", "bob", fp)).plain
