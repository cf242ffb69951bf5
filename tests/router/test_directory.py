"""Pure tests of the directory rules (socp/router/directory.py): DIRECTORY_GET, the
HTTP look-up (DirectoryQueried), LOGIN_REGISTER, remote keys from gossip, and the
start-up mirror."""

from __future__ import annotations

from pathlib import Path

import pytest

from socp.config import NodeConfig
from socp.identity import NodeIdentity
from socp.protocol import crypto, frames, login, signing
from socp.protocol.ids import new_id
from socp.router import core
from socp.router.core_io import DirectoryQueried, QueryAnswer, Send
from socp.router.snapshot import state_from_snapshot
from socp.store.records import StoreSnapshot
from socp.store.records import UserRecord as StoredUser

from .harness import NOW, Harness, closes, errors_to, sent_to, store_writes
from .test_federation import mesh3  # noqa: F401 - the three-node fixture

FAST = login.ScryptParams(n=2**10, r=8, p=1)


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


@pytest.fixture(scope="module")
def registration(keys) -> login.Registration:
    return login.register("pw", keys[1], FAST)


def signed_hello(node: Harness, key, user_id: str | None = None) -> tuple[int, str]:
    conn = node.next_conn
    node.next_conn += 1
    user_id = user_id or new_id()
    hello = frames.user_hello(user_id, node.server_id, NOW, crypto.encode_public_key(key))
    node.feed(conn, signing.sign_envelope(key, hello))
    assert node.state.local_users[user_id] == conn
    return conn, user_id


def get(node: Harness, conn: int, asker: str, wanted: str, ts: int = NOW):
    return node.feed(conn, frames.directory_get(asker, node.server_id, ts, wanted))


def test_directory_get_answers_a_local_user(node, keys) -> None:
    a_conn, alice = signed_hello(node, keys[1])
    _, bob = signed_hello(node, keys[2])
    (entry,) = sent_to(get(node, a_conn, alice, bob), a_conn, "DIRECTORY_ENTRY")
    assert entry.payload == {"user_id": bob, "pubkey": crypto.encode_public_key(keys[2]),
                             "server_id": node.server_id, "remote": False, "version": 1, "revoked": False}
    assert entry.from_ == node.server_id and entry.to == alice


def test_directory_get_unknown_user_is_user_not_found(node, keys) -> None:
    a_conn, alice = signed_hello(node, keys[1])
    actions = get(node, a_conn, alice, new_id())
    assert errors_to(actions, a_conn) == ["USER_NOT_FOUND"]
    assert not sent_to(actions, a_conn, "DIRECTORY_ENTRY")


def test_directory_get_shows_revocation_and_version(node, keys) -> None:
    a_conn, alice = signed_hello(node, keys[1])
    node.state.accounts.revoked.add(alice)
    node.state.accounts.versions[alice] = 7
    (entry,) = sent_to(get(node, a_conn, alice, alice), a_conn, "DIRECTORY_ENTRY")
    assert (entry.payload["revoked"], entry.payload["version"]) == (True, 7)


def test_directory_get_needs_a_hello_first(node, keys) -> None:
    actions = node.feed(99, frames.directory_get(new_id(), node.server_id, NOW, new_id()))
    assert errors_to(actions, 99) == ["MALFORMED"] and closes(actions) == [99]


def test_remote_users_are_served_marked_remote(mesh3, keys) -> None:  # noqa: F811 - the fixture imported above
    a, c = mesh3.nodes["a"], mesh3.nodes["c"]
    _, alice = mesh3.connect_user("a", keys[3], display_name="Alice")
    c_conn, carol = mesh3.connect_user("c", keys[4])
    mesh3.user_frame("c", c_conn, frames.directory_get(carol, c.server_id, mesh3.now, alice))
    (entry,) = mesh3.received("c", c_conn, "DIRECTORY_ENTRY")
    assert entry.payload == {"user_id": alice, "pubkey": crypto.encode_public_key(keys[3]),
                             "server_id": a.server_id, "remote": True, "version": 1, "revoked": False}
    # Gossip with the key is written through, once, marked with the home server.
    binds = [w for w in c.store_log if w.operation == "bind_remote_user" and w.arguments[0] == alice]
    assert [w.arguments for w in binds] == [(alice, crypto.encode_public_key(keys[3]), a.server_id,
                                             {"display_name": "Alice"})]


def test_gossip_repeating_a_known_key_writes_nothing(node, keys) -> None:
    from socp.router import directory
    from socp.router.state import UserRecord

    user = new_id()
    home = new_id()
    node.state.users[user] = UserRecord(pubkey="k1", display_name="A", home_server=home)
    before = UserRecord(pubkey="k1", display_name="A", home_server=home)
    assert directory.remote_user_learned(node.state, user, before) == []
    node.state.users[user] = UserRecord(pubkey="k2", display_name="A", home_server=home)
    (write,) = directory.remote_user_learned(node.state, user, before)
    assert write.operation == "bind_remote_user" and write.arguments[1] == "k2"
    # A user registered here that another server now advertises: the store keeps it
    # local (local binding wins), so the version does not move.
    local = new_id()
    node.state.accounts.versions[local] = 3
    node.state.users[local] = UserRecord(pubkey="k3", home_server=home)
    directory.remote_user_learned(node.state, local, UserRecord(pubkey="k3"))
    assert node.state.accounts.versions[local] == 3


