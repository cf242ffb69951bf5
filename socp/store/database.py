"""One async interface over the node's database, whatever the backend.

`Database.create(url)` picks the backend from the URL scheme (mautrix `async_db`):

    sqlite:///relative/path.db   sqlite:////absolute/path.db   (aiosqlite, WAL)
    mysql://user:password@host:port/database                   (aiomysql pool; also mariadb://)

Callers write SQL once, with `?` placeholders; the little that differs between the
dialects (column types, upsert spelling) lives in `Dialect`. Every statement runs in
`async with database.transaction() as tx:`; driver errors come out translated:

    connection lost / refused / disk busy  -> StoreUnavailable (retrying may help)
    constraint, schema or data error       -> StoreQueryError  (retrying will not)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from socp.store.errors import StoreMisconfigured

Row = tuple[Any, ...]
Params = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    id_type: str          # an identifier column usable in a primary key, compared case-sensitively
    text_type: str        # a key or a short JSON document
    long_text_type: str   # a wrapped private key or a whole key-share payload
    table_options: str

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str], update: Sequence[str],
               rows: int = 1) -> str:
        """INSERT (of `rows` rows) that updates `update` columns (or does nothing if
        empty) when `key` exists."""
        names = ", ".join(columns)
        marks = "(" + ", ".join("?" for _ in columns) + ")"
        insert = f"INSERT INTO {table} ({names}) VALUES {', '.join([marks] * rows)}"
        if self.name == "sqlite":
            if not update:
                return f"{insert} ON CONFLICT ({', '.join(key)}) DO NOTHING"
            sets = ", ".join(f"{c} = excluded.{c}" for c in update)
            return f"{insert} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
        # MySQL/MariaDB: a no-op assignment rather than INSERT IGNORE, which would also
        # hide truncation and type errors.
        sets = ", ".join(f"{c} = VALUES({c})" for c in update) or f"{key[0]} = {key[0]}"
        return f"{insert} ON DUPLICATE KEY UPDATE {sets}"


SQLITE = Dialect(
    name="sqlite",
    id_type="TEXT",
    text_type="TEXT",
    long_text_type="TEXT",
    table_options="",
)

MYSQL = Dialect(
    name="mysql",
    id_type="VARCHAR(255)",
    text_type="TEXT",
    long_text_type="MEDIUMTEXT",   # a key-share payload for a large channel exceeds TEXT's 64 KiB
    # utf8mb4_bin: SOCP §3 user ids are case-sensitive; the default collation is not.
    table_options="ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
)


class Transaction(ABC):
    """Statements inside one database transaction (committed when the block exits)."""

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    @abstractmethod
    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None: ...

    @abstractmethod
    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]: ...


class Database(ABC):
    dialect: Dialect
    description: str      # for messages: backend and location, never the password

    @staticmethod
    async def create(url: str) -> Database:
        """Open the database named by `url`; raise StoreUnavailable (one line) if it cannot."""
        scheme = url.partition(":")[0].lower()
        # Backends import their driver lazily: a router using only the client loads neither.
        if scheme == "sqlite":
            from socp.store.sqlite import SqliteDatabase

            return await SqliteDatabase.open(url)
        if scheme in ("mysql", "mariadb"):
            from socp.store.mysql import MysqlDatabase

            return await MysqlDatabase.open(url)
        raise StoreMisconfigured(f"unsupported database URL scheme {scheme!r} (use sqlite:/// or mysql://)")

    @abstractmethod
    def transaction(self, *, write: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """Run statements atomically; roll back if the block raises."""

    @abstractmethod
    async def close(self) -> None: ...
