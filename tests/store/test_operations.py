"""Store operations, the same tests on every backend (SQLite and MySQL/MariaDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from socp.protocol.ids import PUBLIC_CHANNEL, ServerId, UserId
from socp.store.errors import StoreRequestRejected
from socp.store.migrations import MIGRATIONS, apply_migrations
from socp.store.operations import Store
from socp.store.records import (
    BindResult,
    HelloSignature,
    PendingKeyShare,
    PinnedServer,
    PinResult,
    RemoteBinding,
    UserRecord,
)

ALICE = UserId("3f0c6f55-6a43-4c2e-9a53-1b2f4f0e2a01")
BOB = UserId("7d1e2b9c-0f4a-4b8e-8c11-2a6b3c4d5e02")
SERVER_A = ServerId("b6f6a0de-8d2c-4c3f-9e4d-7a1b2c3d4e03")
NOW = 1_700_000_000.0


def share_payload(member: str, tag: str) -> dict:
    return {"shares": [{"member": member, "wrapped_public_channel_key": f"wrapped-{tag}"}],
            "creator_pub": "alice-key", "content_sig": f"sig-{tag}"}


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url, clock=lambda: NOW)
    try:
        yield opened
    finally:
        await opened.close()


async def test_fresh_database_has_only_the_public_channel(store: Store) -> None:
    snapshot = await store.load_snapshot()
    assert snapshot.users == {}
    assert snapshot.pinned_servers == {}
    assert snapshot.pending_key_shares == ()
    assert snapshot.public_channel_version == 1
    assert snapshot.public_channel_members == ()


async def test_bind_user_first_come_first_bound(store: Store) -> None:
    assert await store.bind_user(ALICE, "key-a", {"display_name": "Alice"}) is BindResult.BOUND
    assert await store.get_user(ALICE) == UserRecord("key-a", {"display_name": "Alice"}, 1, False)

    # Same key again: SAME, meta updated, version bumped.
    assert await store.bind_user(ALICE, "key-a", {"display_name": "Alice L."}) is BindResult.SAME
    assert await store.get_user(ALICE) == UserRecord("key-a", {"display_name": "Alice L."}, 2, False)
    # Unchanged meta does not bump the version.
    assert await store.bind_user(ALICE, "key-a", {"display_name": "Alice L."}) is BindResult.SAME
    assert (await store.get_user(ALICE)).version == 2

    # Another key for a bound id: CONFLICT and nothing changes.
    assert await store.bind_user(ALICE, "key-mallory", {"display_name": "Mallory"}) is BindResult.CONFLICT
    assert await store.get_user(ALICE) == UserRecord("key-a", {"display_name": "Alice L."}, 2, False)


async def test_get_user_unknown_is_none(store: Store) -> None:
    assert await store.get_user(BOB) is None


async def test_user_ids_are_case_sensitive(store: Store) -> None:
    # SOCP §3; MySQL's default collation would make these the same key.
    assert await store.bind_user(UserId("Carol"), "key-1", {}) is BindResult.BOUND
    assert await store.bind_user(UserId("carol"), "key-2", {}) is BindResult.BOUND
    assert (await store.get_user(UserId("carol"))).pubkey == "key-2"


async def test_meta_round_trips_unicode_and_nesting(store: Store) -> None:
    meta = {"display_name": "Zoë 🦊", "pronouns": "she/her", "age": 30, "extras": {"tags": ["a", "b"], "x": None}}
    await store.bind_user(ALICE, "key-a", meta)
    assert (await store.get_user(ALICE)).meta == meta
    assert (await store.load_snapshot()).users[ALICE].meta == meta


async def test_meta_that_is_not_json_is_refused(store: Store) -> None:
    with pytest.raises(StoreRequestRejected):
        await store.bind_user(ALICE, "key-a", {"blob": b"\x00\x01"})
    assert await store.get_user(ALICE) is None


async def test_key_share_newer_replaces_older_is_ignored(store: Store) -> None:
    assert await store.save_key_share(ALICE, BOB, "w1", share_payload(BOB, "1"), 1000)
    assert await store.save_key_share(ALICE, BOB, "w2", share_payload(BOB, "2"), 2000)
    assert not await store.save_key_share(ALICE, BOB, "w0", share_payload(BOB, "0"), 500)
    snapshot = await store.load_snapshot()
    assert snapshot.pending_key_shares == (PendingKeyShare(ALICE, BOB, share_payload(BOB, "2"), 2000),)


async def test_key_share_delivery(store: Store) -> None:
    await store.save_key_share(ALICE, BOB, "w1", share_payload(BOB, "1"), 1000)
    await store.save_key_share(BOB, ALICE, "w2", share_payload(ALICE, "2"), 900)
    # Oldest first.
    assert [s.ts for s in (await store.load_snapshot()).pending_key_shares] == [900, 1000]

    # A stale ts does not mark a newer share.
    assert not await store.mark_share_delivered(ALICE, BOB, ts=999)
    assert await store.mark_share_delivered(ALICE, BOB, ts=1000)
    assert [s.sender for s in (await store.load_snapshot()).pending_key_shares] == [BOB]

    # A newer share after delivery is pending again.
    await store.save_key_share(ALICE, BOB, "w3", share_payload(BOB, "3"), 3000)
    assert {s.ts for s in (await store.load_snapshot()).pending_key_shares} == {900, 3000}
    assert await store.mark_share_delivered(BOB, ALICE)
    assert not await store.mark_share_delivered(UserId("nobody"), ALICE)


async def test_large_key_share_payload(store: Store) -> None:
    # A channel of 300 members: ~1 MB of wrapped keys, beyond MySQL's TEXT.
    payload = {"shares": [{"member": f"m{i}", "wrapped_public_channel_key": "A" * 3413} for i in range(300)],
               "creator_pub": "k", "content_sig": "s"}
    await store.save_key_share(ALICE, BOB, "A" * 3413, payload, 1)
    assert (await store.load_snapshot()).pending_key_shares[0].payload == payload


async def test_pin_server(store: Store) -> None:
    assert await store.pin_server(SERVER_A, "server-key", "127.0.0.1", 9001) is PinResult.PINNED
    assert await store.pin_server(SERVER_A, "server-key", "10.0.0.2", 9002) is PinResult.SAME
    assert await store.pin_server(SERVER_A, "other-key", "10.6.6.6", 6666) is PinResult.CONFLICT
    assert (await store.load_snapshot()).pinned_servers == {SERVER_A: PinnedServer("server-key", "10.0.0.2", 9002)}

    assert await store.update_server_addr(SERVER_A, "10.0.0.3", 9003)
    assert await store.update_server_addr(SERVER_A, "10.0.0.3", 9003)   # unchanged is still "pinned"
    assert not await store.update_server_addr(ServerId("unknown"), "h", 1)
    assert (await store.load_snapshot()).pinned_servers[SERVER_A] == PinnedServer("server-key", "10.0.0.3", 9003)


async def test_pin_server_without_address(store: Store) -> None:
    assert await store.pin_server(SERVER_A, "server-key", None, None) is PinResult.PINNED
    assert (await store.load_snapshot()).pinned_servers[SERVER_A] == PinnedServer("server-key", None, None)


async def test_members_of_one_millisecond_are_listed_in_join_order(store: Store) -> None:
    # The clock stands still (fixture): join order must not fall back to id order.
    joined = [UserId(f"m{i}") for i in range(12)]      # "m10" sorts before "m9" as text
    for version, member in enumerate(joined, start=2):
        await store.add_channel_member(member, version)
    assert (await store.load_snapshot()).public_channel_members == tuple(joined)


async def test_public_channel_members_and_version(store: Store) -> None:
    clock = [NOW]
    store._clock = lambda: clock[0]   # members are listed in join order
    await store.add_channel_member(BOB, 2)
    clock[0] += 1
    await store.add_channel_member(ALICE, 3)
    await store.add_channel_member(BOB, 3)          # already a member: no duplicate
    await store.add_channel_member(ALICE, 2)        # a stale version never moves it back
    snapshot = await store.load_snapshot()
    assert snapshot.public_channel_members == (BOB, ALICE)
    assert snapshot.public_channel_version == 3

    async with store.database.transaction(write=False) as tx:
        rows = await tx.fetch_all("SELECT role, wrapped_key FROM group_members WHERE group_id = ?", (PUBLIC_CHANNEL,))
        channel = await tx.fetch_one("SELECT creator_id FROM `groups` WHERE group_id = ?", (PUBLIC_CHANNEL,))
    assert rows == [("member", ""), ("member", "")]
    assert channel == ("system",)


async def test_migrations_are_idempotent(store: Store) -> None:
    await store.bind_user(ALICE, "key-a", {})
    assert await apply_migrations(store.database, 0) == []
    assert await apply_migrations(store.database, 0) == []
    async with store.database.transaction(write=False) as tx:
        versions = await tx.fetch_all("SELECT version FROM schema_version ORDER BY version")
        channels = await tx.fetch_all("SELECT group_id FROM `groups`")
    assert [v for (v,) in versions] == [m.number for m in MIGRATIONS]
    assert channels == [(PUBLIC_CHANNEL,)]
    assert (await store.get_user(ALICE)).pubkey == "key-a"


async def test_restart_keeps_everything(store_url: str) -> None:
    first = await Store.open(store_url, clock=lambda: NOW)
    try:
        await first.bind_user(ALICE, "key-a", {"display_name": "Alice"})
        await first.bind_user(BOB, "key-b", {})
        await first.pin_server(SERVER_A, "server-key", "127.0.0.1", 9001)
        await first.save_key_share(ALICE, BOB, "w1", share_payload(BOB, "1"), 1000)
        await first.save_key_share(BOB, ALICE, "w2", share_payload(ALICE, "2"), 1001)
        await first.mark_share_delivered(BOB, ALICE)
        await first.add_channel_member(ALICE, 2)
        await first.add_channel_member(BOB, 3)
        before = await first.load_snapshot()
    finally:
        await first.close()

    second = await Store.open(store_url, clock=lambda: NOW + 60)
    try:
        after = await second.load_snapshot()
        assert await second.bind_user(ALICE, "key-other", {}) is BindResult.CONFLICT
    finally:
        await second.close()
    assert after == before
    assert set(after.users) == {ALICE, BOB}
    assert after.pending_key_shares == (PendingKeyShare(ALICE, BOB, share_payload(BOB, "1"), 1000),)
    assert after.public_channel_version == 3


# --- directory and login (SOCP §10; docs/store-and-login.md) -------------------------

SERVER_B = ServerId("c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e04")
BLOB = "socp-aesgcm-v1$bm9uY2Vub25jZTEy$Y2lwaGVydGV4dC1hbmQtdGFn"
VERIFIER = "socp-scrypt-v1$32768$8$1$c2FsdHNhbHRzYWx0c2FsdA$" + "A" * 43


async def test_set_login_is_kept_for_local_users_only(store: Store) -> None:
    await store.bind_user(ALICE, "key-a", {})
    assert await store.set_login(ALICE, BLOB, VERIFIER)
    record = await store.get_user(ALICE)
    assert (record.privkey_store, record.pake_password, record.version) == (BLOB, VERIFIER, 2)
    assert record.home_server is None and not record.is_remote
    # A new password replaces the old record and bumps the version again.
    assert await store.set_login(ALICE, BLOB + "x", VERIFIER)
    assert (await store.get_user(ALICE)).version == 3
    # Unknown and remote users get no login record.
    assert not await store.set_login(BOB, BLOB, VERIFIER)
    await store.bind_remote_user(BOB, "key-b", SERVER_B, {})
    assert not await store.set_login(BOB, BLOB, VERIFIER)
    assert (await store.get_user(BOB)).privkey_store == ""
    with pytest.raises(StoreRequestRejected):
        await store.set_login(ALICE, "", VERIFIER)


async def test_bind_remote_user_marks_remote_and_rotates(store: Store) -> None:
    assert await store.bind_remote_user(BOB, "key-b", SERVER_B, {"display_name": "Bob"}) is BindResult.BOUND
    assert await store.get_user(BOB) == UserRecord("key-b", {"display_name": "Bob"}, 1, False, SERVER_B, "", "")
    # The same gossip again changes nothing.
    assert await store.bind_remote_user(BOB, "key-b", SERVER_B, {"display_name": "Bob"}) is BindResult.SAME
    assert (await store.get_user(BOB)).version == 1
    # Moved to another server: recorded, version bumped.
    assert await store.bind_remote_user(BOB, "key-b", SERVER_A, {"display_name": "Bob"}) is BindResult.SAME
    assert ((await store.get_user(BOB)).home_server, (await store.get_user(BOB)).version) == (SERVER_A, 2)
    # Its home server rotates the key.
    assert await store.bind_remote_user(BOB, "key-b2", SERVER_A, {}) is BindResult.ROTATED
    assert await store.get_user(BOB) == UserRecord("key-b2", {}, 3, False, SERVER_A, "", "")


async def test_a_local_binding_always_wins(store: Store) -> None:
    await store.bind_user(ALICE, "key-a", {"display_name": "Alice"})
    await store.set_login(ALICE, BLOB, VERIFIER)
    before = await store.get_user(ALICE)
    # Gossip about a user registered here never changes it, whatever the key.
    assert await store.bind_remote_user(ALICE, "key-a", SERVER_B, {"display_name": "Eve"}) is BindResult.SAME
    assert await store.bind_remote_user(ALICE, "key-evil", SERVER_B, {}) is BindResult.CONFLICT
    assert await store.get_user(ALICE) == before
    # A remote user saying hello here with its key becomes local.
    await store.bind_remote_user(BOB, "key-b", SERVER_B, {})
    assert await store.bind_user(BOB, "key-b", {}) is BindResult.SAME
    record = await store.get_user(BOB)
    assert (record.home_server, record.version) == (None, 2)
    # ...but not with another key (first come, first bound).
    await store.bind_remote_user(UserId("carol"), "key-c", SERVER_B, {})
    assert await store.bind_user(UserId("carol"), "key-mallory", {}) is BindResult.CONFLICT
    assert (await store.get_user(UserId("carol"))).home_server == SERVER_B


async def test_bind_remote_users_applies_each_binding_in_order_in_one_transaction(store: Store) -> None:
    await store.bind_user(ALICE, "key-a", {})
    carol = UserId("carol")
    results = await store.bind_remote_users([
        RemoteBinding(BOB, "key-b", SERVER_B, {"display_name": "Bob"}),
        RemoteBinding(ALICE, "key-evil", SERVER_B, {}),       # registered here: the local binding wins
        RemoteBinding(BOB, "key-b2", SERVER_B, {}),           # the batch's own first binding, rotated
        RemoteBinding(carol, "key-c", SERVER_B, {}),
    ])
    assert results == [BindResult.BOUND, BindResult.CONFLICT, BindResult.ROTATED, BindResult.BOUND]
    assert await store.get_user(BOB) == UserRecord("key-b2", {}, 2, False, SERVER_B, "", "")
    assert (await store.get_user(ALICE)).pubkey == "key-a"
    # One bad binding fails the batch, and nothing of it is applied: one transaction.
    dave = UserId("dave")
    with pytest.raises(StoreRequestRejected):
        await store.bind_remote_users([RemoteBinding(dave, "key-d", SERVER_B, {}),
                                       RemoteBinding(UserId("erin"), "key-e", SERVER_B, "not a map")])  # type: ignore[arg-type]  # what a bad request carries
    assert await store.get_user(dave) is None


async def test_snapshot_carries_home_server_and_login(store_url: str) -> None:
    first = await Store.open(store_url, clock=lambda: NOW)
    try:
        await first.bind_user(ALICE, "key-a", {})
        await first.set_login(ALICE, BLOB, VERIFIER)
        await first.bind_remote_user(BOB, "key-b", SERVER_B, {"display_name": "Bob"})
    finally:
        await first.close()
    second = await Store.open(store_url, clock=lambda: NOW)
    try:
        users = (await second.load_snapshot()).users
    finally:
        await second.close()
    assert users[ALICE] == UserRecord("key-a", {}, 2, False, None, BLOB, VERIFIER)
    assert users[BOB] == UserRecord("key-b", {"display_name": "Bob"}, 1, False, SERVER_B, "", "")


async def test_revocation_is_in_the_snapshot(store: Store) -> None:
    # No operation revokes yet (an operator's UPDATE does); the mirror must carry it.
    await store.bind_user(ALICE, "key-a", {})
    async with store.database.transaction() as tx:
        await tx.execute("UPDATE users SET revoked = 1, version = version + 1 WHERE user_id = ?", (ALICE,))
    record = (await store.load_snapshot()).users[ALICE]
    assert (record.revoked, record.version) == (True, 2)


async def test_public_channel_row_exists_from_the_first_start(store: Store) -> None:
    # SOCP §7.3 / original §15: group "public", creator "system", before any join.
    async with store.database.transaction(write=False) as tx:
        row = await tx.fetch_one("SELECT creator_id, version, created_at FROM `groups` WHERE group_id = ?",
                                 (PUBLIC_CHANNEL,))
    assert row == ("system", 1, int(NOW * 1000))


# --- proof of possession for USER_HELLO (router/abuse_rules.py) -----------------------------------

async def test_signed_hellos_survive_a_restart(store_url: str) -> None:
    first = await Store.open(store_url, clock=lambda: NOW)
    try:
        await first.note_signed_hello(ALICE, "aa" * 16, 1000, forget_before_ms=0, keep=2)
        await first.note_signed_hello(ALICE, "aa" * 16, 1000, forget_before_ms=0, keep=2)   # harmless twice
        await first.note_signed_hello(ALICE, "bb" * 16, 2000, forget_before_ms=0, keep=2)
        await first.note_signed_hello(BOB, "cc" * 16, 3000, forget_before_ms=0, keep=2)
    finally:
        await first.close()
    second = await Store.open(store_url, clock=lambda: NOW + 60)
    try:
        snapshot = await second.load_snapshot()
        assert snapshot.hello_signers == tuple(sorted((ALICE, BOB)))
        assert snapshot.hello_signatures == (HelloSignature(ALICE, "aa" * 16, 1000),
                                             HelloSignature(ALICE, "bb" * 16, 2000),
                                             HelloSignature(BOB, "cc" * 16, 3000))
        # A user's newest `keep` are kept, none older than `forget_before_ms`; the flag stays.
        await second.note_signed_hello(ALICE, "dd" * 16, 4000, forget_before_ms=0, keep=2)
        await second.note_signed_hello(BOB, "ee" * 16, 5000, forget_before_ms=4500, keep=2)
        snapshot = await second.load_snapshot()
    finally:
        await second.close()
    assert snapshot.hello_signers == tuple(sorted((ALICE, BOB)))
    assert snapshot.hello_signatures == (HelloSignature(ALICE, "bb" * 16, 2000),
                                         HelloSignature(ALICE, "dd" * 16, 4000),
                                         HelloSignature(BOB, "ee" * 16, 5000))


async def test_a_large_batch_binds_as_one_binding_at_a_time_would(store_url: str, tmp_path) -> None:
    """More users than one statement holds (operations.USER_*_PER_STATEMENT), some known,
    some registered here, some named twice: the same results and rows as one by one."""
    from socp.store import operations

    count = operations.USER_IDS_PER_STATEMENT + operations.USER_ROWS_PER_STATEMENT + 7
    bindings = [RemoteBinding(UserId(f"user-{n:05d}"), f"key-{n}", SERVER_B, {"n": n}) for n in range(count)]
    bindings += [RemoteBinding(UserId("user-00003"), "key-3-new", SERVER_A, {}),    # rotated within the batch
                 RemoteBinding(ALICE, "key-evil", SERVER_B, {}),                    # registered here
                 RemoteBinding(UserId("user-00005"), "key-5", SERVER_A, {"n": 5})]  # moved within the batch
    stores = []
    for url in (store_url, f"sqlite:///{tmp_path / 'one-by-one.db'}"):
        opened = await Store.open(url, clock=lambda: NOW)
        await opened.bind_user(ALICE, "key-a", {})
        await opened.bind_remote_user(UserId("user-00010"), "key-10", SERVER_A, {})   # known before the batch
        stores.append(opened)
    batched, one_by_one = stores
    try:
        results = await batched.bind_remote_users(bindings)
        expected = [await one_by_one.bind_remote_user(*binding) for binding in bindings]
        assert results == expected
        assert results.count(BindResult.BOUND) == count - 1
        assert (await batched.load_snapshot()).users == (await one_by_one.load_snapshot()).users
    finally:
        for opened in stores:
            await opened.close()
