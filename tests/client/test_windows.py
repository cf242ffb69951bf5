"""The app's windows as pure state (windows.py): routing, unread, mentions, bell, history."""

from __future__ import annotations

from rich.text import Text

from socp.client import events as ev
from socp.client.windows import PUBLIC, STATUS, Windows

BOB, CAROL = "5d7e2a1b-3c4f-4a6b-8e9d-0f1a2b3c4d5e", "7a1c9e2b-4d3f-4b6a-9c8d-1e2f3a4b5c6d"


def dm(sender: str, label: str, text: str = "hi") -> ev.MessageReceived:
    return ev.MessageReceived(sender, label, text, 1, "dm", True, True)


def test_each_conversation_has_its_window():
    windows = Windows("alice")
    assert [w.key for w in windows.items] == [STATUS, PUBLIC] and windows.current.key == PUBLIC
    assert windows.route(dm(BOB, "bob")) == [2]
    assert windows.route(ev.MessageSent(CAROL, "carol", "dm", "x", 1)) == [3]
    assert windows.route(ev.MessageReceived(BOB, "bob", "x", 1, "public", True, True)) == [1]
    assert windows.route(ev.FileOffered("f", BOB, "bob", "a", 1, "dm", True, 9)) == [2]
    assert windows.route(ev.PresenceChanged(BOB, "bob", "s", False)) == [1, 2]
    assert windows.route(ev.PresenceChanged("x", "x", "s", True)) == [1]
    assert windows.route(ev.Info("what the client says")) == [0, 1]
    assert windows.route(ev.QueryOpened(BOB, "bob")) == [2]
    assert [w.title for w in windows.items] == ["status", "public", "bob", "carol"]


def test_unread_mentions_and_the_bell():
    windows = Windows("alice")
    bob = windows.query(BOB, "bob")
    assert windows.add(bob, Text("x"), dm(BOB, "bob")) is True          # a DM elsewhere rings
    assert windows.add(1, Text("x"), ev.MessageReceived(BOB, "bob", "seen", 1, "public", True, True)) is False
    windows.switch(0)
    assert windows.add(1, Text("x"), ev.MessageReceived(BOB, "bob", "hi all", 1, "public", True, True)) is False
    mention = ev.MessageReceived(BOB, "bob", "hey Alice!", 1, "public", True, True)
    assert windows.add(1, Text("x"), mention) is True
    assert windows.items[1].unread == 2 and windows.items[1].mentioned
    assert windows.add(0, Text("x"), ev.Info("seen")) is False          # the window you look at
    assert "2:public(2!)" in windows.bar().plain and "3:bob(1)" in windows.bar().plain
    windows.switch(1)
    assert windows.items[1].unread == 0 and not windows.items[1].mentioned
    assert not windows.mentions_me(ev.MessageReceived(BOB, "bob", "malice", 1, "public", True, True))


def test_close_and_step():
    windows = Windows()
    windows.switch(windows.query(BOB, "bob"))
    windows.step(1)
    assert windows.current.key == STATUS
    windows.step(-1)
    assert windows.close() == "" and windows.current.key == PUBLIC and len(windows.items) == 2
    assert "stays open" in windows.close()


def test_history_per_window():
    windows = Windows()
    windows.remember("one")
    windows.remember("two")
    assert windows.older("typing") == "two" and windows.older("") == "one" and windows.older("") == "one"
    assert windows.newer("") == "two" and windows.newer("") == "typing"
    windows.switch(0)
    assert windows.older("x") == "x"          # the status window has its own (empty) history
