"""Pure tests of DMs held for offline users with an account here (router/offline.py)."""

from __future__ import annotations

import pytest

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_decode, b64url_encode
from socp.protocol.envelope import Envelope
from socp.router import core as router_core
from socp.router import federation, link_dialects, offline
from socp.router.accounts import LoginRecord
from socp.router.core_io import FrameIn, LinkDown, Send
from socp.router.state import NO_ORIGIN
from socp.store.records import HeldMessage

from .harness import NOW, Harness, digest, errors_to, sent_to, store_writes
from .mesh import Mesh, mesh_through_one_introducer


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def dm(sender_key, sender: str, recipient_key, recipient: str, text: bytes, ts: int):
    ciphertext = b64url_encode(crypto.oaep_encrypt(recipient_key.public_key(), text))
    content_sig = signing.sign_dm(sender_key, ciphertext, sender, recipient, ts)
    return frames.msg_direct(sender, recipient, ts, ciphertext, crypto.encode_public_key(sender_key), content_sig)


def away_with_account(node: Harness, key) -> str:
    conn, user_id, _ = node.connect_user(key, name="bob")
    node.state.accounts.logins[user_id] = LoginRecord("blob", "verifier")
    node.drop(conn)
    assert user_id not in node.state.user_locations
    return user_id


def opened(deliver, key, recipient: str) -> bytes:
    payload = deliver.payload
    assert signing.verify_dm(crypto.decode_public_key(payload["sender_pub"]), payload["content_sig"],
                             payload["ciphertext"], frames.deliver_sender(deliver), recipient, deliver.ts)
    return crypto.oaep_decrypt(key, b64url_decode(payload["ciphertext"]))


def test_dms_to_an_away_account_are_held_then_delivered_oldest_first_once(node, keys) -> None:
    bob = away_with_account(node, keys[2])
    a_conn, alice, _ = node.connect_user(keys[1], name="alice")
    held_ids = []
    for i in range(3):
        actions = node.feed(a_conn, dm(keys[1], alice, keys[2], bob, f"m{i}".encode(), NOW + i))
        assert not errors_to(actions, a_conn)
        (write,) = store_writes(actions, "hold_message")
        assert write.arguments[0] == bob and write.arguments[3]["payload"]["ciphertext"]
        held_ids.append(write.arguments[1])
    assert held_ids == sorted(held_ids)

    b_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    delivered = sent_to(actions, b_conn, "USER_DELIVER")
    assert [opened(d, keys[2], bob) for d in delivered] == [b"m0", b"m1", b"m2"]
    (forget,) = store_writes(actions, "drop_held")
    assert forget.arguments == (bob, held_ids)
    node.drop(b_conn)
    _, _, again = node.connect_user(keys[2], user_id=bob)
    assert not sent_to(again, b_conn + 2, "USER_DELIVER") and not store_writes(again, "drop_held")


def test_a_user_without_an_account_is_still_not_found(node, keys) -> None:
    conn, carol, _ = node.connect_user(keys[2])
    node.drop(conn)
    a_conn, alice, _ = node.connect_user(keys[1])
    actions = node.feed(a_conn, dm(keys[1], alice, keys[2], carol, b"x", NOW))
    assert errors_to(actions, a_conn) == ["USER_NOT_FOUND"] and not store_writes(actions, "hold_message")


@pytest.mark.parametrize("bounds", [offline.HeldBounds(max_count=2), offline.HeldBounds(max_bytes=3000)])
def test_a_bound_refuses_the_sender_with_an_error(node, keys, bounds) -> None:
    node.state.held.bounds = bounds
    bob = away_with_account(node, keys[2])
    a_conn, alice, _ = node.connect_user(keys[1])
    outcomes = [errors_to(node.feed(a_conn, dm(keys[1], alice, keys[2], bob, b"m", NOW + i)), a_conn)
                for i in range(3)]
    assert outcomes[0] == [] and outcomes[2] == ["OVERLOADED"]
    error = next(f for f in sent_to(node.feed(a_conn, dm(keys[1], alice, keys[2], bob, b"m", NOW + 9)), a_conn)
                 if f.type == "ERROR")
    assert "offline" in error.payload["detail"] and error.payload.get("msg_ref")


