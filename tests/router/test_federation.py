"""Pure tests of the server mesh rules (SOCP §6, §8), several cores wired in memory."""

from __future__ import annotations

import pytest

from socp.ipc.link_state import LinkState
from socp.protocol import crypto, frames
from socp.protocol.encoding import b64url_encode
from socp.protocol.envelope import Envelope
from socp.protocol.signing import transport_signature
from socp.router import core as router_core
from socp.router.core_io import FrameIn, LinkDown, Relay

from .harness import digest
from .mesh import Mesh, mesh_through_one_introducer


@pytest.fixture
def mesh3(keys) -> Mesh:
    return mesh_through_one_introducer(keys)


def test_three_servers_form_a_full_mesh_through_one_introducer(mesh3: Mesh) -> None:
    ids = {name: node.server_id for name, node in mesh3.nodes.items()}
    for name, node in mesh3.nodes.items():
        others = {ids[n] for n in ids if n != name}
        assert set(node.state.servers) == others, name
        assert set(node.state.pinned_servers) >= others, name
        for conn in node.state.servers.values():
            assert node.state.links[conn].state is LinkState.JOINED


def test_presence_and_list_span_the_mesh(mesh3: Mesh, keys) -> None:
    users = {name: mesh3.connect_user(name, keys[3 + i % 2]) for i, name in enumerate("abc")}
    all_ids = sorted(uid for _, uid in users.values())
    for name, (conn, user_id) in users.items():
        mesh3.user_frame(name, conn, frames.list_request(user_id, mesh3.nodes[name].server_id, mesh3.now))
        (reply,) = mesh3.received(name, conn, "LIST_RESPONSE")
        assert reply.payload["users"] == all_ids


def test_direct_message_crosses_servers_with_original_ts(mesh3: Mesh, keys) -> None:
    c_conn, carol = mesh3.connect_user("c", keys[3])
    b_conn, bob = mesh3.connect_user("b", keys[4])
    ciphertext = b64url_encode(crypto.oaep_encrypt(keys[4].public_key(), b"hello bob"))
    dm = frames.msg_direct(carol, bob, mesh3.now - 7, ciphertext, crypto.encode_public_key(keys[3]), "c2ln")
    mesh3.user_frame("c", c_conn, dm)
    (deliver,) = mesh3.received("b", b_conn, "USER_DELIVER")
    assert deliver.payload["sender"] == carol and deliver.ts == mesh3.now - 7
    assert crypto.oaep_decrypt(keys[4], crypto.b64url_decode(deliver.payload["ciphertext"])) == b"hello bob"


def test_a_dm_signed_over_its_payload_ts_keeps_that_ts_across_servers(mesh3: Mesh, keys) -> None:
    """G101's client signs over payload.ts; a recipient on another server needs it too."""
    c_conn, carol = mesh3.connect_user("c", keys[3])
    b_conn, bob = mesh3.connect_user("b", keys[4])
    dm = frames.msg_direct(carol, bob, mesh3.now, b64url_encode(b"q" * 512), crypto.encode_public_key(keys[3]), "c2ln")
    dm = Envelope(dm.type, dm.from_, dm.to, dm.ts, {**dm.payload, "from": carol, "to": bob, "ts": mesh3.now - 3})
    mesh3.user_frame("c", c_conn, dm)
    (deliver,) = mesh3.received("b", b_conn, "USER_DELIVER")
    assert (deliver.payload["from"], deliver.payload["to"], deliver.payload["ts"]) == (carol, bob, mesh3.now - 3)
    assert deliver.ts == mesh3.now


def test_public_message_reaches_each_member_once(mesh3: Mesh, keys) -> None:
    users = {name: mesh3.connect_user(name, keys[3]) for name in "abc"}
    extra_conn, _ = mesh3.connect_user("b", keys[4])
    a_conn, alice = users["a"]
    message = frames.msg_public_channel(alice, mesh3.now, b64url_encode(b"x" * 512),
                                        crypto.encode_public_key(keys[3]), "c2ln")
    mesh3.user_frame("a", a_conn, message)
    for name, conn in (("b", users["b"][0]), ("c", users["c"][0]), ("b", extra_conn)):
        got = mesh3.received(name, conn, "MSG_PUBLIC_CHANNEL")
        assert len(got) == 1 and got[0].from_ == alice and got[0].payload == message.payload
    assert mesh3.received("a", a_conn, "MSG_PUBLIC_CHANNEL") == []


