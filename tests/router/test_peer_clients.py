"""Other teams' clients on this node, at the router (interop table; issue #14):
key look-ups in each asker's dialect, keys handed out in each client's own encoding,
presence pushed to local users (batched), G17's register and password login."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from socp.protocol import crypto, frames, password_hash
from socp.protocol.encoding import b64url_decode, b64url_encode, canonical_json
from socp.protocol.envelope import Envelope, parse
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import new_id
from socp.router import core, user_presence
from socp.router.accounts import LoginRecord
from socp.router.core_io import BatchEnd, LinkDown
from socp.router.state import UserRecord

from .harness import NOW, Harness, closes, errors_to, sends, sent_to, store_writes
from .mesh import mesh_through_one_introducer


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def pem_b64url(key) -> str:
    """G56's key form: base64url of the PEM text."""
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url_encode(pem)


def connect_g56(node: Harness, key) -> tuple[int, str, list]:
    """A hello as G56's client says it: unsigned, PEM-in-base64url keys, `to` = itself."""
    conn, user_id = node.next_conn, new_id()
    node.next_conn += 1
    hello = Envelope(type="USER_HELLO", from_=user_id, to=user_id, ts=NOW,
                     payload={"client": "cli-v1", "pubkey": pem_b64url(key), "enc_pubkey": pem_b64url(key), "meta": {}})
    return conn, user_id, node.feed(conn, hello)


def connect_peer(node: Harness, key, name: str | None = None, client: str = "socp-cli-v1") -> tuple[int, str, list]:
    """A hello from another team's client (G45's `client`), DER key: it gets presence pushes."""
    conn, user_id = node.next_conn, new_id()
    node.next_conn += 1
    hello = frames.user_hello(user_id, node.server_id, NOW, crypto.encode_public_key(key), client=client,
                              display_name=name)
    return conn, user_id, node.feed(conn, hello)


def dm(sender: str, recipient: str, sender_pub: str) -> Envelope:
    return frames.msg_direct(
        sender, recipient, NOW, b64url_encode(b"\x01" * 512), sender_pub, b64url_encode(b"s" * 512)
    )


# --- key look-ups -----------------------------------------------------------------------