def test_messages_past_the_age_bound_are_dropped_not_delivered(node, keys) -> None:
    node.state.held.bounds = offline.HeldBounds(max_age_ms=60_000)
    bob = away_with_account(node, keys[2])
    a_conn, alice, _ = node.connect_user(keys[1])
    (old,) = store_writes(node.feed(a_conn, dm(keys[1], alice, keys[2], bob, b"old", NOW)), "hold_message")
    node.state.now_ms = NOW + 50_000
    (new,) = store_writes(node.feed(a_conn, dm(keys[1], alice, keys[2], bob, b"new", NOW + 50_000)),
                          "hold_message")
    node.state.now_ms = NOW + 61_000
    b_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    assert [opened(d, keys[2], bob) for d in sent_to(actions, b_conn, "USER_DELIVER")] == [b"new"]
    (forget,) = store_writes(actions, "drop_held")
    assert forget.arguments == (bob, [old.arguments[1], new.arguments[1]])


def test_held_messages_loaded_from_the_store_are_delivered_and_ids_never_reused(node, keys) -> None:
    source = Harness(server_key=keys[0])
    bob = away_with_account(source, keys[2])
    a_conn, alice, _ = source.connect_user(keys[1])
    writes = [store_writes(source.feed(a_conn, dm(keys[1], alice, keys[2], bob, f"r{i}".encode(), NOW + i)),
                           "hold_message")[0] for i in range(2)]
    # A new router: its tables from the snapshot.
    node.state.accounts.logins[bob] = LoginRecord("blob", "verifier")
    offline.load(node.state, [HeldMessage(*w.arguments) for w in writes])
    assert node.state.held.next_id(NOW) > writes[-1].arguments[1]
    b_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    assert [opened(d, keys[2], bob) for d in sent_to(actions, b_conn, "USER_DELIVER")] == [b"r0", b"r1"]


# --- across nodes (a mesh of cores wired in memory) ---------------------------------------


def _hello_again(mesh: Mesh, name: str, key, user_id: str) -> int:
    node = mesh.nodes[name]
    conn = node.next_conn
    node.next_conn += 1
    mesh.user_frame(name, conn, frames.user_hello(user_id, node.server_id, mesh.now, crypto.encode_public_key(key)))
    return conn


def _leave(mesh: Mesh, name: str, conn: int) -> None:
    mesh.event(name, LinkDown(conn, "bye"))
    mesh.settle()


def test_a_remote_sender_reaches_an_away_account_through_its_home_server(keys) -> None:
    mesh = mesh_through_one_introducer(keys)
    a, c = mesh.nodes["a"], mesh.nodes["c"]
    b_conn, bob = mesh.connect_user("b", keys[4])
    mesh.nodes["b"].state.accounts.logins[bob] = LoginRecord("blob", "verifier")
    _leave(mesh, "b", b_conn)
    for node in (a, c):   # told by b's marked USER_REMOVE (a and c both link b directly)
        assert bob not in node.state.user_locations
        assert node.state.held.elsewhere[bob] == mesh.nodes["b"].server_id
    c_conn, carol = mesh.connect_user("c", keys[3])
    mesh.user_frame("c", c_conn, dm(keys[3], carol, keys[4], bob, b"while away", mesh.now))
    assert not mesh.received("c", c_conn, "ERROR")
    assert mesh.nodes["b"].state.held.count(bob) == 1
    mesh.advance(1_000)   # a later advert: the first one's copy would be dropped as a replay
    back = _hello_again(mesh, "b", keys[4], bob)
    (deliver,) = mesh.received("b", back, "USER_DELIVER")
    assert opened(deliver, keys[4], bob) == b"while away"
    assert c.state.user_locations[bob] == mesh.nodes["b"].server_id
    assert bob not in c.state.held.elsewhere   # online again: routed by its location