def test_disconnect_is_gossiped(mesh3: Mesh, keys) -> None:
    conn, alice = mesh3.connect_user("a", keys[3])
    assert mesh3.nodes["c"].state.user_locations[alice] == mesh3.nodes["a"].server_id
    mesh3.event("a", __import__("socp.router.core_io", fromlist=["LinkDown"]).LinkDown(conn, "bye"))
    mesh3.settle()
    assert alice not in mesh3.nodes["b"].state.user_locations
    assert alice not in mesh3.nodes["c"].state.user_locations


def test_forged_advertisement_changes_nothing(mesh3: Mesh, keys) -> None:
    a_conn, alice = mesh3.connect_user("a", keys[3])
    b = mesh3.nodes["b"]
    c = mesh3.nodes["c"]
    # Server b claims that alice, who lives on a, is now on a (but b sends it): refused.
    forged = frames.user_advertise(mesh3.nodes["a"].server_id, mesh3.now, alice, {})
    forged = Envelope(type=forged.type, from_=b.server_id, to="*", ts=forged.ts,
                      payload={**forged.payload, "server_id": b.server_id})
    b_link_on_c = c.state.servers[b.server_id]
    mesh3.event("c", FrameIn(b_link_on_c, forged, digest(forged)))
    mesh3.settle()
    assert c.state.user_locations[alice] == mesh3.nodes["a"].server_id  # b may not take alice over
    # Nor may b advertise in a's name.
    in_a_name = Envelope(type="USER_ADVERTISE", from_=mesh3.nodes["a"].server_id, to="*", ts=mesh3.now + 1,
                         payload={"user_id": alice, "server_id": b.server_id, "meta": {}})
    mesh3.event("c", FrameIn(b_link_on_c, in_a_name, digest(in_a_name)))
    mesh3.settle()
    assert c.state.user_locations[alice] == mesh3.nodes["a"].server_id


def test_replayed_server_deliver_is_dropped(mesh3: Mesh, keys) -> None:
    b_conn, bob = mesh3.connect_user("b", keys[4])
    a = mesh3.nodes["a"]
    b = mesh3.nodes["b"]
    deliver = frames.server_deliver(a.server_id, b.server_id, mesh3.now, bob, b64url_encode(b"z" * 512), bob,
                                    crypto.encode_public_key(keys[4]), "c2ln")
    a_link_on_b = b.state.servers[a.server_id]
    for _ in range(2):
        mesh3.event("b", FrameIn(a_link_on_b, deliver, digest(deliver)))
        mesh3.settle()
    assert len(mesh3.received("b", b_conn, "USER_DELIVER")) == 1


def test_link_from_an_unknown_server_is_refused(keys) -> None:
    mesh = Mesh()
    a = mesh.add("a", keys[0])
    stranger = mesh.add("x", keys[1])
    mesh.start("a")
    hello = frames.server_hello_link(stranger.server_id, a.server_id, mesh.now, "127.0.0.1", stranger.port,
                                     stranger.state.me.pubkey)
    mesh.event("a", FrameIn(77, hello, digest(hello)))
    mesh.settle()
    assert stranger.server_id not in a.state.servers
    assert 77 not in a.state.links or a.state.links[77].state is LinkState.CLOSING


def test_frames_for_a_lost_server_wait_and_flow_when_it_is_back(mesh3: Mesh, keys) -> None:
    a, b = mesh3.nodes["a"], mesh3.nodes["b"]
    a_conn, alice = mesh3.connect_user("a", keys[3])
    b_conn, bob = mesh3.connect_user("b", keys[4])
    mesh3.cut("a", reachable=False)
    assert a.server_id not in b.state.servers
    assert b.state.user_locations[alice] == a.server_id  # kept for one link timeout
    mesh3.user_frame("b", b_conn, frames.msg_direct(bob, alice, mesh3.now, b64url_encode(b"q" * 512),
                                                   crypto.encode_public_key(keys[4]), "c2ln"))
    assert not mesh3.received("b", b_conn, "ERROR")  # held, not refused
    mesh3.restore("a")
    mesh3.advance(200)
    mesh3.advance(400)
    assert a.server_id in b.state.servers
    assert b.state.user_locations.get(alice) == a.server_id
    (deliver,) = mesh3.received("a", a_conn, "USER_DELIVER")
    assert deliver.payload["sender"] == bob


