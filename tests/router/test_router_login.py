"""Pure tests of password login (socp/router/roaming_login.py): challenge, proof, blob,
no user enumeration, per-user lockout, per-address limits, one login per connection."""

from __future__ import annotations

import itertools

import pytest

from socp.ipc.link_state import LinkState
from socp.protocol import crypto, frames, login, signing
from socp.protocol.ids import new_id
from socp.router import core
from socp.router.core_io import Close, LinkUp
from socp.router.roaming_login import address_key

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
    assert [a for a in actions if isinstance(a, Close)] == [
        Close(conn, 1000, "login done: say USER_HELLO on a new connection")
    ]
    assert actions.index(next(a for a in actions if isinstance(a, Close))) > 0  # the blob is written first
    assert alice not in harness.state.local_users  # logging in is not saying hello
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
    assert harness.feed(first, frames.login_proof(alice, harness.server_id, NOW, proof)) == []  # closing


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
    _, secret = login.answer_challenge(
        PASSWORD,
        alice,
        harness.server_id,
        {
            **login.challenge_fields(
                login.parse_verifier(harness.state.accounts.logins[alice].pake_password), b"\0" * 32
            )
        },
    )
    key = login.decrypt_private_key(blob.payload["privkey_store"], secret.enc_key)
    harness.drop(conn)
    hello = signing.sign_envelope(
        key, frames.user_hello(alice, harness.server_id, NOW + 5, crypto.encode_public_key(key))
    )
    actions = harness.feed(200, hello)
    assert harness.state.local_users[alice] == 200 and not errors_to(actions, 200)


# --- wrong passwords per address (the gateway's LinkOpened carries it) ----------------------

HERE = "198.51.100.7"
ELSEWHERE = "203.0.113.9"


def start_from(harness: Harness, address: str, user_id: str) -> tuple[int, list]:
    """A login connection the gateway announced with its address, and its request."""
    conn = harness.next_conn
    harness.next_conn += 1
    assert core.handle(harness.state, LinkUp(conn, address)) == []
    return conn, harness.feed(conn, frames.login_request(user_id, harness.server_id, harness.state.now_ms))


def attempt_from(harness: Harness, address: str, user_id: str, password: str | None) -> tuple[int, list]:
    """One whole login from `address`; `password` None sends a proof that cannot be right."""
    conn, actions = start_from(harness, address, user_id)
    challenges = sent_to(actions, conn, "LOGIN_CHALLENGE")
    if not challenges:
        return conn, actions
    proof = (
        "AAAA"
        if password is None
        else login.answer_challenge(password, user_id, harness.server_id, challenges[0].payload)[0]
    )
    return conn, harness.feed(conn, frames.login_proof(user_id, harness.server_id, harness.state.now_ms, proof))


def spray(harness: Harness, address: str, count: int) -> None:
    """`count` wrong passwords from `address`, each for a new id (no id gets locked)."""
    for _ in range(count):
        conn, actions = attempt_from(harness, address, new_id(), None)
        assert errors_to(actions, conn) == ["FORBIDDEN"]


def test_failures_from_one_address_lock_it_for_every_id(node) -> None:
    harness, alice = node
    settings = harness.state.accounts.settings
    spray(harness, HERE, settings.address_failures)
    assert not harness.state.accounts.lockouts.get(alice)
    # Every id from that address is refused at once, before any challenge (no
    # signature spent), known or not, right password or not, with the same answer.
    answers = []
    for user_id, password in ((new_id(), None), (alice, PASSWORD)):
        conn, actions = attempt_from(harness, HERE, user_id, password)
        assert not sent_to(actions, conn, "LOGIN_CHALLENGE") and not sent_to(actions, conn, "LOGIN_BLOB")
        (error,) = sent_to(actions, conn, "ERROR")
        assert error.payload["code"] == "RATE_LIMITED" and closes(actions) == [conn]
        answers.append(error.payload["detail"])
    assert answers[0] == answers[1]
    assert answers[0] == (
        "too many failed logins from your address; "
        f"retry after {settings.address_window_ms} ms (retry_after_ms={settings.address_window_ms})"
    )
    assert harness.state.accounts.addresses_locked == 1
    # Another address is not affected: alice logs in from there.
    conn, actions = attempt_from(harness, ELSEWHERE, alice, PASSWORD)
    assert sent_to(actions, conn, "LOGIN_BLOB")


