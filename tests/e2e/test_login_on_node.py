"""End to end: the directory and password login on a real node (raw WebSocket users).

A user registers its encrypted key; a "new machine" that has only the user id and
the password logs in, gets the blob, opens it locally, says hello with the key and
reads a DM. Wrong passwords are refused, then rate limited, per id and per address;
DIRECTORY_GET answers with a key signed by the node.
"""

from __future__ import annotations

import asyncio
import re
import secrets

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from socp.protocol import crypto, frames, login, signing
from socp.protocol.encoding import b64url_encode
from socp.protocol.envelope import parse
from socp.protocol.ids import new_id
from socp.router.accounts import LoginSettings
from support.nodes import start_node
from support.wsclient import RawUser, now_ms

pytestmark = pytest.mark.e2e

FAST = login.ScryptParams(n=2**10, r=8, p=1)   # tests only; the default is n = 2**15
PASSWORD = "roaming is fun"


@pytest.fixture(scope="module")
def node(keys, tmp_path_factory):
    running = start_node(tmp_path_factory.mktemp("login-node") / "data", keys[0], verifiers=2)
    yield running
    running.stop()


async def log_in(node, user_id: str, password: str, stranger_key) -> tuple[RawUser, list]:
    """One login on a fresh connection that says no hello; returns what came back."""
    machine = await RawUser(node.url, stranger_key, user_id=user_id).connect(hello=False)
    await machine.send(frames.login_request(user_id, node.server_id, now_ms()))
    first = await machine.receive()
    got = [first]
    if first.type == "LOGIN_CHALLENGE":
        signing.verify_transport(crypto.decode_public_key(node.pubkey), first)   # it is our node asking
        proof, keys = login.answer_challenge(password, user_id, node.server_id, first.payload)
        await machine.send(frames.login_proof(user_id, node.server_id, now_ms(), proof))
        answer = await machine.receive()
        got += [answer, keys]
    return machine, got


async def closed_by_node(user: RawUser) -> bool:
    try:
        await user.receive(timeout=5)
    except ConnectionClosed:
        return True
    return False


async def test_login_roams_to_a_new_machine(node, keys) -> None:
    # Alice registers her blob from her usual machine, then leaves.
    alice = await RawUser(node.url, keys[1]).connect(display_name="alice")
    registration = login.register(PASSWORD, keys[1], FAST)
    await alice.send(frames.login_register(alice.user_id, node.server_id, now_ms(), registration.privkey_store,
                                           registration.pake_password))
    ack = await alice.receive("ACK")
    assert ack.payload == {"msg_ref": "LOGIN_REGISTER"}
    await alice.close()

    # A new machine: only the id and the password.
    machine, (challenge, blob, secret) = await log_in(node, alice.user_id, PASSWORD, keys[3])
    assert challenge.payload["params"] == FAST.to_json()
    assert blob.type == "LOGIN_BLOB" and blob.payload["pubkey"] == alice.pubkey
    signing.verify_transport(crypto.decode_public_key(node.pubkey), blob)
    assert await closed_by_node(machine)
    key = login.decrypt_private_key(blob.payload["privkey_store"], secret.enc_key)
    assert crypto.encode_public_key(key) == alice.pubkey

    # It says hello with the recovered key and reads a DM sent to it.
    roamed = await RawUser(node.url, key, user_id=alice.user_id).connect(display_name="alice")
    assert alice.user_id in (await roamed.list_users()).payload["users"]
    bob = await RawUser(node.url, keys[2]).connect(display_name="bob")
    await bob.list_users()
    await bob.send(bob.dm_to(alice.user_id, alice.pubkey, b"found you"))
    assert roamed.open_dm(await roamed.receive("USER_DELIVER")) == b"found you"

    # Bob asks the directory for alice's key: signed by the node.
    await bob.send(frames.directory_get(bob.user_id, node.server_id, now_ms(), alice.user_id))
    entry = await bob.receive("DIRECTORY_ENTRY")
    signing.verify_transport(crypto.decode_public_key(node.pubkey), entry)
    assert entry.payload == {"user_id": alice.user_id, "pubkey": alice.pubkey, "server_id": node.server_id,
                             "remote": False, "version": 2, "revoked": False}   # bound, then login stored
    await roamed.close()
    await bob.close()

    # Wrong passwords: refused, then the id is locked and told how long to wait.
    for _ in range(5):
        machine, (_, answer, _) = await log_in(node, alice.user_id, "not it", keys[3])
        assert (answer.type, answer.payload["code"]) == ("ERROR", "FORBIDDEN")
        assert await closed_by_node(machine)
    machine, (answer,) = await log_in(node, alice.user_id, PASSWORD, keys[3])
    assert (answer.type, answer.payload["code"]) == ("ERROR", "RATE_LIMITED")
    assert "retry_after_ms=" in answer.payload["detail"]
    assert await closed_by_node(machine)