def test_login_register_is_stored_mirrored_and_acked(node, keys, registration) -> None:
    conn, alice = signed_hello(node, keys[1])
    frame = frames.login_register(alice, node.server_id, NOW, registration.privkey_store, registration.pake_password)
    actions = node.feed(conn, frame)
    (write,) = store_writes(actions, "set_login")
    assert write.arguments == (alice, registration.privkey_store, registration.pake_password)
    (ack,) = sent_to(actions, conn, "ACK")
    assert ack.payload == {"msg_ref": "LOGIN_REGISTER"}
    record = node.state.accounts.logins[alice]
    assert (record.privkey_store, record.pake_password) == (registration.privkey_store, registration.pake_password)
    assert node.state.accounts.versions[alice] == 2


def test_login_register_needs_a_signed_hello(node, keys, registration) -> None:
    conn, alice, _ = node.connect_user(keys[1])   # unsigned hello: proves nothing
    actions = node.feed(conn, frames.login_register(alice, node.server_id, NOW, registration.privkey_store,
                                                    registration.pake_password))
    assert errors_to(actions, conn) == ["FORBIDDEN"]
    assert not store_writes(actions, "set_login") and alice not in node.state.accounts.logins


def test_login_register_only_for_own_id(node, keys, registration) -> None:
    conn, alice = signed_hello(node, keys[1])
    _, bob = signed_hello(node, keys[2])
    actions = node.feed(conn, frames.login_register(bob, node.server_id, NOW, registration.privkey_store,
                                                    registration.pake_password))
    assert errors_to(actions, conn) == ["FORBIDDEN"]
    assert bob not in node.state.accounts.logins


@pytest.mark.parametrize("field, value", [("privkey_store", "-----BEGIN " + "PRIVATE KEY-----"),
                                          ("pake_password", "plaintext-password")])
def test_login_register_refuses_values_that_are_not_ours(node, keys, registration, field, value) -> None:
    conn, alice = signed_hello(node, keys[1])
    values = {"privkey_store": registration.privkey_store, "pake_password": registration.pake_password, field: value}
    actions = node.feed(conn, frames.login_register(alice, node.server_id, NOW, **values))
    assert errors_to(actions, conn) == ["MALFORMED"]
    assert alice not in node.state.accounts.logins


def test_snapshot_is_mirrored(tmp_path: Path, keys) -> None:
    local, remote, revoked = new_id(), new_id(), new_id()
    home = new_id()
    snapshot = StoreSnapshot(
        users={local: StoredUser("k-local", {"display_name": "L"}, 4, False, None, "blob", "verifier"),
               remote: StoredUser("k-remote", {}, 2, False, home, "", ""),
               revoked: StoredUser("k-old", {}, 9, True, None, "", "")},
        pinned_servers={}, pending_key_shares=(), public_channel_version=1, public_channel_members=())
    config = NodeConfig(data_dir=tmp_path)
    state = state_from_snapshot(NodeIdentity(new_id(), keys[0]), config, snapshot)
    assert state.users[local].home_server == "" and state.users[remote].home_server == home
    assert state.accounts.logins[local].privkey_store == "blob"
    assert remote not in state.accounts.logins
    assert state.accounts.versions == {local: 4, remote: 2, revoked: 9}
    assert state.accounts.revoked == {revoked}


# --- GET /directory/<user_id> (DirectoryQueried) ------------------------------------------


def query(node: Harness, user_id: str, query_id: int = -1) -> list:
    return core.handle(node.state, DirectoryQueried(query_id, user_id))


def test_http_query_gets_the_entry_a_directory_get_gets(node, keys) -> None:
    a_conn, alice = signed_hello(node, keys[1])
    (entry,) = sent_to(get(node, a_conn, alice, alice), a_conn, "DIRECTORY_ENTRY")
    (answer,) = query(node, alice, query_id=-7)
    assert isinstance(answer, QueryAnswer) and answer.query == -7
    assert answer.frame is not None and answer.detail == ""
    assert (answer.frame.type, answer.frame.from_, answer.frame.to) == ("DIRECTORY_ENTRY", node.server_id, "*")
    assert answer.frame.payload == entry.payload   # the same signed fields, whoever asks
    assert answer.frame.sig == ""                  # signed by a verifier, never by the router


def test_http_query_for_an_unknown_user_is_a_miss_without_a_signature(node, keys) -> None:
    stranger = new_id()
    actions = query(node, stranger, query_id=-3)
    assert actions == [QueryAnswer(-3, None, f"no key known for user {stranger}")]
    assert not [a for a in actions if isinstance(a, Send)]   # nothing to sign, no ERROR frame


def test_http_query_shows_revocation_and_version(node, keys) -> None:
    _, alice = signed_hello(node, keys[1])
    node.state.accounts.revoked.add(alice)
    node.state.accounts.versions[alice] = 5
    (answer,) = query(node, alice)
    assert (answer.frame.payload["revoked"], answer.frame.payload["version"]) == (True, 5)


def test_http_query_serves_remote_users_marked_remote(mesh3, keys) -> None:  # noqa: F811 - the fixture imported above
    a, c = mesh3.nodes["a"], mesh3.nodes["c"]
    _, alice = mesh3.connect_user("a", keys[3], display_name="Alice")
    (answer,) = core.handle(c.state, DirectoryQueried(-1, alice))
    assert answer.frame.payload == {"user_id": alice, "pubkey": crypto.encode_public_key(keys[3]),
                                    "server_id": a.server_id, "remote": True, "version": 1, "revoked": False}
    assert answer.frame.from_ == c.server_id     # the node asked signs for what it learned
