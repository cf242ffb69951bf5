"""A long user list comes in pages (LIST_RESPONSE `next`, LIST_REQUEST {after}, as our
node pages it: frames.list_response); the client follows them, up to MAX_LIST_PAGES,
and shows one complete list."""

from __future__ import annotations

import asyncio

from socp.client import roster as directory_module
from socp.client.events import Info, ListPageWanted, ListResult
from socp.protocol import crypto
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import new_id

from .client_fakes import FakeNode, serve_fake_node, url_of
from .test_connection import _Running, _shut_down, _until

GHOSTS = 5


def _node_with_ghosts(keys, page_size: int) -> tuple[FakeNode, list[str]]:
    node = FakeNode(list_page_size=page_size)
    ghosts = sorted(new_id() for _ in range(GHOSTS))
    for index, ghost in enumerate(ghosts):
        node.add_listed_user(ghost, crypto.encode_public_key(keys[2]), f"ghost {index}")
    return node, ghosts


def _exchange(node: FakeNode, session, first: Envelope) -> tuple[list, list[Envelope]]:
    """Send `first`, then every page request the session asks for; the events and the
    requests sent."""
    events, sent, pending = [], [], [first]
    while pending:
        frame = pending.pop(0)
        sent.append(frame)
        for _, answer in node.handle(session.me.user_id, frame.to_wire()):
            for event in session.handle(answer.to_wire()):
                if isinstance(event, ListPageWanted):
                    pending.append(event.frame)
                else:
                    events.append(event)
    return events, sent


def _joined(node: FakeNode, session) -> None:
    node.handle(session.me.user_id, session.hello().to_wire())


def test_every_page_is_followed_and_one_complete_list_is_shown(make_session, keys):
    node, ghosts = _node_with_ghosts(keys, page_size=2)
    alice = make_session("alice")
    _joined(node, alice)
    events, sent = _exchange(node, alice, alice.users.list_request(requested=True))
    [result] = [e for e in events if isinstance(e, ListResult)]
    assert result.requested
    assert {u.user_id for u in result.users} == {alice.me.user_id, *ghosts}
    assert [frame.payload.get("after", "") for frame in sent][0] == ""
    assert all(frame.payload["after"] for frame in sent[1:]) and len(sent) == 3   # 6 users, 2 a page
    assert not [e for e in events if isinstance(e, Info)]


def test_two_lists_asked_at_once_each_end_complete(make_session, keys):
    """Requests are answered in order; each page request belongs to the list it follows."""
    node, ghosts = _node_with_ghosts(keys, page_size=2)
    alice = make_session("alice")
    _joined(node, alice)
    first, second = alice.users.list_request(requested=False), alice.users.list_request(requested=True)
    answers = [a for frame in (first, second) for _, a in node.handle(alice.me.user_id, frame.to_wire())]
    results, pending = [], []
    while answers or pending:
        if not answers:
            answers = [a for _, a in node.handle(alice.me.user_id, pending.pop(0).to_wire())]
        for event in alice.handle(answers.pop(0).to_wire()):
            if isinstance(event, ListPageWanted):
                pending.append(event.frame)
            elif isinstance(event, ListResult):
                results.append(event)
    assert [r.requested for r in results] == [False, True]
    for result in results:
        assert {u.user_id for u in result.users} == {alice.me.user_id, *ghosts}


def test_pages_past_the_bound_are_not_followed_and_the_cut_is_said(make_session, keys, monkeypatch):
    monkeypatch.setattr(directory_module, "MAX_LIST_PAGES", 2)
    node, ghosts = _node_with_ghosts(keys, page_size=2)
    alice = make_session("alice")
    _joined(node, alice)
    events, sent = _exchange(node, alice, alice.users.list_request(requested=True))
    assert len(sent) == 2
    [result] = [e for e in events if isinstance(e, ListResult)]
    assert len(result.users) == 4
    [cut] = [e for e in events if isinstance(e, Info)]
    assert "lists 6 users" in cut.text and "first 4" in cut.text
    assert all(frame.type == T.LIST_REQUEST for frame in sent)


async def test_the_chat_client_follows_the_pages_at_hello_and_on_list(make_session, keys):
    node, ghosts = _node_with_ghosts(keys, page_size=2)
    server = await serve_fake_node(node)
    alice = _Running(make_session("alice"), url_of(server))
    try:
        await alice.ready()
        assert set(alice.session.users.users) == {alice.session.me.user_id, *ghosts}   # the hello's list: whole
        await alice.lines.put("/list")
        listed = await _until(alice.events, lambda e: isinstance(e, ListResult) and e.requested)
        assert {u.user_id for u in listed.users} == {alice.session.me.user_id, *ghosts}
        assert not any(isinstance(e, ListPageWanted) for e in alice.events)   # internal, never shown
    finally:
        await asyncio.wait_for(_shut_down(server, alice), 10)