def test_a_remote_user_without_an_account_at_home_is_still_not_found(keys) -> None:
    mesh = mesh_through_one_introducer(keys)
    b_conn, bob = mesh.connect_user("b", keys[4])
    _leave(mesh, "b", b_conn)
    assert bob not in mesh.nodes["c"].state.held.elsewhere
    c_conn, carol = mesh.connect_user("c", keys[3])
    mesh.user_frame("c", c_conn, dm(keys[3], carol, keys[4], bob, b"x", mesh.now))
    (error,) = mesh.received("c", c_conn, "ERROR")
    assert error.payload["code"] == "USER_NOT_FOUND"


def test_a_server_cannot_mark_a_user_whose_home_it_is_not(keys) -> None:
    mesh = mesh_through_one_introducer(keys)
    a_conn, alice = mesh.connect_user("a", keys[3])
    c = mesh.nodes["c"]
    # b claims a's user is away and held at b: refused, alice stays routed to a.
    mark = frames.user_remove(mesh.nodes["b"].server_id, mesh.now + 1, alice)
    mark = Envelope(mark.type, mark.from_, mark.to, mark.ts, {**mark.payload, offline.HELD_MARK: True})
    conn = c.state.servers[mesh.nodes["b"].server_id]
    mesh.event("c", FrameIn(conn, mark, digest(mark)))
    mesh.settle()
    assert alice not in c.state.held.elsewhere
    assert c.state.user_locations[alice] == mesh.nodes["a"].server_id
    _leave(mesh, "a", a_conn)   # no account at a: plain remove, nobody holds for alice
    assert alice not in c.state.held.elsewhere and alice not in c.state.user_locations


def test_a_new_link_learns_the_away_accounts_of_the_peer(keys) -> None:
    mesh = mesh_through_one_introducer(keys)
    b = mesh.nodes["b"]
    b_conn, bob = mesh.connect_user("b", keys[4])
    b.state.accounts.logins[bob] = LoginRecord("blob", "verifier")
    _leave(mesh, "b", b_conn)
    c = mesh.nodes["c"]
    c.state.held.elsewhere.clear()     # as after c's router restarted: only the home is known
    mesh.cut("b", reachable=False)
    mesh.restore("b")
    mesh.advance(200)
    mesh.advance(400)                   # the links come back; b announces its away accounts
    assert b.server_id in c.state.servers
    assert c.state.held.elsewhere.get(bob) == b.server_id
    marks = offline.away_marks(b.state)
    assert [m.payload for m in marks] == [{"user_id": bob, "server_id": b.server_id, offline.HELD_MARK: True}]


def test_public_messages_are_held_for_away_accounts_and_delivered_at_hello(node, keys) -> None:
    bob = away_with_account(node, keys[2])
    a_conn, alice, _ = node.connect_user(keys[1], name="alice")
    posts = []
    for i in range(2):
        ciphertext = b64url_encode(f"post {i}".encode())
        post = frames.msg_public_channel(alice, NOW + i, ciphertext, crypto.encode_public_key(keys[1]),
                                         signing.sign_public(keys[1], ciphertext, alice, NOW + i))
        actions = node.feed(a_conn, post)
        (write,) = store_writes(actions, "hold_message")
        assert write.arguments[0] == bob
        posts.append(post)
    b_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    got = sent_to(actions, b_conn, "MSG_PUBLIC_CHANNEL")
    assert [(g.from_, g.ts, g.payload) for g in got] == [(p.from_, p.ts, p.payload) for p in posts]
    for g in got:   # still verifiable end to end
        assert signing.verify_public(keys[1].public_key(), g.payload["content_sig"], g.payload["ciphertext"],
                                     g.from_, g.ts)


def test_a_full_queue_skips_a_public_message_without_refusing_the_poster(node, keys) -> None:
    node.state.held.bounds = offline.HeldBounds(max_count=1)
    bob = away_with_account(node, keys[2])
    a_conn, alice, _ = node.connect_user(keys[1])
    kept = []
    for i in range(2):
        ciphertext = b64url_encode(b"p")
        post = frames.msg_public_channel(alice, NOW + i, ciphertext, crypto.encode_public_key(keys[1]),
                                         signing.sign_public(keys[1], ciphertext, alice, NOW + i))
        actions = node.feed(a_conn, post)
        assert not errors_to(actions, a_conn)
        kept += store_writes(actions, "hold_message")
    assert len(kept) == 1 and node.state.held.count(bob) == 1


