"""The store's operations, written once over `Database` and so identical on every backend.

Each operation is one transaction. Writes read-then-write inside it, which is safe
because the store actor is the only writer and applies writes one at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from socp.protocol.encoding import compact_json
from socp.protocol.ids import PUBLIC_CHANNEL, ServerId, UserId
from socp.store import remote_bindings
from socp.store.database import Database, Transaction
from socp.store.errors import StoreRequestRejected
from socp.store.migrations import apply_migrations
from socp.store.records import (
    BindResult,
    HeldMessage,
    HelloSignature,
    PendingKeyShare,
    PinnedServer,
    PinResult,
    RemoteBinding,
    StoreSnapshot,
    UserRecord,
)

Clock = Callable[[], float]   # seconds since the epoch, like time.time

PUBLIC_MEMBER_ROLE = "member"
# Replay keys handed back at start: those whose ts is this recent (the router keeps
# only those inside its window: 10 minutes back, 2 ahead; the rest is margin).
REPLAY_KEYS_KEPT_MS = 15 * 60 * 1000
REPLAY_ROWS_PER_STATEMENT = 300    # 900 placeholders: under SQLite's oldest limit of 999
USER_IDS_PER_STATEMENT = 900       # ids in one SELECT ... IN
USER_ROWS_PER_STATEMENT = 180      # 5 placeholders a new remote user: 900


def _to_json(value: dict[str, Any], what: str) -> str:
    if not isinstance(value, dict):
        raise StoreRequestRejected(f"{what} must be a JSON object")
    try:
        return compact_json(value)   # a snapshot of 100,000 users writes 100,000 metas
    except (TypeError, ValueError) as exc:
        raise StoreRequestRejected(f"{what} is not JSON: {exc}") from None


def _from_json(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


_USER_COLUMNS = "pubkey, meta, version, revoked, home_server, privkey_store, pake_password"


def _user_record(row: tuple[Any, ...]) -> UserRecord:
    pubkey, meta, version, revoked, home_server, privkey_store, pake_password = row
    return UserRecord(pubkey, _from_json(meta), int(version), bool(revoked),
                      None if home_server is None else ServerId(home_server), privkey_store or "", pake_password or "")


class Store:
    """The node's persistent state (SOCP §10) behind one set of async operations."""

    def __init__(self, database: Database, clock: Clock = time.time) -> None:
        self.database = database
        self._clock = clock
        self._last_stamp_ms = 0

    @classmethod
    async def open(cls, url: str, clock: Clock = time.time) -> Store:
        """Connect and migrate; raises StoreUnavailable with a one-line message if it cannot."""
        database = await Database.create(url)
        try:
            await apply_migrations(database, int(clock() * 1000))
        except BaseException:
            await database.close()
            raise
        return cls(database, clock)

    async def close(self) -> None:
        await self.database.close()

    def _now_ms(self) -> int:
        """A write's time stamp, strictly increasing: rows ordered by it (the channel's
        members) come back in the order the writes were applied, even within one ms."""
        self._last_stamp_ms = max(int(self._clock() * 1000), self._last_stamp_ms + 1)
        return self._last_stamp_ms

    # -- reads -------------------------------------------------------------------------

    async def ping(self) -> None:
        """One trivial statement: raises StoreUnavailable if the database does not answer."""
        async with self.database.transaction(write=False) as tx:
            await tx.fetch_one("SELECT 1")

    async def load_snapshot(self) -> StoreSnapshot:
        async with self.database.transaction(write=False) as tx:
            user_rows = await tx.fetch_all(f"SELECT user_id, {_USER_COLUMNS} FROM users")
            server_rows = await tx.fetch_all("SELECT server_id, pubkey, host, port FROM servers")
            share_rows = await tx.fetch_all(
                "SELECT sender, member, payload, ts FROM channel_key_shares WHERE delivered = 0 "
                "ORDER BY ts, sender, member")
            channel = await tx.fetch_one("SELECT version FROM `groups` WHERE group_id = ?", (PUBLIC_CHANNEL,))
            member_rows = await tx.fetch_all(
                "SELECT member_id FROM group_members WHERE group_id = ? ORDER BY added_at, member_id",
                (PUBLIC_CHANNEL,))
            signer_rows = await tx.fetch_all("SELECT user_id FROM hello_signers ORDER BY user_id")
            signature_rows = await tx.fetch_all(
                "SELECT user_id, sig_digest, seen_at FROM hello_signatures ORDER BY seen_at, user_id")
            replay_rows = await tx.fetch_all("SELECT msg_ref, ts FROM replay_keys WHERE ts >= ? ORDER BY ts, msg_ref",
                                             (int(self._clock() * 1000) - REPLAY_KEYS_KEPT_MS,))
            state_rows = await tx.fetch_all("SELECT name, value FROM replay_state")
            held_rows = await tx.fetch_all(
                "SELECT recipient, held_id, held_at, message FROM held_messages ORDER BY recipient, held_id")
        return StoreSnapshot(
            users={UserId(row[0]): _user_record(row[1:]) for row in user_rows},
            pinned_servers={ServerId(sid): PinnedServer(pubkey, host, None if port is None else int(port))
                            for sid, pubkey, host, port in server_rows},
            pending_key_shares=tuple(PendingKeyShare(UserId(sender), UserId(member), _from_json(payload), int(ts))
                                     for sender, member, payload, ts in share_rows),
            public_channel_version=int(channel[0]) if channel else 1,
            public_channel_members=tuple(UserId(row[0]) for row in member_rows),
            hello_signers=tuple(UserId(row[0]) for row in signer_rows),
            hello_signatures=tuple(HelloSignature(UserId(uid), digest, int(seen_at))
                                   for uid, digest, seen_at in signature_rows),
            replay_keys=tuple((str(ref), int(ts)) for ref, ts in replay_rows),
            replay_state={str(name): int(value) for name, value in state_rows},
            held_messages=tuple(HeldMessage(UserId(recipient), int(held_id), int(held_at), _from_json(message))
                                for recipient, held_id, held_at, message in held_rows),
        )

    async def get_user(self, user_id: UserId) -> UserRecord | None:
        async with self.database.transaction(write=False) as tx:
            row = await tx.fetch_one(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,))
        return None if row is None else _user_record(row)

    # -- writes ------------------------------------------------------------------------

    async def bind_user(self, user_id: UserId, pubkey: str, meta: dict[str, Any]) -> BindResult:
        """First come, first bound: a user id keeps the first key it was registered with.
        A user known only from gossip (remote) with this key becomes local: a local
        binding always wins."""
        meta_text = _to_json(meta, "meta")
        async with self.database.transaction() as tx:
            row = await tx.fetch_one("SELECT pubkey, meta, home_server FROM users WHERE user_id = ?", (user_id,))
            if row is None:
                await self._insert_user(tx, user_id, pubkey, meta_text, None)
                return BindResult.BOUND
            bound_key, stored_meta, home_server = row
            if bound_key != pubkey:
                return BindResult.CONFLICT
            if _from_json(stored_meta) != meta or home_server is not None:
                await tx.execute("UPDATE users SET meta = ?, home_server = NULL, version = version + 1 "
                                 "WHERE user_id = ?", (meta_text, user_id))
            return BindResult.SAME

    async def bind_remote_user(self, user_id: UserId, pubkey: str, home_server: ServerId,
                               meta: dict[str, Any]) -> BindResult:
        """A user of another server, learned from its (verified) gossip (SOCP §6.2 project
        decision: `meta.pubkey`). Never touches a user registered here; a remote user's
        home server may rotate its key (ROTATED, version bumped)."""
        [result] = await self.bind_remote_users([RemoteBinding(user_id, pubkey, home_server, meta)])
        return result

    async def bind_remote_users(self, bindings: Sequence[RemoteBinding]) -> list[BindResult]:
        """`bind_remote_user` for each binding, in order, in one transaction: a joining
        server's snapshot of thousands of users costs one commit per batch, not per user,
        and a few statements per batch, not two per user (remote_bindings.py)."""
        with_text = [(binding, _to_json(binding.meta, "meta")) for binding in bindings]
        user_ids = list(dict.fromkeys(binding.user_id for binding in bindings))
        async with self.database.transaction() as tx:
            stored: dict[str, remote_bindings.StoredUser] = {}
            for start in range(0, len(user_ids), USER_IDS_PER_STATEMENT):
                chunk = user_ids[start:start + USER_IDS_PER_STATEMENT]
                marks = ", ".join("?" * len(chunk))
                for user_id, pubkey, meta, home_server in await tx.fetch_all(
                        f"SELECT user_id, pubkey, meta, home_server FROM users WHERE user_id IN ({marks})", chunk):
                    stored[user_id] = (pubkey, meta, home_server)
            decided = remote_bindings.plan(stored, with_text)
            await self._apply_binding_steps(tx, decided.steps)
        return decided.results

    async def _apply_binding_steps(self, tx: Transaction, steps: list[remote_bindings.Step]) -> None:
        """The plan's writes in order; consecutive new users go a chunk per INSERT."""
        now = self._now_ms()
        new_rows: list[remote_bindings.Insert] = []

        async def insert_new_rows() -> None:
            for start in range(0, len(new_rows), USER_ROWS_PER_STATEMENT):
                chunk = new_rows[start:start + USER_ROWS_PER_STATEMENT]
                values = ", ".join(["(?, ?, '', '', ?, 1, 0, ?, ?)"] * len(chunk))
                await tx.execute(
                    "INSERT INTO users (user_id, pubkey, privkey_store, pake_password, meta, version, revoked, "
                    f"home_server, created_at) VALUES {values}",
                    [value for row in chunk
                     for value in (row.user_id, row.pubkey, row.meta_text, row.home_server, now)])
            new_rows.clear()

        for step in steps:
            if isinstance(step, remote_bindings.Insert):
                new_rows.append(step)
                continue
            await insert_new_rows()
            if isinstance(step, remote_bindings.Rotate):
                await tx.execute("UPDATE users SET pubkey = ?, meta = ?, home_server = ?, version = version + 1 "
                                 "WHERE user_id = ?", (step.pubkey, step.meta_text, step.home_server, step.user_id))
            else:
                await tx.execute("UPDATE users SET meta = ?, home_server = ?, version = version + 1 "
                                 "WHERE user_id = ?", (step.meta_text, step.home_server, step.user_id))
        await insert_new_rows()

    async def set_login(self, user_id: UserId, privkey_store: str, pake_password: str) -> bool:
        """Keep a local user's encrypted private key and password verifier (SOCP §10);
        False (nothing changed) if the id is not registered here."""
        if not privkey_store or not pake_password:
            raise StoreRequestRejected("privkey_store and pake_password must not be empty")
        async with self.database.transaction() as tx:
            return await tx.execute(
                "UPDATE users SET privkey_store = ?, pake_password = ?, version = version + 1 "
                "WHERE user_id = ? AND home_server IS NULL", (privkey_store, pake_password, user_id)) > 0

    async def note_signed_hello(self, user_id: UserId, sig_digest: str, seen_at_ms: int,
                                forget_before_ms: int, keep: int) -> None:
        """A signed USER_HELLO was accepted: `user_id` signs its hellos from now on, and
        this signature is used. The user's signatures older than `forget_before_ms`, or
        beyond its newest `keep`, are forgotten (the router keeps no more either)."""
        if not sig_digest or keep < 1:
            raise StoreRequestRejected("sig_digest must not be empty and keep must be positive")
        dialect = self.database.dialect
        async with self.database.transaction() as tx:
            await tx.execute(dialect.upsert("hello_signers", ("user_id", "since"), key=("user_id",), update=()),
                             (user_id, seen_at_ms))
            await tx.execute(dialect.upsert("hello_signatures", ("user_id", "sig_digest", "seen_at"),
                                            key=("user_id", "sig_digest"), update=()),
                             (user_id, sig_digest, seen_at_ms))
            await tx.execute("DELETE FROM hello_signatures WHERE user_id = ? AND seen_at < ?",
                             (user_id, forget_before_ms))
            rows = await tx.fetch_all("SELECT seen_at FROM hello_signatures WHERE user_id = ? "
                                      "ORDER BY seen_at DESC", (user_id,))
            if len(rows) > keep:
                await tx.execute("DELETE FROM hello_signatures WHERE user_id = ? AND seen_at < ?",
                                 (user_id, int(rows[keep - 1][0])))

    async def note_replay_keys(self, keys: list[list[Any]], forget_before_ms: int) -> None:
        """Keep the duplicate keys `[msg_ref, ts, seen_at]` of user frames the router saw
        since its last write (router/replay_log.py); forget those whose ts is before
        `forget_before_ms` (outside the window: refused as stale anyway)."""
        rows = []
        for key in keys:
            if (not isinstance(key, (list, tuple)) or len(key) != 3 or not isinstance(key[0], str) or not key[0]
                    or type(key[1]) is not int or type(key[2]) is not int):
                raise StoreRequestRejected("each replay key must be [msg_ref, ts, seen_at]")
            rows.append((key[0], key[1], key[2]))
        dialect = self.database.dialect
        async with self.database.transaction() as tx:
            for start in range(0, len(rows), REPLAY_ROWS_PER_STATEMENT):
                chunk = rows[start:start + REPLAY_ROWS_PER_STATEMENT]
                await tx.execute(dialect.upsert("replay_keys", ("msg_ref", "ts", "seen_at"), key=("msg_ref",),
                                                update=(), rows=len(chunk)),
                                 [value for row in chunk for value in row])
            await tx.execute("DELETE FROM replay_keys WHERE ts < ?", (forget_before_ms,))

    async def set_replay_state(self, name: str, value: int) -> None:
        """One mark of replay_state (the router's clean stop)."""
        if not name:
            raise StoreRequestRejected("a replay_state name must not be empty")
        dialect = self.database.dialect
        async with self.database.transaction() as tx:
            await tx.execute(dialect.upsert("replay_state", ("name", "value"), key=("name",), update=("value",)),
                             (name, value))

    async def _insert_user(self, tx: Transaction, user_id: UserId, pubkey: str, meta_text: str,
                           home_server: ServerId | None) -> None:
        await tx.execute(
            "INSERT INTO users (user_id, pubkey, privkey_store, pake_password, meta, version, revoked, "
            "home_server, created_at) VALUES (?, ?, '', '', ?, 1, 0, ?, ?)",
            (user_id, pubkey, meta_text, home_server, self._now_ms()))

    async def hold_message(self, recipient: UserId, held_id: int, held_at: int, message: dict[str, Any]) -> None:
        """Keep a DM for an offline user (router/offline.py); the same id again is ignored
        (a write retried after an outage)."""
        message_text = _to_json(message, "message")
        async with self.database.transaction() as tx:
            if await tx.fetch_one("SELECT 1 FROM held_messages WHERE recipient = ? AND held_id = ?",
                                  (recipient, held_id)):
                return
            await tx.execute("INSERT INTO held_messages (recipient, held_id, held_at, message) VALUES (?, ?, ?, ?)",
                             (recipient, held_id, held_at, message_text))

    async def drop_held(self, recipient: UserId, held_ids: list[int]) -> None:
        async with self.database.transaction() as tx:
            for held_id in held_ids:
                await tx.execute("DELETE FROM held_messages WHERE recipient = ? AND held_id = ?",
                                 (recipient, int(held_id)))

    async def save_key_share(self, sender: UserId, member: UserId, wrapped_key: str,
                             payload: dict[str, Any], ts: int) -> bool:
        """Keep one share per (sender, member): a newer one replaces it, an older one is
        ignored (shares may arrive out of order over different links). Returns whether
        this share is now the stored one."""
        payload_text = _to_json(payload, "payload")
        async with self.database.transaction() as tx:
            row = await tx.fetch_one("SELECT ts FROM channel_key_shares WHERE sender = ? AND member = ?",
                                     (sender, member))
            if row is None:
                await tx.execute(
                    "INSERT INTO channel_key_shares (sender, member, wrapped_key, payload, ts, delivered) "
                    "VALUES (?, ?, ?, ?, ?, 0)", (sender, member, wrapped_key, payload_text, ts))
                return True
            if ts < int(row[0]):
                return False
            await tx.execute(
                "UPDATE channel_key_shares SET wrapped_key = ?, payload = ?, ts = ?, delivered = 0 "
                "WHERE sender = ? AND member = ?", (wrapped_key, payload_text, ts, sender, member))
            return True

    async def mark_share_delivered(self, sender: UserId, member: UserId, ts: int | None = None) -> bool:
        """Mark the share delivered; with `ts`, only if it is still that share (a newer
        one that arrived meanwhile stays pending)."""
        sql = "UPDATE channel_key_shares SET delivered = 1 WHERE sender = ? AND member = ?"
        params: tuple[Any, ...] = (sender, member)
        if ts is not None:
            sql += " AND ts = ?"
            params += (ts,)
        async with self.database.transaction() as tx:
            return await tx.execute(sql, params) > 0

    async def pin_server(self, server_id: ServerId, pubkey: str, host: str | None, port: int | None) -> PinResult:
        """Trust on first use: a later, different key for a pinned id is refused (SOCP §6.1)."""
        async with self.database.transaction() as tx:
            row = await tx.fetch_one("SELECT pubkey FROM servers WHERE server_id = ?", (server_id,))
            if row is None:
                await tx.execute(
                    "INSERT INTO servers (server_id, pubkey, host, port, pinned_at) VALUES (?, ?, ?, ?, ?)",
                    (server_id, pubkey, host, port, self._now_ms()),
                )
                return PinResult.PINNED
            if row[0] != pubkey:
                return PinResult.CONFLICT
            await tx.execute("UPDATE servers SET host = ?, port = ? WHERE server_id = ?", (host, port, server_id))
            return PinResult.SAME

    async def update_server_addr(self, server_id: ServerId, host: str | None, port: int | None) -> bool:
        """Record a pinned server's new address; False if the id is not pinned."""
        async with self.database.transaction() as tx:
            # A changed-rows count of 0 also means "same address" on MySQL, so check existence.
            if await tx.fetch_one("SELECT 1 FROM servers WHERE server_id = ?", (server_id,)) is None:
                return False
            await tx.execute("UPDATE servers SET host = ?, port = ? WHERE server_id = ?", (host, port, server_id))
            return True

    async def add_channel_member(self, member_id: UserId, version: int) -> None:
        """SOCP §7.3: every user is a member of the public channel, never removed. The
        channel holds no wrapped key (clients hold per-sender keys), so `wrapped_key`
        is empty. The version only moves forward."""
        dialect = self.database.dialect
        async with self.database.transaction() as tx:
            await tx.execute(
                dialect.upsert(
                    "group_members",
                    ("group_id", "member_id", "role", "wrapped_key", "added_at"),
                    key=("group_id", "member_id"),
                    update=(),
                ),
                (PUBLIC_CHANNEL, member_id, PUBLIC_MEMBER_ROLE, "", self._now_ms()),
            )
            await tx.execute(
                "UPDATE `groups` SET version = ? WHERE group_id = ? AND version < ?", (version, PUBLIC_CHANNEL, version)
            )
