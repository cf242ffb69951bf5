"""Numbered schema migrations, applied in order at start-up and recorded in
`schema_version`. Each runs in its own transaction and re-running is harmless, so a
crash half-way (or MySQL's implicit commit around DDL) leaves a state the next start
completes. Never edit a released migration; append a new one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from socp.protocol.ids import PUBLIC_CHANNEL, PUBLIC_CHANNEL_CREATOR
from socp.store.database import Database, Dialect, Transaction
from socp.store.errors import StoreMisconfigured

# replay_state: wall-clock ms of the router's last clean stop (every key written); 0
# while it runs (a crash leaves 0).
STOPPED_CLEANLY_AT = "stopped_cleanly_at"


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    description: str
    apply: Callable[[Transaction, Dialect, int], Awaitable[None]]   # (tx, dialect, now in ms)


async def _directory_tables(tx: Transaction, d: Dialect, now_ms: int) -> None:
    # SOCP §10 minimum model, plus revocation and where a remote user lives.
    await tx.execute(f"""
        CREATE TABLE IF NOT EXISTS users (
            user_id {d.id_type} NOT NULL PRIMARY KEY,
            pubkey {d.text_type} NOT NULL,
            privkey_store {d.long_text_type} NOT NULL DEFAULT (''),
            pake_password {d.text_type} NOT NULL DEFAULT (''),
            meta {d.text_type},
            version INTEGER NOT NULL,
            revoked INTEGER NOT NULL DEFAULT 0,
            home_server {d.id_type},
            created_at BIGINT
        ) {d.table_options}""")
    # `groups` is a reserved word in MySQL 8; backticks quote it in SQLite too.
    await tx.execute(f"""
        CREATE TABLE IF NOT EXISTS `groups` (
            group_id {d.id_type} NOT NULL PRIMARY KEY,
            creator_id {d.id_type} NOT NULL,
            created_at BIGINT,
            meta {d.text_type},
            version INTEGER NOT NULL
        ) {d.table_options}""")
    await tx.execute(f"""
        CREATE TABLE IF NOT EXISTS group_members (
            group_id {d.id_type} NOT NULL,
            member_id {d.id_type} NOT NULL,
            role VARCHAR(32),
            wrapped_key {d.long_text_type} NOT NULL,
            added_at BIGINT,
            PRIMARY KEY (group_id, member_id)
        ) {d.table_options}""")


async def _key_shares_and_servers(tx: Transaction, d: Dialect, now_ms: int) -> None:
    # SOCP §7.3 project decision: undelivered public-channel key shares, one per
    # (sender, member); §6.1: the pinned key of every server we know.
    await tx.execute(f"""
        CREATE TABLE IF NOT EXISTS channel_key_shares (
            sender {d.id_type} NOT NULL,
            member {d.id_type} NOT NULL,
            wrapped_key {d.long_text_type} NOT NULL,
            payload {d.long_text_type} NOT NULL,
            ts BIGINT NOT NULL,
            delivered INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (sender, member)
        ) {d.table_options}""")
    await tx.execute(f"""
        CREATE TABLE IF NOT EXISTS servers (
            server_id {d.id_type} NOT NULL PRIMARY KEY,
            pubkey {d.text_type} NOT NULL,
            host VARCHAR(255),
            port INTEGER,
            pinned_at BIGINT
        ) {d.table_options}""")


async def _public_channel(tx: Transaction, d: Dialect, now_ms: int) -> None:
    # SOCP §7.3: the single public channel, created by "system", version 1.
    await tx.execute(d.upsert("`groups`", ("group_id", "creator_id", "created_at", "meta", "version"),
                              key=("group_id",), update=()),
                     (PUBLIC_CHANNEL, PUBLIC_CHANNEL_CREATOR, now_ms, "{}", 1))


async def _hello_proofs(tx: Transaction, d: Dialect, now_ms: int) -> None:
    # Proof of possession for USER_HELLO (router/abuse_rules.py), kept across restarts: the
    # ids that sign their hellos (an unsigned hello may no longer claim them), and a
    # digest of each signed hello already used (a copy of one is a replay).
    await tx.execute(f"""
        CREATE TABLE IF NOT EXISTS hello_signers (
            user_id {d.id_type} NOT NULL PRIMARY KEY,
            since BIGINT NOT NULL
        ) {d.table_options}""")
    await tx.execute(f"""
        CREATE TABLE IF NOT EXISTS hello_signatures (
            user_id {d.id_type} NOT NULL,
            sig_digest VARCHAR(64) NOT NULL,
            seen_at BIGINT NOT NULL,
            PRIMARY KEY (user_id, sig_digest)
        ) {d.table_options}""")


async def _replay_keys(tx: Transaction, d: Dialect, now_ms: int) -> None:
    # Replay protection that survives a restart (router/replay_log.py): the duplicate
    # keys of user frames (their msg_ref) while their ts is inside the window, and
    # whether the router last stopped cleanly (every key written) or not.
    # Old keys are deleted by ts at every write: index it (SQLite cannot declare an
    # index inside CREATE TABLE; MySQL has no CREATE INDEX IF NOT EXISTS).
    inline_index = ", INDEX replay_keys_ts (ts)" if d.name == "mysql" else ""
    await tx.execute(f"""
        CREATE TABLE IF NOT EXISTS replay_keys (
            msg_ref VARCHAR(64) NOT NULL PRIMARY KEY,
            ts BIGINT NOT NULL,
            seen_at BIGINT NOT NULL{inline_index}
        ) {d.table_options}""")
    if d.name != "mysql":
        await tx.execute("CREATE INDEX IF NOT EXISTS replay_keys_ts ON replay_keys (ts)")
    await tx.execute(f"""
        CREATE TABLE IF NOT EXISTS replay_state (
            name VARCHAR(64) NOT NULL PRIMARY KEY,
            value BIGINT NOT NULL
        ) {d.table_options}""")
    # A node upgraded to this release kept no keys before: nothing to doubt.
    await tx.execute(d.upsert("replay_state", ("name", "value"), key=("name",), update=()),
                     (STOPPED_CLEANLY_AT, now_ms))


async def _held_messages(tx: Transaction, d: Dialect, now_ms: int) -> None:
    # DMs kept for an offline user with a password account (router/offline.py): what
    # the node received (ciphertext, sender's key and content_sig), until delivered.
    await tx.execute(f"""
        CREATE TABLE IF NOT EXISTS held_messages (
            recipient {d.id_type} NOT NULL,
            held_id BIGINT NOT NULL,
            held_at BIGINT NOT NULL,
            message {d.long_text_type} NOT NULL,
            PRIMARY KEY (recipient, held_id)
        ) {d.table_options}""")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "directory: users, groups, group_members", _directory_tables),
    Migration(2, "channel_key_shares and pinned servers", _key_shares_and_servers),
    Migration(3, "the public channel", _public_channel),
    Migration(4, "hello_signers and hello_signatures", _hello_proofs),
    Migration(5, "replay_keys and replay_state", _replay_keys),
    Migration(6, "held_messages", _held_messages),
)


async def apply_migrations(database: Database, now_ms: int) -> list[int]:
    """Bring the schema up to date; return the numbers of the migrations applied now."""
    async with database.transaction() as tx:
        await tx.execute(f"""
            CREATE TABLE IF NOT EXISTS schema_version (
                version INTEGER NOT NULL PRIMARY KEY,
                description {database.dialect.text_type} NOT NULL,
                applied_at BIGINT NOT NULL
            ) {database.dialect.table_options}""")
        row = await tx.fetch_one("SELECT MAX(version) FROM schema_version")
    newest_known = MIGRATIONS[-1].number
    if row is not None and row[0] is not None and row[0] > newest_known:
        raise StoreMisconfigured(f"{database.description} has schema version {row[0]}, newer than this "
                                 f"socp understands ({newest_known}); upgrade socp")
    applied = []
    for migration in MIGRATIONS:
        async with database.transaction() as tx:
            # Checked inside the transaction: another process may have just applied it.
            if await tx.fetch_one("SELECT 1 FROM schema_version WHERE version = ?", (migration.number,)):
                continue
            await migration.apply(tx, database.dialect, now_ms)
            await tx.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                             (migration.number, migration.description, now_ms))
        applied.append(migration.number)
    return applied