# --- file transfers ------------------------------------------------------------------------


def file_frames(sender: str, recipient: str, recipient_key, data: bytes, file_id: str = "f-1", ts: int = NOW):
    chunks = [data[i:i + offline.CHUNK_PLAINTEXT] for i in range(0, len(data), offline.CHUNK_PLAINTEXT)]
    start = frames.file_start(sender, recipient, ts, file_id, "notes.txt", len(data), "00" * 32, "dm")
    middle = [frames.file_chunk(sender, recipient, ts + 1 + i, file_id, i,
                                b64url_encode(crypto.oaep_encrypt(recipient_key.public_key(), chunk)))
              for i, chunk in enumerate(chunks)]
    return [start, *middle, frames.file_end(sender, recipient, ts + 1 + len(chunks), file_id)]


def test_a_file_sent_to_an_away_account_is_held_whole_and_delivered_at_hello(node, keys) -> None:
    bob = away_with_account(node, keys[2])
    a_conn, alice, _ = node.connect_user(keys[1])
    sent = file_frames(alice, bob, keys[2], b"x" * 1000)
    for frame in sent:
        actions = node.feed(a_conn, frame)
        assert not errors_to(actions, a_conn), frame.type
        assert len(store_writes(actions, "hold_message")) == 1
    b_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    got = [f for f in sent_to(actions, b_conn) if f.type.startswith("FILE_")]
    assert [(f.type, f.payload) for f in got] == [(f.type, f.payload) for f in sent]
    data = b"".join(crypto.oaep_decrypt(keys[2], b64url_decode(f.payload["ciphertext"])) for f in got[1:-1])
    assert data == b"x" * 1000


def test_a_file_that_does_not_fit_is_refused_at_its_start_and_none_of_it_is_held(node, keys) -> None:
    node.state.held.bounds = offline.HeldBounds(max_bytes=4 * offline.CHUNK_STORED)
    bob = away_with_account(node, keys[2])
    a_conn, alice, _ = node.connect_user(keys[1])
    start, *rest = file_frames(alice, bob, keys[2], b"y" * 2000)
    assert errors_to(node.feed(a_conn, start), a_conn) == ["OVERLOADED"]
    for frame in rest:
        actions = node.feed(a_conn, frame)
        assert not store_writes(actions, "hold_message"), frame.type
    assert node.state.held.count(bob) == 0


def test_a_remote_file_reaches_an_away_account_through_its_home_server(keys) -> None:
    mesh = mesh_through_one_introducer(keys)
    b = mesh.nodes["b"]
    b_conn, bob = mesh.connect_user("b", keys[4])
    b.state.accounts.logins[bob] = LoginRecord("blob", "verifier")
    _leave(mesh, "b", b_conn)
    c_conn, carol = mesh.connect_user("c", keys[3])
    sent = file_frames(carol, bob, keys[4], b"z" * 500, ts=mesh.now)
    for frame in sent:
        mesh.user_frame("c", c_conn, frame)
    assert not mesh.received("c", c_conn, "ERROR")
    assert b.state.held.count(bob) == len(sent)
    mesh.advance(1_000)
    back = _hello_again(mesh, "b", keys[4], bob)
    got = [f for f in mesh.nodes["b"].user_outbox[back] if f.type.startswith("FILE_")]
    assert [(f.type, f.payload) for f in got] == [(f.type, f.payload) for f in sent]


def test_a_file_held_in_part_goes_on_being_held_after_a_router_restart(node, keys) -> None:
    source = Harness(server_key=keys[0])
    bob = away_with_account(source, keys[2])
    a_conn, alice, _ = source.connect_user(keys[1])
    start, first, *rest = file_frames(alice, bob, keys[2], b"w" * 900)
    writes = [store_writes(source.feed(a_conn, frame), "hold_message")[0] for frame in (start, first)]
    node.state.accounts.logins[bob] = LoginRecord("blob", "verifier")
    offline.load(node.state, [HeldMessage(*w.arguments) for w in writes])   # a new router, from the store
    for frame in rest:   # as a linked server would relay them (a user's transfer restarts with its router)
        assert store_writes(offline.hold_file_frame(node.state, frame, NO_ORIGIN), "hold_message"), frame.type
    assert node.state.held.open_files == {} and node.state.held.count(bob) == 2 + len(rest)