def test_frames_sent_again_on_a_new_link_go_again_if_that_link_is_lost_too(keys) -> None:
    # A restarted router dials its peer twice (re-link and join) and one of the two
    # links is closed at once: what the peer flushed on that one was never written.
    mesh = Mesh()
    a = mesh.add("a", keys[0])
    b = mesh.add("b", keys[1], introducers=[a])
    mesh.start("a")
    mesh.start("b")
    a_conn, alice = mesh.connect_user("a", keys[3])
    b_conn, bob = mesh.connect_user("b", keys[4])
    mesh.cut("b", reachable=False)
    mesh.user_frame("a", a_conn, frames.msg_direct(alice, bob, mesh.now, b64url_encode(b"kept"),
                                                   crypto.encode_public_key(keys[3]), "c2ln"))
    assert not mesh.received("a", a_conn, "ERROR")          # kept for b: acknowledged
    mesh.restore("b")
    mesh.unwritten_until_cut("a", "b")
    mesh.advance(200)
    assert b.server_id in a.state.servers                   # linked, backlog flushed, not written
    assert mesh.received("b", b_conn, "USER_DELIVER") == []
    mesh.cut("b")
    mesh.advance(200)
    mesh.advance(400)
    assert b.server_id in a.state.servers
    (deliver,) = mesh.received("b", b_conn, "USER_DELIVER")
    assert deliver.payload["sender"] == alice


def test_a_server_that_stays_away_is_forgotten_and_senders_are_told(mesh3: Mesh, keys) -> None:
    b = mesh3.nodes["b"]
    _, alice = mesh3.connect_user("a", keys[3])
    b_conn, bob = mesh3.connect_user("b", keys[4])
    mesh3.cut("a", reachable=False)
    mesh3.user_frame("b", b_conn, frames.msg_direct(bob, alice, mesh3.now, b64url_encode(b"q" * 512),
                                                   crypto.encode_public_key(keys[4]), "c2ln"))
    for _ in range(8):
        mesh3.advance(500)
    assert alice not in b.state.user_locations
    assert [e.payload["code"] for e in mesh3.received("b", b_conn, "ERROR")] == ["USER_NOT_FOUND"]


def test_backlog_for_an_unreachable_server_is_bounded(mesh3: Mesh, keys) -> None:
    from socp.router.state import PEER_BACKLOG_LIMIT

    _, alice = mesh3.connect_user("a", keys[3])
    b_conn, bob = mesh3.connect_user("b", keys[4])
    mesh3.cut("a", reachable=False)
    for i in range(PEER_BACKLOG_LIMIT + 1):
        mesh3.user_frame("b", b_conn, frames.msg_direct(bob, alice, mesh3.now + i % 100, b64url_encode(b"%d" % i),
                                                       crypto.encode_public_key(keys[4]), "c2ln"))
    assert [e.payload["code"] for e in mesh3.received("b", b_conn, "ERROR")] == ["OVERLOADED"]


def test_silent_link_times_out_and_heartbeats_keep_it(mesh3: Mesh) -> None:
    b, c = mesh3.nodes["b"], mesh3.nodes["c"]
    for _ in range(5):
        mesh3.advance(900)  # heartbeats flow every 1 s of mesh time
    assert c.server_id in b.state.servers
    # Cut the wire silently: no close reaches either side, only silence.
    conn = b.state.servers[c.server_id]
    peer = mesh3.wires.pop(("b", conn))
    mesh3.wires.pop(peer)
    for _ in range(5):
        mesh3.advance(900)
    assert conn not in b.state.servers.values()


# --- presence: who may move a user, and gossip relays (SOCP §6.2, §13) ---------------------


def _advert_from(mesh: Mesh, server: str, user_id: str, key, ts_offset: int = 1) -> Envelope:
    """USER_ADVERTISE by `server` in its own name, carrying `key` as the user's key."""
    node = mesh.nodes[server]
    return frames.user_advertise(node.server_id, mesh.now + ts_offset, user_id,
                                 {"pubkey": crypto.encode_public_key(key)})


def _feed_from(mesh: Mesh, receiver: str, sender: str, frame: Envelope, link_signed: bool = True) -> None:
    node = mesh.nodes[receiver]
    conn = node.state.servers[mesh.nodes[sender].server_id]
    mesh.event(receiver, FrameIn(conn, frame, digest(frame), link_signed=link_signed))
    mesh.settle()