def test_the_address_waits_until_its_oldest_failure_leaves_the_window(node) -> None:
    harness, _ = node
    settings = harness.state.accounts.settings
    step = 1000
    for _ in range(settings.address_failures):
        spray(harness, HERE, 1)
        harness.state.now_ms += step
    first_failure = NOW
    conn, actions = start_from(harness, HERE, new_id())
    wait = first_failure + settings.address_window_ms - harness.state.now_ms
    assert f"retry_after_ms={wait}" in sent_to(actions, conn, "ERROR")[0].payload["detail"]
    # Once the oldest failure is out of the window, one more guess is allowed...
    harness.state.now_ms = first_failure + settings.address_window_ms
    conn, actions = start_from(harness, HERE, new_id())
    assert sent_to(actions, conn, "LOGIN_CHALLENGE")
    harness.drop(conn)
    spray(harness, HERE, 1)
    # ...and fails back into the lock, now until the next oldest leaves.
    conn, actions = start_from(harness, HERE, new_id())
    assert f"retry_after_ms={step}" in sent_to(actions, conn, "ERROR")[0].payload["detail"]


def test_a_lock_reached_while_a_challenge_is_open_refuses_its_proof(node) -> None:
    harness, alice = node
    waiting, actions = start_from(harness, HERE, alice)
    (challenge,) = sent_to(actions, waiting, "LOGIN_CHALLENGE")
    spray(harness, HERE, harness.state.accounts.settings.address_failures)
    proof, _ = login.answer_challenge(PASSWORD, alice, harness.server_id, challenge.payload)
    actions = harness.feed(waiting, frames.login_proof(alice, harness.server_id, NOW, proof))
    assert errors_to(actions, waiting) == ["RATE_LIMITED"] and not sent_to(actions, waiting, "LOGIN_BLOB")


def test_a_success_does_not_clear_the_address(node) -> None:
    # A guesser with an account of its own must not reset its count between guesses.
    harness, alice = node
    settings = harness.state.accounts.settings
    spray(harness, HERE, settings.address_failures - 1)
    conn, actions = attempt_from(harness, HERE, alice, PASSWORD)
    assert sent_to(actions, conn, "LOGIN_BLOB")
    spray(harness, HERE, 1)
    conn, actions = start_from(harness, HERE, new_id())
    assert errors_to(actions, conn) == ["RATE_LIMITED"]


def test_without_an_address_only_the_id_is_counted(node) -> None:
    # A connection the router did not hear opened (one replayed to a restarted router).
    harness, _ = node
    for _ in range(harness.state.accounts.settings.address_failures + 1):
        conn, actions = attempt(harness, new_id(), "guess")
        assert errors_to(actions, conn) == ["FORBIDDEN"]
    assert not harness.state.accounts.address_failures


def test_address_table_is_bounded(node) -> None:
    harness, _ = node
    harness.state.accounts.settings = type(harness.state.accounts.settings)(max_addresses=3)
    for i in range(5):
        spray(harness, f"192.0.2.{i}", 1)
    assert list(harness.state.accounts.address_failures) == ["192.0.2.2", "192.0.2.3", "192.0.2.4"]


@pytest.mark.parametrize(
    "address, key",
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),  # IPv4 over an IPv6 socket
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # one host's /64 counts as one address
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("not an ip", "not an ip"),
    ],
)
def test_address_key(address: str, key: str) -> None:
    assert address_key(address) == key


def test_link_accepted_keeps_the_key_of_the_address(node) -> None:
    harness, _ = node
    conn, _ = start_from(harness, "2001:db8::5", new_id())
    assert harness.state.links[conn].address == "2001:db8::/64"
    assert harness.state.links[conn].state is LinkState.AWAITING_HELLO
