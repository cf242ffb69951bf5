"""G17's server links, replayed from the wire (tests/interop/recorded/g17-link.jsonl).

Fields G17 reads, from its integration/network_protocol_core.py at the commit
peers.md names:
- of our SERVER_WELCOME (`connect_to_peer`, `handle_envelope`): `server_pub` (the key
  it verifies our frames with), `assigned_id` (adopted while its id is "auto");
- of PUBKEY_REQUEST: `user_id`; it answers PUBKEY_RESPONSE {user_id, pubkey|null};
- of SERVER_DELIVER (`_handle_server_deliver`): `user_id`, `ciphertext`, `sender`,
  `sender_pub`, `content_sig`, and `orig_ts` as the ts of the USER_DELIVER it makes.
"""

from __future__ import annotations

import pytest

from interop.links_replay import feed, first, recorded, stamped
from router.harness import NOW, Harness, errors_to, sent_to
from socp.bootstrap_file import Introducer
from socp.ipc.link_state import LinkState
from socp.protocol import crypto, frames
from socp.protocol.envelope import parse_obj
from socp.protocol.ids import is_uuid4
from socp.router import core, federation
from socp.router import link_dialects as dialects
from socp.router.core_io import Dial, LinkDown, LinkUp

# Its public channel key share has its own shape (shares[].wrapped, a group key).
KNOWN_GAPS = {"PUBLIC_CHANNEL_KEY_SHARE"}


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def test_every_recorded_g17_frame_parses() -> None:
    for frame in recorded("g17"):
        if frame["type"] not in KNOWN_GAPS:
            parse_obj(frame)


def test_g17_joining_as_auto_gets_an_id_and_our_key_in_server_pub(node) -> None:
    hello = stamped(first("g17", "SERVER_HELLO_JOIN", dialled_by="peer"), NOW)
    assert hello.from_ == "auto"
    [welcome] = sent_to(feed(node.state, 5, hello), 5, "SERVER_WELCOME")
    assert is_uuid4(welcome.payload["assigned_id"]) and welcome.to == welcome.payload["assigned_id"]
    assert welcome.payload["server_pub"] == node.state.me.pubkey
    assert node.state.linkbook.entries["127.0.0.1:9430"].dialect == dialects.G17


def test_we_join_g17_its_snapshot_users_keys_are_asked_for_and_its_announce_is_no_error(node, keys) -> None:
    welcome_raw = next(f for f in recorded("g17", frame_type="SERVER_WELCOME", dialled_by="us")
                       if f["payload"]["snapshot"]["user_locations"])
    welcome = stamped(welcome_raw, NOW)
    key = crypto.normalise_public_key(welcome.payload["server_pub"])
    node.state.introducers = [Introducer("127.0.0.1", 9441, key)]
    dial = next(a for a in federation.start(node.state) if isinstance(a, Dial))
    core.handle(node.state, LinkUp(dial.conn))
    actions = feed(node.state, dial.conn, welcome)
    row = node.state.linkbook.entries["127.0.0.1:9441"]
    assert (row.state, row.dialect, row.peer_id) == (LinkState.JOINED, dialects.G17, "auto")
    at_g17 = [u for u, where in welcome.payload["snapshot"]["user_locations"].items() if where["server_id"] == "auto"]
    asked = [q.payload["user_id"] for q in sent_to(actions, dial.conn, "PUBKEY_REQUEST")]
    assert asked == at_g17 and at_g17
    answer = stamped(first("g17", "PUBKEY_RESPONSE", dialled_by="us"), NOW)
    feed(node.state, dial.conn, answer)
    assert node.state.users[answer.payload["user_id"]].pubkey == crypto.normalise_public_key(answer.payload["pubkey"])
    announce = stamped(first("g17", "SERVER_ANNOUNCE", dialled_by="us"), NOW + 1)
    assert errors_to(feed(node.state, dial.conn, announce), dial.conn) == []
    # Our DM to its user: SERVER_DELIVER with orig_ts, which G17 stamps on the delivery.
    user_conn, user_id, _ = node.connect_user(keys[1])
    dm = frames.msg_direct(user_id, answer.payload["user_id"], NOW, "AAAA", crypto.encode_public_key(keys[1]), "c2ln")
    [onward] = sent_to(feed(node.state, user_conn, dm), dial.conn, "SERVER_DELIVER")
    assert onward.payload["orig_ts"] == NOW


def test_a_restarted_g17_joins_from_the_same_address_with_a_new_key_and_the_old_id_is_retired(node) -> None:
    """Recorded 2026-12-06 23:10 (g17-restart-link.jsonl): G17 joined our node through a
    recording proxy, was stopped, and started again from the same folder. Its second
    SERVER_HELLO_JOIN names the same address with a new key (note c16): once the new
    server's first heartbeat arrives, the old id is no longer dialled there."""
    joins = recorded("g17-restart", frame_type="SERVER_HELLO_JOIN")
    beats = recorded("g17-restart", frame_type="HEARTBEAT")
    assert len(joins) == 2 and all(j["from"] == "auto" for j in joins)
    [(host, port)] = {(j["payload"]["host"], j["payload"]["port"]) for j in joins}   # the same address...
    assert len({j["payload"]["pubkey"] for j in joins}) == 2                        # ...two keys
    ids = []
    for conn, join in ((5, joins[0]), (6, joins[1])):
        [welcome] = sent_to(feed(node.state, conn, stamped(join, NOW)), conn, "SERVER_WELCOME")
        ids.append(welcome.payload["assigned_id"])
        feed(node.state, conn, stamped(beats[0], NOW, **{"from": ids[-1]}))
        if conn == 5:
            core.handle(node.state, LinkDown(5, "peer closed with 1000"))   # G17 stopped
            assert ids[0] in node.state.redials
    old_id, new_id = ids
    assert old_id not in node.state.redials and old_id not in node.state.server_addrs
    row = node.state.linkbook.entries[f"{host}:{port}"]
    assert (row.state, row.peer_id) == (LinkState.JOINED, new_id)
