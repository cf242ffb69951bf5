"""Pure tests of password login (socp/router/login.py): challenge, proof, blob,
no user enumeration, per-user lockout, one login per connection."""

from __future__ import annotations

import itertools

import pytest

from socp.protocol import crypto, frames, login, signing
from socp.protocol.ids import new_id
from socp.router.events import Close
from socp.router.links import LinkState

from .harness import NOW, Harness, closes, errors_to, sent_to

FAST = login.ScryptParams(n=2**10, r=8, p=1)
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def registration(keys) -> login.Registration:
    return login.register(PASSWORD, keys[1], FAST)


@pytest.fixture
def node(keys, registration) -> tuple[Harness, str]:
    """A node where alice (keys[1]) registered a login, then left."""
    harness = Harness(server_key=keys[0])
    counter = itertools.count(1)
    # Deterministic nonces: 32 bytes that differ per challenge.
    harness.state.accounts.random_bytes = lambda n: next(counter).to_bytes(n, "big")
    alice = new_id()
    hello = frames.user_hello(alice, harness.server_id, NOW, crypto.encode_public_key(keys[1]))
    harness.feed(1, signing.sign_envelope(keys[1], hello))
    harness.feed(1, frames.login_register(alice, harness.server_id, NOW, registration.privkey_store,
                                          registration.pake_password))
    harness.drop(1)
    harness.next_conn = 10
    return harness, alice


def start(harness: Harness, user_id: str) -> tuple[int, list]:
    conn = harness.next_conn
    harness.next_conn += 1
    return conn, harness.feed(conn, frames.login_request(user_id, harness.server_id, harness.state.now_ms))


def attempt(harness: Harness, user_id: str, password: str) -> tuple[int, list]:
    """One whole login on a new connection: request, then the proof for `password`."""
    conn, actions = start(harness, user_id)
    challenges = sent_to(actions, conn, "LOGIN_CHALLENGE")
    if not challenges:
        return conn, actions
    proof, _ = login.answer_challenge(password, user_id, challenges[0].from_, challenges[0].payload)
    return conn, harness.feed(conn, frames.login_proof(user_id, harness.server_id, harness.state.now_ms, proof))


def test_request_gets_a_challenge_with_the_users_salt_and_params(node, registration) -> None:
    harness, alice = node
    conn, actions = start(harness, alice)
    (challenge,) = sent_to(actions, conn, "LOGIN_CHALLENGE")
    verifier = login.parse_verifier(registration.pake_password)
    assert challenge.to == alice and challenge.from_ == harness.server_id
    assert challenge.payload["salt"] == login.challenge_fields(verifier, b"")["salt"]
    assert challenge.payload["params"] == {"kdf": "scrypt", "n": 1024, "r": 8, "p": 1}
    assert harness.state.links[conn].state is LinkState.AWAITING_HELLO
    assert not closes(actions)


def test_right_password_gets_the_blob_and_the_connection_closes(node, keys, registration) -> None:
    harness, alice = node
    conn, actions = attempt(harness, alice, PASSWORD)
    (blob,) = sent_to(actions, conn, "LOGIN_BLOB")
    assert blob.payload == {"user_id": alice, "privkey_store": registration.privkey_store,
                            "pubkey": crypto.encode_public_key(keys[1])}
    assert [a for a in actions if isinstance(a, Close)] == [Close(conn, 1000, "login done: say USER_HELLO on a new connection")]
    assert actions.index(next(a for a in actions if isinstance(a, Close))) > 0   # the blob is written first
    assert alice not in harness.state.local_users      # logging in is not saying hello
    assert harness.state.accounts.logins_ok == 1


def test_wrong_password_is_refused_and_closed(node) -> None:
    harness, alice = node
    conn, actions = attempt(harness, alice, "wrong")
    assert errors_to(actions, conn) == ["FORBIDDEN"]
    assert closes(actions) == [conn] and not sent_to(actions, conn, "LOGIN_BLOB")


def test_unknown_user_looks_like_a_wrong_password(node) -> None:
    harness, alice = node
    stranger = new_id()
    conn, actions = start(harness, stranger)
    (challenge,) = sent_to(actions, conn, "LOGIN_CHALLENGE")
    (real,) = sent_to(start(harness, alice)[1], harness.next_conn - 1, "LOGIN_CHALLENGE")
    assert set(challenge.payload) == set(real.payload)
    assert len(challenge.payload["salt"]) == len(real.payload["salt"])
    assert challenge.payload["params"] == login.DEFAULT_PARAMS.to_json()
    # The decoy salt is stable for an id, as a real one would be.
    again = sent_to(start(harness, stranger)[1], harness.next_conn - 1, "LOGIN_CHALLENGE")[0]
    assert again.payload["salt"] == challenge.payload["salt"]
    # Any proof: the same error, the same detail, as a wrong password.
    wrong_conn, wrong = attempt(harness, alice, "wrong")
    proof = harness.feed(conn, frames.login_proof(stranger, harness.server_id, NOW, "AAAA"))
    assert sent_to(proof, conn, "ERROR")[0].payload == sent_to(wrong, wrong_conn, "ERROR")[0].payload


def test_remote_and_revoked_users_cannot_log_in(node, keys) -> None:
    harness, alice = node
    harness.state.accounts.revoked.add(alice)
    conn, actions = attempt(harness, alice, PASSWORD)
    assert errors_to(actions, conn) == ["FORBIDDEN"] and not sent_to(actions, conn, "LOGIN_BLOB")


