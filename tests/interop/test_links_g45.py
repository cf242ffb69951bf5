"""G45's server links, replayed from the wire (tests/interop/recorded/g45-link.jsonl).

Fields G45 reads, from its server.py at the commit peers.md names:
- of our SERVER_WELCOME (`_on_server_welcome`): `host`, `port`, `pubkey` (it verifies
  every later frame of ours with that key, and drops all of them without it);
- of DB_GET_USER (`_handle_db_get_user`): `user_id`, `req_id` (echoed in DB_USER);
- of DB_REGISTER (`_handle_db_register`): `user_id`, `pubkey`.
"""

from __future__ import annotations

import pytest

from interop.links_replay import feed, first, recorded, stamped
from router.harness import NOW, Harness, sent_to
from socp.bootstrap_file import Introducer
from socp.ipc.link_state import LinkState
from socp.protocol import crypto
from socp.protocol.envelope import parse_obj
from socp.router import core, federation
from socp.router import link_dialects as dialects
from socp.router.core_io import Dial, LinkUp

# Frames G45 sends that we do not take, and why (docs/interop.md "Server links").
KNOWN_GAPS: set[str] = set()


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def test_every_recorded_g45_frame_parses() -> None:
    for frame in recorded("g45"):
        if frame["type"] in KNOWN_GAPS:
            continue
        parse_obj(frame)


def test_g45_joins_us_reads_our_key_in_the_welcome_and_its_users_keys_come_from_its_directory(node, keys) -> None:
    hello = stamped(first("g45", "SERVER_HELLO_JOIN", dialled_by="peer"), NOW)
    [welcome] = sent_to(feed(node.state, 5, hello), 5, "SERVER_WELCOME")
    assert (welcome.payload["host"], welcome.payload["port"]) == (node.state.me.host, node.state.me.port)
    assert welcome.payload["pubkey"] == node.state.me.pubkey
    assert node.state.servers[hello.from_] == 5          # its id shape, master_server_<uuid>, is accepted
    user_conn, user_id, _ = node.connect_user(keys[1])
    advert = stamped(first("g45", "USER_ADVERTISE", dialled_by="peer"), NOW)
    [question] = sent_to(feed(node.state, 5, advert), 5, "DB_GET_USER")
    assert question.payload["user_id"] == advert.payload["user_id"] == "Bob" and question.payload["req_id"]
    answer = stamped(first("g45", "DB_USER", dialled_by="peer"), NOW)
    feed(node.state, 5, answer)
    assert node.state.users["Bob"].pubkey == crypto.normalise_public_key(answer.payload["pubkey"])


def test_we_join_g45_its_welcome_without_assigned_id_links_us(node, keys) -> None:
    welcome = stamped(first("g45", "SERVER_WELCOME", dialled_by="us"), NOW)
    key = crypto.normalise_public_key(welcome.payload["pubkey"])
    node.state.introducers = [Introducer("127.0.0.1", welcome.payload["port"], key)]
    dial = next(a for a in federation.start(node.state) if isinstance(a, Dial))
    core.handle(node.state, LinkUp(dial.conn))
    me = node.server_id
    user_conn, user_id, _ = node.connect_user(keys[1])
    actions = feed(node.state, dial.conn, welcome)
    assert node.server_id == me                         # no assigned_id: we keep ours
    row = node.state.linkbook.entries[f"127.0.0.1:{welcome.payload['port']}"]
    assert (row.state, row.dialect, row.peer_id) == (LinkState.JOINED, dialects.G45, welcome.from_)
    [register] = sent_to(actions, dial.conn, "DB_REGISTER")
    assert register.payload == {"user_id": user_id, "pubkey": crypto.encode_public_key(keys[1])}


def test_its_plaintext_public_message_parses() -> None:
    """G45's server relays public messages as plaintext `text` (issue #14 item 2)."""
    for frame in recorded("g45", frame_type="MSG_PUBLIC_CHANNEL"):
        assert parse_obj(frame).payload["text"]


def test_its_public_message_sent_once_per_name_we_go_by_reaches_our_users_once(node, keys) -> None:
    """G45 sends a public message to every server id it knows for us; with the alias
    opt-in that is our id and `server_<our id>`, two copies with their own `to` and
    envelope `ts` (seen live 2026-12-06: shown twice). One post, one delivery."""
    welcome = stamped(first("g45", "SERVER_WELCOME", dialled_by="us"), NOW)
    key = crypto.normalise_public_key(welcome.payload["pubkey"])
    node.state.introducers = [Introducer("127.0.0.1", welcome.payload["port"], key, g45_alias=True)]
    dial = next(a for a in federation.start(node.state) if isinstance(a, Dial))
    core.handle(node.state, LinkUp(dial.conn))
    feed(node.state, dial.conn, welcome)
    user_conn, _, _ = node.connect_user(keys[1])
    post = first("g45", "MSG_PUBLIC_CHANNEL", dialled_by="us")
    assert post["from"] == welcome.from_
    me = node.server_id
    to_us = feed(node.state, dial.conn, stamped(post, NOW, to=me))
    to_alias = feed(node.state, dial.conn, stamped(post, NOW + 3, to=dialects.g45_alias(me)))
    assert len(sent_to(to_us, user_conn, "MSG_PUBLIC_CHANNEL")) == 1
    assert sent_to(to_alias, user_conn, "MSG_PUBLIC_CHANNEL") == []
    # A new post (another payload) still goes through.
    other = stamped(post, NOW + 5, to=me, payload={**post["payload"], "text": "another post"})
    assert len(sent_to(feed(node.state, dial.conn, other), user_conn, "MSG_PUBLIC_CHANNEL")) == 1