def test_a_server_cannot_take_over_a_user_of_a_live_server_with_its_key(mesh3: Mesh, keys) -> None:
    a, b, c = (mesh3.nodes[n] for n in "abc")
    _, alice = mesh3.connect_user("a", keys[3])
    # b re-advertises alice, with alice's own key, as its user: DMs would go to b.
    _feed_from(mesh3, "c", "b", _advert_from(mesh3, "b", alice, keys[3]))
    assert c.state.user_locations[alice] == a.server_id
    assert c.state.users[alice].home_server == a.server_id


def test_a_user_id_stays_bound_to_its_first_key(mesh3: Mesh, keys) -> None:
    a, c = mesh3.nodes["a"], mesh3.nodes["c"]
    a_conn, alice = mesh3.connect_user("a", keys[3])
    alice_key = c.state.users[alice].pubkey
    # alice leaves a: her location goes, her key stays known.
    mesh3.event("a", LinkDown(a_conn, "bye"))
    mesh3.settle()
    assert alice not in c.state.user_locations
    # b now claims alice with b's own key: refused, nothing changes, nothing stored.
    writes_before = len(c.store_log)
    _feed_from(mesh3, "c", "b", _advert_from(mesh3, "b", alice, keys[4]))
    assert alice not in c.state.user_locations
    assert c.state.users[alice].pubkey == alice_key
    assert c.state.users[alice].home_server == a.server_id
    assert not [w for w in c.store_log[writes_before:] if w.operation == "bind_remote_user"]


def test_a_user_key_is_not_rebound_while_its_server_is_away(mesh3: Mesh, keys) -> None:
    a, c = mesh3.nodes["a"], mesh3.nodes["c"]
    _, alice = mesh3.connect_user("a", keys[3])
    alice_key = c.state.users[alice].pubkey
    mesh3.cut("a", reachable=False)          # a's link is down: not live any more
    _feed_from(mesh3, "c", "b", _advert_from(mesh3, "b", alice, keys[4]))
    assert c.state.users[alice].pubkey == alice_key
    assert c.state.user_locations.get(alice) == a.server_id


def test_a_user_who_moved_is_followed_after_the_remove(mesh3: Mesh, keys) -> None:
    b, c = mesh3.nodes["b"], mesh3.nodes["c"]
    a_conn, alice = mesh3.connect_user("a", keys[3])
    mesh3.event("a", LinkDown(a_conn, "bye"))
    mesh3.settle()
    b_conn = b.next_conn
    b.next_conn += 1
    mesh3.user_frame("b", b_conn, frames.user_hello(alice, b.server_id, mesh3.now, crypto.encode_public_key(keys[3])))
    assert c.state.user_locations[alice] == b.server_id


def test_presence_reaches_a_server_with_no_link_to_the_origin(mesh3: Mesh, keys) -> None:
    a, b, c = (mesh3.nodes[n] for n in "abc")
    mesh3.sever("b", "c")
    assert b.server_id not in c.state.servers
    b_conn, bob = mesh3.connect_user("b", keys[4])
    # a relays b's signed advertisement unchanged; c checks it with b's pinned key.
    assert c.state.user_locations[bob] == b.server_id
    assert c.state.users[bob].pubkey == crypto.encode_public_key(keys[4])
    mesh3.event("b", LinkDown(b_conn, "bye"))
    mesh3.settle()
    assert bob not in c.state.user_locations
    assert bob not in a.state.user_locations