def test_proof_is_bound_to_its_connection_and_nonce(node) -> None:
    harness, alice = node
    first, actions = start(harness, alice)
    (challenge,) = sent_to(actions, first, "LOGIN_CHALLENGE")
    proof, _ = login.answer_challenge(PASSWORD, alice, harness.server_id, challenge.payload)
    # An eavesdropper replays the proof on its own connection, with its own challenge.
    second, _ = start(harness, alice)
    replayed = harness.feed(second, frames.login_proof(alice, harness.server_id, NOW, proof))
    assert errors_to(replayed, second) == ["FORBIDDEN"]
    # A proof on a connection that asked for nothing.
    orphan = harness.feed(77, frames.login_proof(alice, harness.server_id, NOW, proof))
    assert errors_to(orphan, 77) == ["FORBIDDEN"] and closes(orphan) == [77]
    # The rightful connection still succeeds, once.
    ok = harness.feed(first, frames.login_proof(alice, harness.server_id, NOW, proof))
    assert sent_to(ok, first, "LOGIN_BLOB")
    assert harness.feed(first, frames.login_proof(alice, harness.server_id, NOW, proof)) == []   # closing


def test_one_login_per_connection(node) -> None:
    harness, alice = node
    conn, _ = start(harness, alice)
    again = harness.feed(conn, frames.login_request(alice, harness.server_id, NOW + 1))
    assert errors_to(again, conn) == ["FORBIDDEN"] and closes(again) == [conn]


def test_from_must_be_the_user_logging_in(node) -> None:
    harness, alice = node
    request = frames.login_request(alice, harness.server_id, NOW)
    forged = type(request)(type=request.type, from_=new_id(), to=request.to, ts=request.ts, payload=request.payload)
    actions = harness.feed(50, forged)
    assert errors_to(actions, 50) == ["FORBIDDEN"]


def test_expired_challenge_is_refused(node) -> None:
    harness, alice = node
    conn, actions = start(harness, alice)
    (challenge,) = sent_to(actions, conn, "LOGIN_CHALLENGE")
    proof, _ = login.answer_challenge(PASSWORD, alice, harness.server_id, challenge.payload)
    harness.state.now_ms += harness.state.accounts.settings.challenge_ttl_ms + 1
    actions = harness.feed(conn, frames.login_proof(alice, harness.server_id, harness.state.now_ms, proof))
    assert errors_to(actions, conn) == ["TIMEOUT"]


def test_repeated_failures_lock_the_user_id_with_doubling_waits(node) -> None:
    harness, alice = node
    settings = harness.state.accounts.settings
    for _ in range(settings.free_failures):
        conn, actions = attempt(harness, alice, "guess")
        assert errors_to(actions, conn) == ["FORBIDDEN"]
    # Locked now: even the right password waits, and the answer says how long.
    conn, actions = attempt(harness, alice, PASSWORD)
    (error,) = sent_to(actions, conn, "ERROR")
    assert error.payload["code"] == "RATE_LIMITED"
    assert f"retry_after_ms={settings.lockout_ms}" in error.payload["detail"]
    assert closes(actions) == [conn] and not sent_to(actions, conn, "LOGIN_CHALLENGE")
    # After the wait, one more failure locks for twice as long.
    harness.state.now_ms += settings.lockout_ms
    conn, actions = attempt(harness, alice, "guess")
    assert errors_to(actions, conn) == ["FORBIDDEN"]
    conn, actions = start(harness, alice)
    assert f"retry_after_ms={2 * settings.lockout_ms}" in sent_to(actions, conn, "ERROR")[0].payload["detail"]
    # After that wait, the right password works and clears the count.
    harness.state.now_ms += 2 * settings.lockout_ms
    conn, actions = attempt(harness, alice, PASSWORD)
    assert sent_to(actions, conn, "LOGIN_BLOB")
    assert alice not in harness.state.accounts.lockouts


def test_unknown_ids_are_locked_the_same_way(node) -> None:
    harness, _ = node
    stranger = new_id()
    for _ in range(harness.state.accounts.settings.free_failures):
        attempt(harness, stranger, "guess")
    conn, actions = start(harness, stranger)
    assert errors_to(actions, conn) == ["RATE_LIMITED"]


def test_lockout_table_is_bounded(node) -> None:
    harness, _ = node
    harness.state.accounts.settings = type(harness.state.accounts.settings)(max_lockouts=3, challenge_burst=1000)
    for _ in range(5):
        attempt(harness, new_id(), "guess")
    assert len(harness.state.accounts.lockouts) == 3


def test_challenges_are_limited_node_wide(node) -> None:
    harness, alice = node
    accounts = harness.state.accounts
    accounts.settings = type(accounts.settings)(challenge_burst=2)
    accounts.challenge_bucket = None
    assert all(sent_to(start(harness, alice)[1], harness.next_conn - 1, "LOGIN_CHALLENGE") for _ in range(2))
    conn, actions = start(harness, alice)
    assert errors_to(actions, conn) == ["RATE_LIMITED"]


def test_hello_after_login_on_a_new_connection_is_a_normal_user(node, keys) -> None:
    harness, alice = node
    conn, actions = attempt(harness, alice, PASSWORD)
    (blob,) = sent_to(actions, conn, "LOGIN_BLOB")
    _, secret = login.answer_challenge(PASSWORD, alice, harness.server_id,
                                       {**login.challenge_fields(login.parse_verifier(
                                           harness.state.accounts.logins[alice].pake_password), b"\0" * 32)})
    key = login.decrypt_private_key(blob.payload["privkey_store"], secret.enc_key)
    harness.drop(conn)
    hello = signing.sign_envelope(key, frames.user_hello(alice, harness.server_id, NOW + 5,
                                                         crypto.encode_public_key(key)))
    actions = harness.feed(200, hello)
    assert harness.state.local_users[alice] == 200 and not errors_to(actions, 200)