def test_pubkey_request_is_answered_pubkey_response_or_null(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    _, bob, _ = node.connect_user(keys[2])
    (answer,) = sent_to(
        node.feed(a_conn, frames.pubkey_request(alice, "server-1", NOW, bob)), a_conn, "PUBKEY_RESPONSE"
    )
    assert answer.payload == {"user_id": bob, "pubkey": crypto.encode_public_key(keys[2])}
    (missing,) = sent_to(
        node.feed(a_conn, frames.pubkey_request(alice, "server-1", NOW, "nobody")), a_conn, "PUBKEY_RESPONSE"
    )
    assert missing.payload == {"user_id": "nobody", "pubkey": None}


def test_user_db_get_is_answered_user_db_user_found_or_not(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    _, bob, _ = node.connect_user(keys[2])
    (answer,) = sent_to(node.feed(a_conn, frames.user_db_get(alice, "server_*", NOW, bob)), a_conn, "USER_DB_USER")
    assert answer.payload == {"user_id": bob, "found": True, "pubkey": crypto.encode_public_key(keys[2])}
    (missing,) = sent_to(
        node.feed(a_conn, frames.user_db_get(alice, "server_*", NOW, "nobody")), a_conn, "USER_DB_USER"
    )
    assert missing.payload == {"user_id": "nobody", "found": False, "pubkey": ""}


def test_a_pem_client_gets_looked_up_keys_in_its_own_form(node, keys) -> None:
    g56_conn, g56_user, _ = connect_g56(node, keys[1])
    _, bob, _ = node.connect_user(keys[2])
    (answer,) = sent_to(
        node.feed(g56_conn, frames.pubkey_request(g56_user, "x", NOW, bob)), g56_conn, "PUBKEY_RESPONSE"
    )
    assert answer.payload["pubkey"] == pem_b64url(keys[2])


def test_members_snapshot_names_only_the_holders_of_g17s_group_key(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    node.connect_user(keys[2])
    ask = Envelope(type="PUBLIC_MEMBERS_SNAPSHOT", from_=alice, to="server-1", ts=NOW, payload={})
    (snapshot,) = sent_to(node.feed(a_conn, ask), a_conn, "PUBLIC_MEMBERS_SNAPSHOT")
    assert snapshot.payload == {"members": [], "version": node.state.channel_version}


# --- keys in deliveries ----------------------------------------------------------------


def test_a_delivery_carries_the_senders_key_in_the_recipients_form(node, keys) -> None:
    g56_conn, g56_user, _ = connect_g56(node, keys[1])
    our_conn, ours, _ = node.connect_user(keys[2])
    (to_g56,) = sent_to(
        node.feed(our_conn, dm(ours, g56_user, crypto.encode_public_key(keys[2]))), g56_conn, "USER_DELIVER"
    )
    assert to_g56.payload["sender_pub"] == pem_b64url(keys[2])
    (to_ours,) = sent_to(node.feed(g56_conn, dm(g56_user, ours, pem_b64url(keys[1]))), our_conn, "USER_DELIVER")
    assert to_ours.payload["sender_pub"] == crypto.encode_public_key(keys[1])


# --- presence pushed to users ----------------------------------------------------------


def adverts_to(actions, conn: int) -> dict[str, dict]:
    return {f.payload["user_id"]: f.payload for f in sent_to(actions, conn, "USER_ADVERTISE")}


def test_a_newcomer_gets_everyone_and_everyone_gets_the_newcomer(node, keys) -> None:
    a_conn, alice, _ = connect_peer(node, keys[1], name="Alice")
    g56_conn, g56_user, actions = connect_g56(node, keys[2])
    catch_up = adverts_to(actions, g56_conn)
    assert set(catch_up) == {alice}  # never itself
    assert catch_up[alice]["meta"]["pubkey"] == pem_b64url(keys[1]) and catch_up[alice]["meta"]["name"] == "Alice"
    assert catch_up[alice]["server_id"] == node.server_id
    told = adverts_to(actions, a_conn)
    assert set(told) == {g56_user}
    assert told[g56_user]["meta"]["pubkey"] == crypto.encode_public_key(keys[2])  # Alice's own (DER) form


def test_a_user_who_leaves_is_removed_from_the_others(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = connect_peer(node, keys[2])
    (removed,) = sent_to(node.drop(a_conn), b_conn, "USER_REMOVE")
    assert removed.payload == {"user_id": alice, "server_id": node.server_id}


def test_a_burst_of_hellos_costs_one_advert_per_user_not_one_per_pair(node, keys) -> None:
    """Batched (the process driver's mode): n hellos in one batch give n adverts, each
    addressed to the other n-1, instead of a round of pushes per hello."""
    node.state.batch_joins = True
    conns = [connect_peer(node, keys[1 + i % 3])[0] for i in range(6)]
    actions = core.handle(node.state, BatchEnd())
    adverts = sends(actions, "USER_ADVERTISE")
    assert len(adverts) == 6
    for conn in conns:
        assert len(sent_to(actions, conn, "USER_ADVERTISE")) == 5
    assert not core.handle(node.state, BatchEnd())  # nothing is told twice


def test_a_newcomer_is_told_of_users_who_came_in_the_same_batch_once(node, keys) -> None:
    first_conn, first, _ = connect_peer(node, keys[1])
    node.state.batch_joins = True
    second_conn, second, _ = connect_peer(node, keys[2])
    third_conn, third, _ = connect_peer(node, keys[3])
    actions = core.handle(node.state, BatchEnd())
    assert sorted(adverts_to(actions, first_conn)) == sorted([second, third])
    for conn, others in ((second_conn, {first, third}), (third_conn, {first, second})):
        got = [f.payload["user_id"] for f in sent_to(actions, conn, "USER_ADVERTISE")]
        assert sorted(got) == sorted(others)


def test_our_own_client_and_the_bench_get_no_pushes(node, keys) -> None:
    """They ask LIST_REQUEST instead; pushing every hello to every user is n^2 frames."""
    ours_conn, ours, _ = node.connect_user(keys[1])  # client "socp-cli"
    bench_conn, _, _ = connect_peer(node, keys[2], client="socp-bench")
    peer_conn, _, actions = connect_peer(node, keys[3])
    assert not sent_to(actions, ours_conn, "USER_ADVERTISE") and not sent_to(actions, bench_conn, "USER_ADVERTISE")
    assert ours in adverts_to(actions, peer_conn)  # while others still learn of them


# --- G17's register and password login -------------------------------------------------

CHEAP = dict(memory_kib=64, iterations=1, lanes=1)  # the bounds allow it; tests stay fast


def register(user_id: str, key, password: str = "pw") -> Envelope:
    phc = password_hash.make_hash(password, b"salt-for-" + user_id[:8].encode(), **CHEAP)
    return frames.peer_register(user_id, "server-1", NOW, crypto.encode_public_key(key), "U0MxYmxvYg", phc)


def test_g17_registers_logs_in_and_says_hello_on_one_connection(node, keys) -> None:
    user_id, conn = new_id(), 50
    actions = node.feed(conn, register(user_id, keys[1]))
    (ack,) = sent_to(actions, conn, "ACK")
    assert ack.payload["msg_ref"] == "REGISTER_OK" and not closes(actions)
    assert store_writes(actions, "bind_user") and store_writes(actions, "set_login")
    (fail,) = sent_to(node.feed(conn, frames.password_login(user_id, "server-1", NOW, "wrong")), conn, "LOGIN_FAIL")
    assert fail.payload["code"] == "FORBIDDEN"
    actions = node.feed(conn, frames.password_login(user_id, "server-1", NOW, "pw"))
    (success,) = sent_to(actions, conn, "LOGIN_SUCCESS")
    assert success.payload == {"pubkey": crypto.encode_public_key(keys[1]), "privkey_store": "U0MxYmxvYg"}
    assert not closes(actions)
    hello = Envelope(
        type="USER_HELLO",
        from_=user_id,
        to="server-1",
        ts=NOW,
        payload={"client": "cli-v1", "pubkey": success.payload["pubkey"], "enc_pubkey": success.payload["pubkey"]},
    )
    node.feed(conn, hello)
    assert node.state.local_users[user_id] == conn


def g17_user(node: Harness, key, conn: int) -> tuple[str, list]:
    """Register, log in and say hello the way G17's client does; the user id and
    what the hello got."""
    user_id = new_id()
    node.feed(conn, register(user_id, key))
    node.feed(conn, frames.password_login(user_id, "server-1", NOW, "pw"))
    hello = Envelope(
        type="USER_HELLO",
        from_=user_id,
        to="server-1",
        ts=NOW,
        payload={
            "client": "cli-v1",
            "pubkey": crypto.encode_public_key(key),
            "enc_pubkey": crypto.encode_public_key(key),
        },
    )
    return user_id, node.feed(conn, hello)


def test_g17_clients_get_the_group_key_and_their_public_copies(node, keys) -> None:
    node.state.peer_channel.issuer = keys[5]  # else made on first use (RSA-4096 keygen)
    alice, actions = g17_user(node, keys[1], 40)
    (share,) = sent_to(actions, 40, "PUBLIC_CHANNEL_KEY_SHARE")
    shares, creator_pub = share.payload["shares"], share.payload["creator_pub"]
    assert [s["member"] for s in shares] == [alice] and share.to == alice
    # What G17's client checks (crypto_services preimage_keyshare, decrypt_rsa_oaep):
    signed = hashlib.sha256(
        json.dumps(shares, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    ).digest() + b64url_decode(creator_pub)
    assert crypto.verify_pss(crypto.decode_public_key(creator_pub), b64url_decode(share.payload["content_sig"]), signed)
    label = f"public-v{share.payload['version']}".encode()
    group_key = keys[1].decrypt(
        b64url_decode(shares[0]["wrapped"]),
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label),
    )
    assert len(group_key) == 32
    bob, actions = g17_user(node, keys[2], 41)
    (bob_share,) = sent_to(actions, 41, "PUBLIC_CHANNEL_KEY_SHARE")
    assert (
        keys[2].decrypt(
            b64url_decode(bob_share.payload["shares"][0]["wrapped"]),
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label),
        )
        == group_key
    )  # one key for all
    other_conn, _, _ = connect_peer(node, keys[3])
    ask = Envelope(type="PUBLIC_MEMBERS_SNAPSHOT", from_=alice, to="server-1", ts=NOW, payload={})
    (snapshot,) = sent_to(node.feed(40, ask), 40, "PUBLIC_MEMBERS_SNAPSHOT")
    assert snapshot.payload["members"] == sorted([alice, bob])
    # Alice's copy for Bob goes to Bob only, unchanged.
    copy = Envelope(
        type="MSG_PUBLIC_CHANNEL",
        from_=alice,
        to=bob,
        ts=NOW + 1,
        payload={
            "ciphertext": b64url_encode(b"\x02" * 512),
            "sender_pub": crypto.encode_public_key(keys[1]),
            "group_id": "public",
            "public_version": 1,
            "content_sig": b64url_encode(b"s" * 512),
        },
    )
    actions = node.feed(40, copy)
    (delivered,) = sends(actions, "MSG_PUBLIC_CHANNEL")
    assert delivered.targets == ((41, bob),) and delivered.frame.payload == copy.payload
    assert not sent_to(actions, other_conn, "MSG_PUBLIC_CHANNEL")


def test_g17_register_of_a_known_id_is_refused_name_in_use(node, keys) -> None:
    _, alice, _ = node.connect_user(keys[1])
    actions = node.feed(60, register(alice, keys[2]))
    assert errors_to(actions, 60) == ["NAME_IN_USE"] and closes(actions) == [60]
    assert node.state.users[alice].pubkey == crypto.encode_public_key(keys[1])


def test_g17_register_with_an_unusable_hash_is_refused_malformed(node, keys) -> None:
    frame = frames.peer_register(
        new_id(), "server-1", NOW, crypto.encode_public_key(keys[1]), "U0MxYmxvYg", "plain-password"
    )
    actions = node.feed(61, frame)
    assert errors_to(actions, 61) == ["MALFORMED"] and closes(actions) == [61]


def test_g17_password_guesses_meet_the_same_lockout(node, keys) -> None:
    user_id = new_id()
    node.feed(70, register(user_id, keys[1]))
    settings = node.state.accounts.settings
    for _ in range(settings.free_failures):
        node.state.now_ms += 1000  # the node-wide login bucket refills meanwhile
        (fail,) = sent_to(node.feed(70, frames.password_login(user_id, "s", NOW, "guess")), 70, "LOGIN_FAIL")
        assert fail.payload["code"] == "FORBIDDEN"
    node.state.now_ms += 1000
    (locked,) = sent_to(node.feed(70, frames.password_login(user_id, "s", NOW, "pw")), 70, "LOGIN_FAIL")
    assert locked.payload["code"] == "RATE_LIMITED"


def test_a_password_does_not_open_one_of_our_own_login_records(node, keys) -> None:
    """Our records hold a scrypt verifier for a challenge-response: a G17-style
    LOGIN_REQUEST {password} never logs into them, whatever the password."""
    _, alice, _ = node.connect_user(keys[1])
    node.state.accounts.logins[alice] = LoginRecord("blob", "socp-scrypt-v1$...")
    (fail,) = sent_to(node.feed(80, frames.password_login(alice, "s", NOW, "anything")), 80, "LOGIN_FAIL")
    assert fail.payload["code"] == "FORBIDDEN"


def test_a_login_request_with_neither_user_id_nor_password_says_what_we_support(node) -> None:
    frame = Envelope(type=T.LOGIN_REQUEST.value, from_=new_id(), to="server-1", ts=NOW, payload={})
    actions = node.feed(90, frame)
    (error,) = sent_to(actions, 90, "ERROR")
    assert error.payload["code"] == "MALFORMED" and "LOGIN_REQUEST {password}" in error.payload["detail"]
    assert closes(actions) == [90]


def test_our_own_login_request_still_gets_a_challenge(node, keys) -> None:
    user_id = new_id()
    actions = node.feed(91, frames.login_request(user_id, node.server_id, NOW))
    assert sent_to(actions, 91, "LOGIN_CHALLENGE")


# --- presence learned from other servers -------------------------------------------------


def test_users_of_another_server_are_pushed_as_they_come_and_go(keys) -> None:
    mesh = mesh_through_one_introducer(keys, names="ab")
    watcher_conn = 100
    mesh.user_frame(
        "a", watcher_conn, frames.user_hello(new_id(), None, NOW, crypto.encode_public_key(keys[3]), client="cli-v1")
    )
    remote_conn, remote = mesh.connect_user("b", keys[4])
    mesh.settle()
    (advert,) = [f for f in mesh.received("a", watcher_conn, "USER_ADVERTISE") if f.payload["user_id"] == remote]
    assert advert.payload["server_id"] == mesh.nodes["b"].server_id
    assert advert.payload["meta"]["pubkey"] == crypto.encode_public_key(keys[4])
    mesh.event("b", LinkDown(remote_conn, "gone"))
    mesh.settle()
    assert [f.payload["user_id"] for f in mesh.received("a", watcher_conn, "USER_REMOVE")] == [remote]


def test_a_present_user_with_no_known_key_is_advertised_without_one(node, keys) -> None:
    """G17's servers advertise users without meta.pubkey: such a user is present, not removed."""
    conn, _, _ = connect_peer(node, keys[1])
    node.state.users["keyless"] = UserRecord(pubkey="", home_server="g17-server")
    node.state.user_locations["keyless"] = "g17-server"
    node.state.presence_changed["keyless"] = None
    actions = user_presence.flush(node.state)
    (advert,) = sent_to(actions, conn, "USER_ADVERTISE")
    assert advert.payload == {"user_id": "keyless", "server_id": "g17-server", "meta": {}}
    assert not sent_to(actions, conn, "USER_REMOVE")


def test_a_g17_login_that_never_says_hello_is_forgotten_when_its_link_goes(node, keys) -> None:
    user_id = new_id()
    node.feed(95, register(user_id, keys[1]))
    node.feed(95, frames.password_login(user_id, "server-1", NOW, "pw"))
    assert 95 in node.state.peer_channel.logged_in
    node.drop(95)
    assert 95 not in node.state.peer_channel.logged_in


# --- G101's client ---------------------------------------------------------------------


def connect_g101(node: Harness, key, name: str) -> tuple[int, str, list]:
    if node.state.peer_channel.g101_key is None:
        node.state.peer_channel.g101_key = node.server_key  # else made on first use (RSA-4096 keygen)
    conn = node.next_conn
    node.next_conn += 1
    hello = Envelope(
        type="USER_HELLO",
        from_=name,
        to="server@127.0.0.1:8765",
        ts=NOW,
        payload={
            "client": "cli-v1",
            "pubkey": crypto.encode_public_key(key),
            "enc_pubkey": crypto.encode_public_key(key),
        },
    )
    return conn, name, node.feed(conn, hello)


def test_g101_reads_who_sent_a_dm_from_the_payload(node, keys) -> None:
    """G101's client takes a USER_DELIVER without payload.from/to for a public message:
    it gets them, as this node authenticated the sender, and the ts the sender signed."""
    a_conn, alice, _ = connect_g101(node, keys[1], "alice101")
    b_conn, bob, _ = connect_g101(node, keys[2], "bob101")
    our_conn, ours, _ = node.connect_user(keys[3])
    payload = {
        "ciphertext": b64url_encode(b"\x01" * 512),
        "content_sig": b64url_encode(b"s" * 512),
        "sender_pub": crypto.encode_public_key(keys[1]),
        "from": "someone-else",
        "to": bob,
        "ts": NOW - 5,
    }
    frame = Envelope(type="MSG_DIRECT", from_=alice, to=bob, ts=NOW, payload=payload)
    (deliver,) = sent_to(node.feed(a_conn, frame), b_conn, "USER_DELIVER")
    assert deliver.payload["from"] == alice and deliver.payload["to"] == bob and deliver.payload["ts"] == NOW - 5
    assert deliver.payload["sender"] == alice
    (to_ours,) = sent_to(
        node.feed(a_conn, dm(alice, ours, crypto.encode_public_key(keys[1]))), our_conn, "USER_DELIVER"
    )
    assert "from" not in to_ours.payload and "to" not in to_ours.payload  # ours stays the standard's shape


def test_a_dm_signed_over_its_payload_ts_reaches_our_client_with_that_ts(node, keys) -> None:
    """G101's client signs a DM over payload.from/to/ts (its payload ts a few ms before
    the envelope's): our client can check that signature only if the ts comes along.
    Before: dropped for every recipient but G101's clients (seen live: socp chat
    said "content signature does not verify")."""
    a_conn, alice, _ = connect_g101(node, keys[1], "alice101")
    our_conn, ours, _ = node.connect_user(keys[3])
    payload = {
        "ciphertext": b64url_encode(b"\x01" * 512),
        "content_sig": b64url_encode(b"s" * 512),
        "sender_pub": crypto.encode_public_key(keys[1]),
        "from": "someone-else",
        "to": ours,
        "ts": NOW - 4,
    }
    frame = Envelope(type="MSG_DIRECT", from_=alice, to=ours, ts=NOW, payload=payload)
    (deliver,) = sent_to(node.feed(a_conn, frame), our_conn, "USER_DELIVER")
    assert (deliver.payload["from"], deliver.payload["to"], deliver.payload["ts"]) == (alice, ours, NOW - 4)
    assert deliver.payload["sender"] == alice and deliver.ts == NOW


def test_g101_who_without_to_or_ts_is_answered_who(node, keys) -> None:
    a_conn, alice, _ = connect_g101(node, keys[1], "alice101")
    who = parse('{"type":"WHO","from":"alice101","id":"1796508444.1","payload":{}}')
    (reply,) = sent_to(node.feed(a_conn, who), a_conn, "WHO")
    assert reply.payload == {"users": [alice]}


def test_g101_members_get_the_channel_key_pair_and_public_posts_as_deliveries(node, keys) -> None:
    a_conn, alice, actions = connect_g101(node, keys[1], "alice101")
    (share,) = sent_to(actions, a_conn, "PUBLIC_CHANNEL_KEY_SHARE")
    shares, creator_pub = share.payload["shares"], share.payload["creator_pub"]
    # What G101's client checks and unwraps (socp/client.py listen, _unwrap_channel_priv_package):
    assert crypto.verify_pss(
        crypto.decode_public_key(creator_pub),
        b64url_decode(share.payload["content_sig"]),
        canonical_json({"shares": shares, "creator_pub": creator_pub}),
    )
    package = json.loads(b64url_decode(shares[0]["wrapped_public_channel_key"]))
    aes_key = keys[1].decrypt(
        b64url_decode(package["ek"]),
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    channel_key = serialization.load_der_private_key(
        AESGCM(aes_key).decrypt(b64url_decode(package["iv"]), b64url_decode(package["ct"]), None), password=None
    )
    assert crypto.encode_public_key(channel_key) == creator_pub and shares[0]["member"] == alice
    b_conn, bob, _ = connect_g101(node, keys[2], "bob101")
    our_conn, ours, _ = node.connect_user(keys[3])
    post = frames.msg_public_channel(
        alice, NOW + 7, b64url_encode(b"\x03" * 512), crypto.encode_public_key(keys[1]), b64url_encode(b"s" * 512)
    )
    actions = node.feed(a_conn, post)
    (to_bob,) = sent_to(actions, b_conn, "USER_DELIVER")
    assert to_bob.from_ == alice and to_bob.ts == NOW + 7
    assert to_bob.payload == {k: post.payload[k] for k in ("ciphertext", "sender_pub", "content_sig")}
    assert not sent_to(actions, b_conn, "MSG_PUBLIC_CHANNEL")
    assert sent_to(actions, our_conn, "MSG_PUBLIC_CHANNEL") and not sent_to(actions, our_conn, "USER_DELIVER")


def test_g101_members_get_public_files_unchanged(node, keys) -> None:
    a_conn, alice, _ = connect_g101(node, keys[1], "alice101")
    b_conn, _, _ = connect_g101(node, keys[2], "bob101")
    for frame in (
        frames.file_start(alice, "public", NOW, "f1", "a.bin", 3, "ab" * 32, "public"),
        frames.file_chunk(alice, "public", NOW, "f1", 0, b64url_encode(b"\x04" * 512)),
    ):
        (got,) = sent_to(node.feed(a_conn, frame), b_conn)
        assert got.type == frame.type and got.payload == frame.payload