async def test_unknown_user_and_unknown_key(node, keys) -> None:
    from socp.protocol.ids import new_id

    stranger = new_id()
    machine, (challenge, answer, _) = await log_in(node, stranger, PASSWORD, keys[3])
    assert challenge.type == "LOGIN_CHALLENGE"            # no hint that the id is unknown
    assert (answer.type, answer.payload["code"]) == ("ERROR", "FORBIDDEN")
    bob = await RawUser(node.url, keys[2]).connect()
    await bob.list_users()
    await bob.send(frames.directory_get(bob.user_id, node.server_id, now_ms(), stranger))
    assert (await bob.receive("ERROR")).payload["code"] == "USER_NOT_FOUND"
    await bob.close()


async def fail_a_login(url: str, user_id: str, server_id: str, local_host: str = "127.0.0.1") -> list:
    """One login with a proof that cannot be right, from `local_host`; what came back."""
    async with websockets.connect(url, compression=None, open_timeout=10, local_addr=(local_host, 0)) as socket:
        await socket.send(frames.login_request(user_id, server_id, now_ms()).to_wire())
        first = parse(await asyncio.wait_for(socket.recv(), 10))
        got = [first]
        if first.type == "LOGIN_CHALLENGE":
            proof = b64url_encode(secrets.token_bytes(32))
            await socket.send(frames.login_proof(user_id, server_id, now_ms(), proof).to_wire())
            got.append(parse(await asyncio.wait_for(socket.recv(), 10)))
        return got


async def test_wrong_passwords_are_limited_per_address_whatever_the_id(keys, tmp_path) -> None:
    node = start_node(tmp_path / "data", keys[0], verifiers=1)
    try:
        alice = await RawUser(node.url, keys[1]).connect(display_name="alice")
        registration = login.register(PASSWORD, keys[1], FAST)
        await alice.send(frames.login_register(alice.user_id, node.server_id, now_ms(), registration.privkey_store,
                                               registration.pake_password))
        await alice.receive("ACK")
        await alice.close()

        # One guesser, a new id each time: no id fails often enough to be locked...
        limit = LoginSettings().address_failures
        for _ in range(limit):
            challenge, answer = await fail_a_login(node.url, new_id(), node.server_id)
            assert challenge.type == "LOGIN_CHALLENGE"
            assert (answer.type, answer.payload["code"]) == ("ERROR", "FORBIDDEN")

        # ...but its address is: every id alike, known or not, even with the right password.
        details = []
        for user_id in (new_id(), alice.user_id):
            machine, (answer,) = await log_in(node, user_id, PASSWORD, keys[3])
            assert (answer.type, answer.payload["code"]) == ("ERROR", "RATE_LIMITED"), answer.payload
            assert await closed_by_node(machine)
            details.append(re.sub(r"\d+", "N", answer.payload["detail"]))
        assert details[0] == details[1]
        assert details[0].startswith("too many failed logins from your address; retry after N ms")

        # Another address is not affected: it gets a challenge.
        (challenge, _) = await fail_a_login(node.url, new_id(), node.server_id, local_host="127.0.0.2")
        assert challenge.type == "LOGIN_CHALLENGE"
    finally:
        node.stop()
