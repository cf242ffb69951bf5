"""A restarted G17 is a new server at the old address (issue #14, note c16): the old id
is no longer dialled there once the new one has proved itself, and its pin holds."""

from __future__ import annotations

import pytest

from socp.ipc.link_state import LinkState
from socp.protocol import crypto, frames
from socp.protocol.envelope import Envelope
from socp.router import core, federation
from socp.router.core_io import Dial, LinkUp, Tick

from .harness import NOW, Harness, closes, sent_to, store_writes

G17_ADDRESS = ("127.0.0.1", 9430)


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def der(key: crypto.PrivateKey) -> str:
    return crypto.encode_public_key(key)


def g17_joins(node: Harness, conn: int, key: crypto.PrivateKey) -> str:
    """G17 starts: it joins as "auto" with a fresh key, we assign it an id; then its
    first frame on the link (a heartbeat, as G17 sends every 15 s)."""
    host, port = G17_ADDRESS
    hello = Envelope(type="SERVER_HELLO_JOIN", from_="auto", to="*", ts=NOW,
                     payload={"host": host, "port": port, "pubkey": der(key), "ws_uri": f"ws://{host}:{port}"})
    [welcome] = sent_to(node.feed(conn, hello), conn, "SERVER_WELCOME")
    return welcome.payload["assigned_id"]


def heartbeat(node: Harness, conn: int, server_id: str) -> list:
    return node.feed(conn, frames.heartbeat(server_id, node.server_id, node.state.now_ms))


def next_dial(node: Harness) -> Dial:
    [dial] = [a for a in core.handle(node.state, Tick()) if isinstance(a, Dial)]
    return dial


def g17_stopped_and_redialled(node: Harness, keys) -> tuple[str, Dial]:
    """G17 joined (key 1), proved itself, stopped; a second later we dial it again."""
    old_id = g17_joins(node, 5, keys[1])
    heartbeat(node, 5, old_id)
    node.drop(5)
    node.state.now_ms += 1_000
    return old_id, next_dial(node)


def dials_within_an_hour(node: Harness, key: crypto.PrivateKey) -> list[Dial]:
    """The dials made over the next hour that expect `key` at the other end."""
    dials: list[Dial] = []
    for _ in range(120):
        node.state.now_ms += 30_000
        dials += [a for a in core.handle(node.state, Tick()) if isinstance(a, Dial) and a.verify_key == der(key)]
    return dials


def test_a_restarted_g17_with_a_new_id_and_key_stops_the_old_id_being_dialled(node, keys) -> None:
    old_id = g17_joins(node, 5, keys[1])
    heartbeat(node, 5, old_id)
    node.drop(5)                                     # G17 stopped
    assert old_id in node.state.redials              # ...and is dialled again, as any pinned server
    new_id = g17_joins(node, 6, keys[2])             # it started again: a new key, a new id
    assert new_id != old_id
    actions = heartbeat(node, 6, new_id)
    assert old_id not in node.state.redials
    assert [w.arguments for w in store_writes(actions, "update_server_addr")] == [(old_id, None, None)]
    row = node.state.linkbook.entries["%s:%d" % G17_ADDRESS]
    assert (row.state, row.peer_id) == (LinkState.JOINED, new_id)
    assert dials_within_an_hour(node, keys[1]) == []
    # The pin holds: the old id cannot come back with the new key...
    assert node.state.pinned_servers[old_id].pubkey == der(keys[1])
    impostor = frames.server_hello_link(old_id, node.server_id, node.state.now_ms, *G17_ADDRESS, der(keys[2]))
    assert 7 in closes(node.feed(7, impostor))
    # ...but may with its own key, and then it has an address again.
    genuine = frames.server_hello_link(old_id, node.server_id, node.state.now_ms, "127.0.0.1", 9999, der(keys[1]))
    node.feed(8, genuine)
    assert node.state.servers[old_id] == 8
    assert node.state.server_addrs[old_id] == ("127.0.0.1", 9999)


def test_the_old_id_is_retired_when_its_link_goes_after_the_new_one_proved_itself(node, keys) -> None:
    old_id = g17_joins(node, 5, keys[1])
    heartbeat(node, 5, old_id)
    new_id = g17_joins(node, 6, keys[2])             # the old link's close has not come yet
    heartbeat(node, 6, new_id)
    assert old_id in node.state.servers              # a linked server is never retired
    actions = node.drop(5)
    assert store_writes(actions, "update_server_addr")
    assert old_id not in node.state.redials and dials_within_an_hour(node, keys[1]) == []


def test_dials_of_the_old_id_under_way_do_not_hide_the_new_link(node, keys) -> None:
    """The order seen live (2026-12-06 23:04, G17 through a recording proxy): our
    SERVER_HELLO_LINK to the old id reaches the new G17, which closes it; we join it
    instead (a rejoin dial); the new G17's first heartbeat comes while that join is
    under way; its welcome then fails the old pin."""
    address = "%s:%d" % G17_ADDRESS
    old_id, link_dial = g17_stopped_and_redialled(node, keys)
    new_id = g17_joins(node, 6, keys[2])
    assert sent_to(core.handle(node.state, LinkUp(link_dial.conn)), link_dial.conn, "SERVER_HELLO_LINK")
    node.drop(link_dial.conn)                        # G17 closes a link hello without a word
    node.state.now_ms += 5_000
    join_dial = next_dial(node)
    assert sent_to(core.handle(node.state, LinkUp(join_dial.conn)), join_dial.conn, "SERVER_HELLO_JOIN")
    assert node.state.linkbook.entries[address].peer_id == old_id
    heartbeat(node, 6, new_id)                       # the new server proves itself: the row is its own
    assert (node.state.linkbook.entries[address].state, node.state.linkbook.entries[address].peer_id) == (
        LinkState.JOINED, new_id)
    federation.welcome_rejected(node.state, node.state.links[join_dial.conn], "SERVER_WELCOME",
                                federation.ErrorCode.INVALID_SIG, "transport signature does not verify")
    node.drop(join_dial.conn)
    row = node.state.linkbook.entries[address]
    assert (row.state, row.peer_id) == (LinkState.JOINED, new_id)
    assert old_id not in node.state.redials and dials_within_an_hour(node, keys[1]) == []


def test_a_dial_of_the_old_id_that_opens_after_it_was_retired_is_closed_unsaid(node, keys) -> None:
    old_id, dial = g17_stopped_and_redialled(node, keys)
    new_id = g17_joins(node, 6, keys[2])
    heartbeat(node, 6, new_id)
    actions = core.handle(node.state, LinkUp(dial.conn))
    assert dial.conn in closes(actions) and not sent_to(actions, dial.conn)
    node.drop(dial.conn)
    row = node.state.linkbook.entries["%s:%d" % G17_ADDRESS]
    assert (row.state, row.peer_id) == (LinkState.JOINED, new_id)
    assert old_id not in node.state.servers and old_id not in node.state.redials


def test_a_server_that_keeps_its_key_is_dialled_again_as_before(node, keys) -> None:
    """A restart that keeps the key (every socp node) changes nothing."""
    peer_id = g17_joins(node, 5, keys[1])
    heartbeat(node, 5, peer_id)
    node.drop(5)
    node.state.now_ms += 1_000
    assert [a for a in core.handle(node.state, Tick()) if isinstance(a, Dial)]
