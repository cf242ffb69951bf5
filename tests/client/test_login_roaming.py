"""Password login that roams, from the client's side (docs/chat.md, "Logging in on a
new machine"; the node's side is tests/e2e/test_login_on_node.py).

Against a REAL node: a `socp chat --script` client stores its login once per home
and server; `socp chat --login <id>` on a new, empty home gets the key back with the
password, says hello and reads a DM; a wrong password is a clear error and exit 1;
refusals, lockouts, silence and an unreachable server each get a clear message.
Without sockets: the pure login exchange and the session's LOGIN_REGISTER answers.

The client uses the production scrypt cost (about 150 ms a derivation) everywhere
it derives from a password; only challenges this file builds itself, and the
in-process `LoginStore` of the FakeNode test, lower it, through the explicit
`ScryptParams` argument the production code never passes.
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from socp.client.connection import ChatClient, ConnectionSettings, LoginStore, command_queue
from socp.client.events import ErrorReceived, ListResult, LoginRegistered, LoginRegisterFailed, Ready
from socp.client.home import ClientHome
from socp.client.roaming import LoginFailed, RoamingLogin
from socp.client.transport import ConnectFailed, log_in
from socp.protocol import crypto, frames, login, signing
from socp.protocol.encoding import b64url_decode, b64url_encode
from socp.protocol.envelope import parse
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import new_id
from support.nodes import free_port, start_node

from .chat_process import PASSWORD, Chat
from .client_fakes import FakeNode

pytestmark = pytest.mark.e2e

ALICE, BOB, ALICE_CHANNEL, NODE = 0, 1, 3, 5     # indexes into the session's key pool
FAST = login.ScryptParams(n=2**10, r=8, p=1)     # only where this file builds the challenge
WRONG_PASSWORD = "not the password"


@pytest.fixture(scope="module")
def node(keys, tmp_path_factory):
    running = start_node(tmp_path_factory.mktemp("roaming-node") / "data", keys[NODE], verifiers=1)
    yield running
    running.stop()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _chat(chats: list[Chat], home: Path, node, *extra: str, password: str = PASSWORD) -> Chat:
    chat = await Chat.start(home, node.url, *extra, server_key=node.pubkey, password=password)
    chats.append(chat)
    return chat


# --- against a real node ------------------------------------------------------------


async def test_a_registered_user_logs_in_on_a_new_machine_and_reads_a_dm(node, keys, tmp_path, chats):
    # Alice's usual machine: after the hello her client stores her login, once.
    alice_home = tmp_path / "alice"
    alice_id = ClientHome(alice_home).create("alice", PASSWORD, user_key=keys[ALICE],
                                             channel_key=keys[ALICE_CHANNEL]).user_id
    alice = await _chat(chats, alice_home, node)
    await alice.until("ready")
    registered = await alice.until("registered")
    assert registered["server_id"] == node.server_id
    assert await alice.finish() == 0
    logins = alice_home / "logins.json"
    assert _mode(logins) == 0o600 and set(json.loads(logins.read_text())) == {node.server_id}

    again = await _chat(chats, alice_home, node)
    await again.until("ready")
    await again.send("/list")
    await again.until("list")
    assert await again.finish() == 0
    assert not again.of("registered") and not again.of("register_failed")   # once per (home, server)

    # A new machine, the wrong password: a clear error, exit 1, no home made.
    stranger_home = tmp_path / "wrong"
    wrong = await _chat(chats, stranger_home, node, "--login", alice_id, password=WRONG_PASSWORD)
    assert await wrong.finish() == 1
    [refused] = wrong.of("error")
    assert refused["code"] == "FORBIDDEN" and "wrong user id or password" in refused["detail"]
    assert not wrong.of("ready") and not (stranger_home / "identity.json").exists()

    # A new machine, the right password: the key comes back, opens, and is hers.
    roamed_home = tmp_path / "laptop"
    roamed = await _chat(chats, roamed_home, node, "--login", alice_id, "--name", "alice")
    logged_in = await roamed.until("logged_in")
    assert logged_in == {"event": "logged_in", "user_id": alice_id, "server_id": node.server_id,
                         "server": node.url, "fingerprint": crypto.fingerprint(keys[ALICE].public_key())}
    ready = await roamed.until("ready")
    assert (ready["user_id"], ready["display_name"]) == (alice_id, "alice")
    key_file = roamed_home / "user_key.pem"
    assert _mode(key_file) == 0o600 and b"ENCRYPTED" in key_file.read_bytes()
    recovered = ClientHome(roamed_home).load_user_key(PASSWORD)
    assert crypto.encode_public_key(recovered) == crypto.encode_public_key(keys[ALICE])

    # Bob, a third client, sends her a DM; the roamed client decrypts it.
    bob_home = tmp_path / "bob"
    ClientHome(bob_home).create("bob", PASSWORD, user_key=keys[BOB])
    bob = await _chat(chats, bob_home, node)
    await bob.until("ready")
    await bob.send(f"/tell {alice_id} found you")
    await bob.until("sent")
    dm = await roamed.until("message")
    assert {k: dm[k] for k in ("text", "channel", "verified", "trusted", "form")} == {
        "text": "found you", "channel": "dm", "verified": True, "trusted": True, "form": "encrypted"}
    assert await bob.finish() == 0
    assert await roamed.finish() == 0
    # The server that gave the key back keeps her login: nothing is stored again.
    assert not roamed.of("registered") and not roamed.of("register_failed") and not roamed.of("error")


async def test_login_refusals_lockouts_silence_and_no_server_are_told_clearly(node, keys):
    # An id with no login (the node answers it like a wrong password), five times...
    ghost = new_id()
    for _ in range(5):
        with pytest.raises(LoginFailed) as refused:
            await log_in(RoamingLogin(ghost, WRONG_PASSWORD, server_key=crypto.decode_public_key(node.pubkey)),
                         node.url, _ignore)
        assert refused.value.wire_code == "FORBIDDEN" and "wrong user id or password" in refused.value.detail
    # ...then the id is locked, and the user is told for how long.
    with pytest.raises(LoginFailed) as locked:
        await log_in(RoamingLogin(ghost, WRONG_PASSWORD), node.url, _ignore)
    assert locked.value.wire_code == "RATE_LIMITED" and 25_000 <= locked.value.retry_after_ms <= 30_000
    assert "try again in 30 s" in locked.value.detail or "try again in 29 s" in locked.value.detail

    # Nobody listening.
    with pytest.raises(ConnectFailed, match="cannot reach .*refused"):
        await log_in(RoamingLogin(ghost, PASSWORD), f"ws://127.0.0.1:{free_port()}", _ignore, connect_attempts=1)

    # A server that never answers.
    async def silent(ws: ServerConnection) -> None:
        try:
            await ws.wait_closed()
        except ConnectionClosed:
            pass

    async with serve(silent, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        with pytest.raises(LoginFailed) as silence:
            await log_in(RoamingLogin(ghost, PASSWORD), url, _ignore, answer_timeout=0.5)
    assert silence.value.wire_code == "TIMEOUT" and "did not answer" in silence.value.detail


async def test_storing_the_login_never_blocks_chatting_and_a_refusal_is_reported(keys, tmp_path):
    """A server that refuses LOGIN_REGISTER (FORBIDDEN): the user is told, nothing is
    remembered, and /list works meanwhile."""
    node = FakeNode(server_key=keys[NODE])

    async def handler(ws: ServerConnection) -> None:
        try:
            async for raw in ws:
                frame = parse(raw)
                if frame.type == T.LOGIN_REGISTER:
                    await asyncio.sleep(0.3)   # the refusal comes while the user chats
                    refusal = frames.error(node.server_id, frame.from_, 1, "FORBIDDEN", "no logins here")
                    await ws.send(signing.sign_envelope(keys[NODE], refusal).to_wire())
                    continue
                for connection, envelope in node.handle(ws, raw):
                    await connection.send(envelope.to_wire())  # type: ignore[attr-defined]  # a websockets connection here
        except ConnectionClosed:
            pass
        finally:
            node.disconnect(ws)

    home = ClientHome(tmp_path / "alice")
    home.create("alice", PASSWORD, user_key=keys[ALICE])
    session = home.session(keys[ALICE], PASSWORD, server_key=keys[NODE].public_key())
    seen: list = []
    lines = command_queue()
    store = LoginStore(PASSWORD, home.login_stored, home.remember_login, params=FAST)
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = ChatClient(session, url, seen.append, ConnectionSettings(connect_attempts=2, linger=0.8),
                            login_store=store)
        await lines.put("/list")
        await lines.put(None)
        code = await asyncio.wait_for(client.run(lines), 20)
    session.close()
    assert code == 0
    kinds = [type(e) for e in seen]
    assert Ready in kinds and LoginRegisterFailed in kinds and LoginRegistered not in kinds
    assert kinds.index(ListResult, kinds.index(Ready)) < kinds.index(LoginRegisterFailed)   # chatting went on
    [failed] = [e for e in seen if isinstance(e, LoginRegisterFailed)]
    assert (failed.code, failed.detail) == ("FORBIDDEN", "no logins here")
    assert not [e for e in seen if isinstance(e, ErrorReceived)]
    assert not home.login_stored(node.server_id, url)


def _ignore(event) -> None:
    pass


# --- without sockets ----------------------------------------------------------------


def _challenge(server_key, server_id: str, user_id: str):
    """A LOGIN_CHALLENGE as the node sends it, signed by `server_key`; and its salt."""
    salt, nonce = login.new_salt(), login.new_nonce()
    envelope = frames.login_challenge(server_id, user_id, 1, b64url_encode(nonce), b64url_encode(salt),
                                      FAST.to_json())
    return signing.sign_envelope(server_key, envelope), salt


def test_the_login_exchange_checks_the_server_signature_the_password_and_the_key(keys):
    server_id, user_id = new_id(), new_id()
    node_key, pinned = keys[NODE], keys[NODE].public_key()

    # A challenge signed by another key than the pinned one is refused before any scrypt.
    forged, _ = _challenge(keys[BOB], server_id, user_id)
    with pytest.raises(LoginFailed) as unsigned:
        RoamingLogin(user_id, PASSWORD, server_key=pinned).answer(forged.to_wire())
    assert unsigned.value.wire_code == "INVALID_SIG"

    # The right exchange: the proof is the one the node checks; the blob opens.
    challenge, salt = _challenge(node_key, server_id, user_id)
    attempt = RoamingLogin(user_id, PASSWORD, server_key=pinned)
    proof = parse(attempt.answer(challenge.to_wire()).to_wire())
    assert (proof.type, proof.to, attempt.server_id) == (T.LOGIN_PROOF, server_id, server_id)
    secret = login.derive(PASSWORD, salt, FAST)
    verifier = login.Verifier(FAST, salt, login.stored_key(secret.auth_key))
    assert login.check_proof(verifier, proof.payload["proof"], b64url_decode(challenge.payload["nonce"]),
                             user_id, server_id)
    store = login.encrypt_private_key(keys[ALICE], secret.enc_key)

    def blob(pubkey_of):
        envelope = frames.login_blob(server_id, user_id, 2, store, crypto.encode_public_key(pubkey_of))
        return signing.sign_envelope(node_key, envelope).to_wire()

    assert crypto.encode_public_key(attempt.open_blob(blob(keys[ALICE]))) == crypto.encode_public_key(keys[ALICE])
    # A blob whose key is not the one the node has bound to the id is refused.
    with pytest.raises(LoginFailed) as swapped:
        attempt.open_blob(blob(keys[BOB]))
    assert swapped.value.wire_code == "BAD_KEY"

    # The node's refusals, in words.
    locked = frames.error(server_id, user_id, 3, "RATE_LIMITED",
                          "too many; retry after 61000 ms (retry_after_ms=61000)")
    with pytest.raises(LoginFailed, match="try again in 61 s") as limited:
        RoamingLogin(user_id, PASSWORD).answer(locked.to_wire())
    assert limited.value.retry_after_ms == 61000
    expired = frames.error(server_id, user_id, 3, "TIMEOUT", "the login challenge expired; start again")
    with pytest.raises(LoginFailed, match="took too long"):
        RoamingLogin(user_id, PASSWORD).open_blob(expired.to_wire())
    with pytest.raises(LoginFailed, match="not a user id"):
        RoamingLogin("alice", PASSWORD)


def test_the_session_tells_the_answer_to_its_login_register(make_session):
    alice = make_session("alice")
    server_id = new_id()
    ack = frames.ack(server_id, alice.me.user_id, 1, "LOGIN_REGISTER")
    assert alice.handle(ack.to_wire()) == []          # nothing pending: a stray ACK means nothing
    registration = login.Registration("socp-aesgcm-v1$x$y", "socp-scrypt-v1$2$1$1$x$y")
    sent = alice.login_register(registration)
    assert sent.type == T.LOGIN_REGISTER and sent.payload == {"privkey_store": "socp-aesgcm-v1$x$y",
                                                              "pake_password": "socp-scrypt-v1$2$1$1$x$y"}
    signing.verify_transport(alice.me.user_key.public_key(), sent)   # signed, like every frame of ours
    assert alice.handle(ack.to_wire()) == [LoginRegistered(server_id)]
    alice.login_register(registration)
    refusal = frames.error(server_id, alice.me.user_id, 2, "FORBIDDEN", "store a login only on a signed hello")
    failed = LoginRegisterFailed("FORBIDDEN", "store a login only on a signed hello")
    assert alice.handle(refusal.to_wire()) == [failed]
    # Once answered, the same error is an ordinary one again.
    assert alice.handle(refusal.to_wire()) == [ErrorReceived("FORBIDDEN", "store a login only on a signed hello")]
