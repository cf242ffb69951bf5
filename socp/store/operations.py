"""The store's operations, written once over `Database` and so identical on every backend.

Each operation is one transaction. Writes read-then-write inside it, which is safe
because the store actor is the only writer and applies writes one at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from socp.protocol.ids import PUBLIC_CHANNEL, ServerId, UserId
from socp.store.database import Database
from socp.store.errors import StoreRequestRejected
from socp.store.migrations import apply_migrations
from socp.store.records import (BindResult, PendingKeyShare, PinnedServer, PinResult, StoreSnapshot,
                                UserRecord)

Clock = Callable[[], float]   # seconds since the epoch, like time.time

PUBLIC_MEMBER_ROLE = "member"


def _to_json(value: dict[str, Any], what: str) -> str:
    if not isinstance(value, dict):
        raise StoreRequestRejected(f"{what} must be a JSON object")
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreRequestRejected(f"{what} is not JSON: {exc}") from None


def _from_json(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


class Store:
    """The node's persistent state (SOCP §10) behind one set of async operations."""

    def __init__(self, database: Database, clock: Clock = time.time) -> None:
        self.database = database
        self._clock = clock

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
        return int(self._clock() * 1000)

    # -- reads -------------------------------------------------------------------------

    async def load_snapshot(self) -> StoreSnapshot:
        async with self.database.transaction(write=False) as tx:
            user_rows = await tx.fetch_all("SELECT user_id, pubkey, meta, version, revoked FROM users")
            server_rows = await tx.fetch_all("SELECT server_id, pubkey, host, port FROM servers")
            share_rows = await tx.fetch_all(
                "SELECT sender, member, payload, ts FROM channel_key_shares WHERE delivered = 0 "
                "ORDER BY ts, sender, member")
            channel = await tx.fetch_one("SELECT version FROM `groups` WHERE group_id = ?", (PUBLIC_CHANNEL,))
            member_rows = await tx.fetch_all(
                "SELECT member_id FROM group_members WHERE group_id = ? ORDER BY added_at, member_id",
                (PUBLIC_CHANNEL,))
        return StoreSnapshot(
            users={UserId(uid): UserRecord(pubkey, _from_json(meta), int(version), bool(revoked))
                   for uid, pubkey, meta, version, revoked in user_rows},
            pinned_servers={ServerId(sid): PinnedServer(pubkey, host, None if port is None else int(port))
                            for sid, pubkey, host, port in server_rows},
            pending_key_shares=tuple(PendingKeyShare(UserId(sender), UserId(member), _from_json(payload), int(ts))
                                     for sender, member, payload, ts in share_rows),
            public_channel_version=int(channel[0]) if channel else 1,
            public_channel_members=tuple(UserId(row[0]) for row in member_rows),
        )

    async def get_user(self, user_id: UserId) -> UserRecord | None:
        async with self.database.transaction(write=False) as tx:
            row = await tx.fetch_one("SELECT pubkey, meta, version, revoked FROM users WHERE user_id = ?",
                                     (user_id,))
        if row is None:
            return None
        pubkey, meta, version, revoked = row
        return UserRecord(pubkey, _from_json(meta), int(version), bool(revoked))

    # -- writes ------------------------------------------------------------------------

    async def bind_user(self, user_id: UserId, pubkey: str, meta: dict[str, Any]) -> BindResult:
        """First come, first bound: a user id keeps the first key it was registered with."""
        meta_text = _to_json(meta, "meta")
        async with self.database.transaction() as tx:
            row = await tx.fetch_one("SELECT pubkey, meta FROM users WHERE user_id = ?", (user_id,))
            if row is None:
                await tx.execute(
                    "INSERT INTO users (user_id, pubkey, privkey_store, pake_password, meta, version, revoked, "
                    "home_server, created_at) VALUES (?, ?, '', '', ?, 1, 0, NULL, ?)",
                    (user_id, pubkey, meta_text, self._now_ms()))
                return BindResult.BOUND
            bound_key, stored_meta = row
            if bound_key != pubkey:
                return BindResult.CONFLICT
            if _from_json(stored_meta) != meta:
                await tx.execute("UPDATE users SET meta = ?, version = version + 1 WHERE user_id = ?",
                                 (meta_text, user_id))
            return BindResult.SAME

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
                await tx.execute("INSERT INTO servers (server_id, pubkey, host, port, pinned_at) VALUES (?, ?, ?, ?, ?)",
                                 (server_id, pubkey, host, port, self._now_ms()))
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
            await tx.execute(dialect.upsert("group_members",
                                            ("group_id", "member_id", "role", "wrapped_key", "added_at"),
                                            key=("group_id", "member_id"), update=()),
                             (PUBLIC_CHANNEL, member_id, PUBLIC_MEMBER_ROLE, "", self._now_ms()))
            await tx.execute("UPDATE `groups` SET version = ? WHERE group_id = ? AND version < ?",
                             (version, PUBLIC_CHANNEL, version))