def test_the_away_marks_of_a_new_link_go_to_socp_peers_only(keys) -> None:
    mesh = mesh_through_one_introducer(keys)
    b, c = mesh.nodes["b"], mesh.nodes["c"]
    b_conn, bob = mesh.connect_user("b", keys[4])
    b.state.accounts.logins[bob] = LoginRecord("blob", "verifier")
    _leave(mesh, "b", b_conn)
    conn = b.state.servers[c.server_id]
    marks = [a.frame for a in federation._send_presence(b.state, conn) if a.frame.type == "USER_REMOVE"]
    assert [m.payload.get(offline.HELD_MARK) for m in marks] == [True]
    b.state.linkbook.set_dialect(b.state.links[conn].server_address, link_dialects.G17, mesh.now)
    assert not [a for a in federation._send_presence(b.state, conn) if a.frame.type == "USER_REMOVE"]


def test_a_dm_is_never_sent_back_to_the_server_that_took_us_for_the_home(keys, monkeypatch) -> None:
    mesh = mesh_through_one_introducer(keys)
    b, c = mesh.nodes["b"], mesh.nodes["c"]
    b_conn, bob = mesh.connect_user("b", keys[4])
    b.state.accounts.logins[bob] = LoginRecord("blob", "verifier")
    _leave(mesh, "b", b_conn)
    del b.state.accounts.logins[bob]            # the account is gone at b ...
    b.state.held.elsewhere[bob] = c.server_id   # ... and b takes c for bob's home
    from_b: list = []
    handle = router_core.handle

    def spy(state, event):
        actions = handle(state, event)
        if state is b.state:
            from_b.extend(a.frame for a in actions if isinstance(a, Send))
        return actions

    monkeypatch.setattr(router_core, "handle", spy)
    c_conn, carol = mesh.connect_user("c", keys[3])
    mesh.user_frame("c", c_conn, dm(keys[3], carol, keys[4], bob, b"bounce", mesh.now))
    assert not [f for f in from_b if f.type == "SERVER_DELIVER"]
    assert [f.payload["code"] for f in from_b if f.type == "ERROR"] == ["USER_NOT_FOUND"]


def test_a_remote_sender_is_told_when_the_home_server_has_no_room(keys) -> None:
    mesh = mesh_through_one_introducer(keys)
    b = mesh.nodes["b"]
    b.state.held.bounds = offline.HeldBounds(max_count=1)
    b_conn, bob = mesh.connect_user("b", keys[4])
    b.state.accounts.logins[bob] = LoginRecord("blob", "verifier")
    _leave(mesh, "b", b_conn)
    c_conn, carol = mesh.connect_user("c", keys[3])
    mesh.user_frame("c", c_conn, dm(keys[3], carol, keys[4], bob, b"kept", mesh.now))
    assert not mesh.received("c", c_conn, "ERROR")
    mesh.user_frame("c", c_conn, dm(keys[3], carol, keys[4], bob, b"no room", mesh.now + 1))
    (error,) = mesh.received("c", c_conn, "ERROR")
    assert error.payload["code"] == "OVERLOADED" and bob in error.payload["detail"]
    assert b.state.held.count(bob) == 1


def test_a_refusal_naming_a_user_is_taken_only_from_the_home_we_routed_to(keys) -> None:
    mesh = mesh_through_one_introducer(keys)
    a, c = mesh.nodes["a"], mesh.nodes["c"]
    c_conn, carol = mesh.connect_user("c", keys[3])
    fake = frames.error(a.server_id, c.server_id, mesh.now, "OVERLOADED", "no room")
    fake = Envelope(fake.type, fake.from_, fake.to, fake.ts,
                    {**fake.payload, offline.REFUSED_FOR: {"user_id": "someone", "sender": carol}})
    link_to_a = c.state.servers[a.server_id]
    mesh.event("c", FrameIn(link_to_a, fake, digest(fake)))
    mesh.settle()
    assert not mesh.received("c", c_conn, "ERROR")
