"""Proof of possession for USER_HELLO survives a restart (router/abuse_rules.py): the ids
that sign their hellos and the signatures already used are persisted in the store and
reloaded by `state_from_snapshot`, so neither a captured signed hello nor an unsigned
hello with the owner's public key claims the id after a restart, and LOGIN_REGISTER
needs a connection opened by a fresh signed hello."""

from __future__ import annotations

import time
from pathlib import Path

from socp.config import NodeConfig
from socp.identity import NodeIdentity
from socp.protocol import crypto, frames, login, signing
from socp.protocol.ids import new_id
from socp.router.core_io import StoreWrite
from socp.router.directory import REGISTERED_ACK
from socp.router.snapshot import state_from_snapshot
from socp.store.operations import Store

from .harness import NOW, Harness, closes, errors_to, sent_to

FAST = login.ScryptParams(n=2**10, r=8, p=1)


async def _persist(store_url: str, writes: list[StoreWrite]):
    """What the router's store writer does, then what a restarted router reads."""
    store = await Store.open(store_url)
    try:
        for write in writes:
            await getattr(store, write.operation)(*write.arguments)
        return await store.load_snapshot()
    finally:
        await store.close()


async def test_a_restart_forgets_no_proof_of_possession(tmp_path: Path, keys) -> None:
    owner_key = keys[1]
    pubkey = crypto.encode_public_key(owner_key)
    registration = login.register("pw", owner_key, FAST)
    before = Harness(server_key=keys[0])
    now = before.state.now_ms = int(time.time() * 1000)   # the restarted router runs on the real clock
    owner = new_id()
    captured = signing.sign_envelope(owner_key, frames.user_hello(owner, before.server_id, now, pubkey))
    writes = [a for a in before.feed(1, captured) if isinstance(a, StoreWrite)]
    assert before.state.local_users[owner] == 1
    writes += [a for a in before.feed(1, frames.login_register(owner, before.server_id, now,
                                                                registration.privkey_store,
                                                                registration.pake_password))
               if isinstance(a, StoreWrite)]
    assert [w.operation for w in writes] == ["bind_user", "note_signed_hello", "add_channel_member", "set_login"]

    # The node restarts: its router state is rebuilt from the store alone.
    snapshot = await _persist(f"sqlite:///{tmp_path / 'socp.db'}", writes)
    after = Harness(server_key=keys[0])
    after.state = state_from_snapshot(NodeIdentity(before.server_id, keys[0]), NodeConfig(data_dir=tmp_path),
                                      snapshot)

    # The captured signed hello, sent again (its unsigned ts moved on): a replay.
    replayed = captured.__class__(type=captured.type, from_=owner, to=captured.to, ts=now + 60_000,
                                  payload=captured.payload, sig=captured.sig)
    actions = after.feed(10, replayed)
    assert errors_to(actions, 10) == ["REPLAY"] and closes(actions) == [10]
    # An unsigned hello with the owner's public key: refused, the id signs its hellos.
    actions = after.feed(11, captured.with_sig(""))
    assert errors_to(actions, 11) == ["INVALID_SIG"] and closes(actions) == [11]
    assert owner not in after.state.local_users
    assert after.state.accounts.logins[owner].pake_password == registration.pake_password

    # The owner signs a fresh hello: admitted, and may store a login again.
    fresh = signing.sign_envelope(owner_key, frames.user_hello(owner, after.server_id, now, pubkey))
    after.feed(12, fresh)
    assert after.state.local_users[owner] == 12
    again = login.register("pw2", owner_key, FAST)
    actions = after.feed(12, frames.login_register(owner, after.server_id, now, again.privkey_store,
                                                   again.pake_password))
    assert [f.payload["msg_ref"] for f in sent_to(actions, 12, "ACK")] == [REGISTERED_ACK]


def test_login_register_needs_this_connections_own_proof(keys) -> None:
    """An id that signed once does not make every later connection of it a proof:
    a peer that never signs its hellos gets no LOGIN_REGISTER."""
    node = Harness(server_key=keys[0])
    key = keys[1]
    user = new_id()
    unsigned = frames.user_hello(user, node.server_id, NOW, crypto.encode_public_key(key))
    node.feed(1, unsigned)
    assert node.state.local_users[user] == 1
    registration = login.register("pw", key, FAST)
    node.state.guard.hello_signers.add(user)   # as if the id had signed elsewhere, before
    actions = node.feed(1, frames.login_register(user, node.server_id, NOW, registration.privkey_store,
                                                 registration.pake_password))
    assert errors_to(actions, 1) == ["FORBIDDEN"]