def test_a_dm_to_a_user_known_by_relay_waits_for_the_link_to_its_server(mesh3: Mesh, keys) -> None:
    b, c = mesh3.nodes["b"], mesh3.nodes["c"]
    mesh3.sever("b", "c")
    for _ in range(c.state.timing.link_timeout_ms // 1000 + 1):   # c gives up on b: no backlog is left
        mesh3.advance(1000)
    assert b.server_id not in c.state.backlogs
    carol_conn, carol = mesh3.connect_user("c", keys[3])
    bob_conn, bob = mesh3.connect_user("b", keys[4])
    assert c.state.user_locations[bob] == b.server_id    # relayed by a
    mesh3.user_frame("c", carol_conn, frames.msg_direct(carol, bob, mesh3.now, b64url_encode(b"q" * 512),
                                                        crypto.encode_public_key(keys[3]), "c2ln"))
    assert mesh3.received("c", carol_conn, "ERROR") == []
    # The partition heals: c dials b itself, and the kept DM goes over the new link.
    mesh3.severed.clear()
    for _ in range(20):
        mesh3.advance(500)
        if mesh3.received("b", bob_conn, "USER_DELIVER"):
            break
    (deliver,) = mesh3.received("b", bob_conn, "USER_DELIVER")
    assert deliver.payload["sender"] == carol


def test_relayed_presence_must_carry_the_origin_signature(mesh3: Mesh, keys) -> None:
    a, b, c = (mesh3.nodes[n] for n in "abc")
    mesh3.sever("a", "c")
    newcomer = "5d0c5ae6-3b8e-4f7e-9a59-0c8d1a3f2b10"
    # b forwards an advertisement in a's name that b signed itself: not a's frame.
    forged = _advert_from(mesh3, "a", newcomer, keys[4])
    forged = forged.with_sig(transport_signature(keys[1], forged.payload))
    _feed_from(mesh3, "c", "b", forged, link_signed=False)
    assert newcomer not in c.state.user_locations
    # Re-signed by b as a hop-by-hop frame: refused as well.
    resigned = _advert_from(mesh3, "a", newcomer, keys[4], ts_offset=2)
    _feed_from(mesh3, "c", "b", resigned, link_signed=True)
    assert newcomer not in c.state.user_locations


def test_a_forged_remove_cannot_shadow_the_genuine_one(mesh3: Mesh, keys) -> None:
    a, c = mesh3.nodes["a"], mesh3.nodes["c"]
    _, alice = mesh3.connect_user("a", keys[3])
    mesh3.sever("a", "c")
    assert c.state.user_locations[alice] == a.server_id
    # b guesses the ts of a's coming USER_REMOVE and relays a copy it signed itself.
    remove = frames.user_remove(a.server_id, mesh3.now + 5, alice)
    _feed_from(mesh3, "c", "b", remove.with_sig(transport_signature(keys[1], remove.payload)), link_signed=False)
    assert c.state.user_locations[alice] == a.server_id
    # The genuine remove, relayed unchanged with a's signature, still takes effect.
    _feed_from(mesh3, "c", "b", remove.with_sig(transport_signature(keys[0], remove.payload)), link_signed=False)
    assert alice not in c.state.user_locations


def test_a_replayed_remove_does_not_undo_a_later_advertisement(mesh3: Mesh, keys) -> None:
    a, c = mesh3.nodes["a"], mesh3.nodes["c"]
    _, alice = mesh3.connect_user("a", keys[3])
    mesh3.sever("a", "c")
    remove = frames.user_remove(a.server_id, mesh3.now + 5, alice)
    remove = remove.with_sig(transport_signature(keys[0], remove.payload))
    _feed_from(mesh3, "c", "b", remove, link_signed=False)
    assert alice not in c.state.user_locations
    back = _advert_from(mesh3, "a", alice, keys[3], ts_offset=6)
    _feed_from(mesh3, "c", "b", back.with_sig(transport_signature(keys[0], back.payload)), link_signed=False)
    assert c.state.user_locations[alice] == a.server_id
    _feed_from(mesh3, "c", "b", remove, link_signed=False)      # the same remove, again
    assert c.state.user_locations[alice] == a.server_id


def test_gossip_is_forwarded_once_and_never_loops(keys, monkeypatch) -> None:
    mesh = Mesh()
    a = mesh.add("a", keys[0])
    for name, key in (("b", keys[1]), ("c", keys[2]), ("d", keys[5])):
        mesh.add(name, key, introducers=[a])
    for name in "abcd":
        mesh.start(name)
    relays: list[tuple[str, Relay]] = []
    handle = router_core.handle

    def counting(state, event):
        actions = handle(state, event)
        owner = next(n for n, node in mesh.nodes.items() if node.state is state)
        relays.extend((owner, x) for x in actions if isinstance(x, Relay))
        return actions

    monkeypatch.setattr(router_core, "handle", counting)
    _, alice = mesh.connect_user("a", keys[3])
    # b, c and d each pass a's advertisement on once, to the two servers other than a.
    assert sorted(owner for owner, _ in relays) == ["b", "c", "d"]
    assert all(len(relay.conns) == 2 and relay.frame.from_ == a.server_id for _, relay in relays)
    for name in "bcd":
        assert mesh.nodes[name].state.user_locations[alice] == a.server_id


def test_a_restarted_node_whose_introducers_are_down_relinks_the_servers_it_knew(keys) -> None:
    from socp.router.state import RouterState

    mesh = mesh_through_one_introducer(keys)
    b, c = mesh.nodes["b"], mesh.nodes["c"]
    mesh.cut("c")                            # c's router stops: its links drop
    mesh.cut("a", reachable=False)           # and its only introducer is down
    b.state.redials[c.server_id].next_attempt_ms = mesh.now + 3_600_000   # b waits (long backoff)
    old = c.state
    c.state = RouterState(me=old.me, now_ms=mesh.now, timing=old.timing, introducers=old.introducers)
    for server_id, record in old.pinned_servers.items():   # what the store gives back
        c.state.pinned_servers[server_id] = record
        c.state.server_addrs[server_id] = (record.host, record.port)
    mesh.start("c")
    for _ in range(3):
        mesh.advance(200)
    assert b.server_id in c.state.servers
    assert c.state.links[c.state.servers[b.server_id]].dialled_by_us


# --- pinned keys and ids ------------------------------------------------------------------


def test_a_link_from_a_pinned_server_id_with_another_key_is_refused(mesh3: Mesh, keys) -> None:
    from .harness import closes, errors_to

    a, b = mesh3.nodes["a"], mesh3.nodes["b"]
    b_conn = a.state.servers[b.server_id]
    pinned = a.state.pinned_servers[b.server_id]
    impostor = crypto.encode_public_key(keys[5])
    for opening in (frames.server_hello_link(b.server_id, a.server_id, mesh3.now, "127.0.0.1", 9, impostor),
                    frames.server_announce(b.server_id, mesh3.now, "127.0.0.1", 9, impostor)):
        actions = router_core.handle(a.state, FrameIn(77, opening, digest(opening)))
        assert errors_to(actions, 77) == ["INVALID_SIG"] and closes(actions) == [77]
        assert a.state.servers[b.server_id] == b_conn
        assert a.state.pinned_servers[b.server_id] == pinned
        a.state.links.pop(77)


def test_an_announce_vouching_another_key_for_a_pinned_server_changes_no_pin(mesh3: Mesh, keys) -> None:
    a, b, c = (mesh3.nodes[n] for n in "abc")
    pinned = a.state.pinned_servers[c.server_id]
    vouch = frames.server_announce(c.server_id, mesh3.now, "127.0.0.1", 9, crypto.encode_public_key(keys[5]))
    _feed_from(mesh3, "a", "b", vouch)
    assert a.state.pinned_servers[c.server_id] == pinned
    assert not [w for w in a.store_log if w.operation == "pin_server" and w.arguments[0] == c.server_id
                and w.arguments[1] != pinned.pubkey]


def test_a_joiner_whose_id_is_taken_adopts_the_assigned_id_and_keeps_it(keys, tmp_path) -> None:
    from socp.identity import adopt_server_id, load_identity
    from socp.protocol import keystore
    from socp.router.state import ServerRecord

    mesh = Mesh()
    a = mesh.add("a", keys[0])
    b = mesh.add("b", keys[1], introducers=[a])
    requested = b.server_id
    a.state.pinned_servers[requested] = ServerRecord(crypto.encode_public_key(keys[5]), "127.0.0.1", 1)
    mesh.start("a")
    mesh.start("b")
    assigned = b.server_id
    assert assigned != requested and assigned in a.state.servers
    # The driver persists AdoptServerId; a restart then loads the assigned id.
    keystore.write_private_key(tmp_path / "server_key.pem", keys[1], None)
    (tmp_path / "identity.json").write_text('{"server_id": "%s"}\n' % requested)
    adopt_server_id(tmp_path, assigned)
    restarted = load_identity(tmp_path)
    assert restarted.server_id == assigned
    assert restarted.public_key_text == crypto.encode_public_key(keys[1])


def test_a_server_never_reached_is_dialled_no_longer_after_the_give_up_time(keys) -> None:
    """Issue #15 weakness 6: a server that joined with an address where nothing listens
    was dialled for ever."""
    from dataclasses import replace

    mesh = mesh_through_one_introducer(keys)
    a, c = mesh.nodes["a"], mesh.nodes["c"]
    a.state.timing = replace(a.state.timing, give_up_ms=20_000)
    mesh.cut("c", reachable=False)
    for _ in range(30):
        mesh.advance(1000)
    assert c.server_id not in a.state.redials
    row = next(entry for entry in a.state.linkbook.entries.values() if entry.peer_id == c.server_id)
    assert row.state.value == "lost" and "no longer dialled" in row.reason
    for _ in range(60):
        mesh.advance(1000)
    # A dial would have moved the row to "dialling" and then given it another reason.
    assert row.state.value == "lost" and "no longer dialled" in row.reason
    assert c.server_id not in a.state.redials
    # It comes back and dials us itself: linked again.
    mesh.restore("c")
    mesh.start("c")
    assert c.server_id in a.state.servers
