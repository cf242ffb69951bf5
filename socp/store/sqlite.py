"""The SQLite backend (the default): one aiosqlite connection in WAL mode.

One connection means one transaction at a time, so a lock serialises them; that is
also what SQLite does with writers anyway. Transactions are explicit (`BEGIN
IMMEDIATE` for writes) because the connection runs in autocommit mode.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from socp.store.database import SQLITE, Database, Params, Row, Transaction
from socp.store.errors import StoreMisconfigured, StoreQueryError, StoreUnavailable

_PREFIX = "sqlite:///"
BUSY_TIMEOUT_MS = 5000

# Result codes after which the same statement may succeed later.
_TRANSIENT_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL",
                    "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PROTOCOL", "SQLITE_NOMEM")


def sqlite_path(url: str) -> str:
    """`sqlite:///rel.db` -> `rel.db`, `sqlite:////abs/x.db` -> `/abs/x.db` (SQLAlchemy form)."""
    if not url.startswith(_PREFIX) or len(url) == len(_PREFIX):
        raise StoreMisconfigured(f"bad SQLite URL {url!r} (expected sqlite:///path/to.db)")
    return url[len(_PREFIX):]


def translate(error: sqlite3.Error, where: str) -> Exception:
    name = getattr(error, "sqlite_errorname", "")
    message = f"SQLite {where}: {error}"
    if isinstance(error, sqlite3.OperationalError) and name.startswith(_TRANSIENT_CODES):
        return StoreUnavailable(message)
    return StoreQueryError(message)


class _SqliteTransaction(Transaction):
    def __init__(self, connection: aiosqlite.Connection, where: str) -> None:
        self._connection = connection
        self._where = where

    async def execute(self, sql: str, params: Params = ()) -> int:
        try:
            cursor = await self._connection.execute(sql, tuple(params))
            changed = cursor.rowcount
            await cursor.close()
        except sqlite3.Error as exc:
            raise translate(exc, self._where) from None
        return changed

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        try:
            async with self._connection.execute(sql, tuple(params)) as cursor:
                row = await cursor.fetchone()
        except sqlite3.Error as exc:
            raise translate(exc, self._where) from None
        return None if row is None else tuple(row)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            async with self._connection.execute(sql, tuple(params)) as cursor:
                rows = await cursor.fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, self._where) from None
        return [tuple(row) for row in rows]


class SqliteDatabase(Database):
    dialect = SQLITE

    def __init__(self, connection: aiosqlite.Connection, path: str) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()
        self.description = f"SQLite database {path}"

    @classmethod
    async def open(cls, url: str) -> SqliteDatabase:
        path = sqlite_path(url)
        if path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreMisconfigured(f"cannot create the directory of SQLite database {path}: "
                                         f"{exc.strerror or exc}") from None
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {path}: {exc}") from None
        try:
            # WAL: readers do not block the writer; NORMAL sync is durable enough with WAL.
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            await connection.close()
            raise StoreUnavailable(f"cannot open SQLite database {path}: {exc}") from None
        return cls(connection, path)

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Transaction]:
        async with self._lock:
            tx = _SqliteTransaction(self._connection, self.description)
            # IMMEDIATE takes the write lock up front, so a write never fails half-way
            # on a lock another process took after our reads.
            await tx.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield tx
                await tx.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise

    async def _rollback(self) -> None:
        try:
            await self._connection.execute("ROLLBACK")
        except sqlite3.OperationalError:
            # SQLite already rolled back (e.g. after an I/O error); the original error
            # is the one to report.
            return

    async def close(self) -> None:
        await self._connection.close()
