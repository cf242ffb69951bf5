"""The MySQL / MariaDB backend: an aiomysql connection pool.

URL: `mysql://user:password@host:port/database` (user and password percent-encoded;
port 3306 by default). A database that does not exist yet is created (utf8mb4, binary
collation) when the user may create it; the store creates the tables.

Note: MySQL commits implicitly around DDL, so a migration is only atomic for its data
statements; migrations therefore use `CREATE TABLE IF NOT EXISTS` and can re-run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomysql
import pymysql

from socp.store.database import MYSQL, Database, Params, Row, Transaction
from socp.store.errors import StoreMisconfigured, StoreQueryError, StoreUnavailable

log = logging.getLogger("socp.store")

CONNECT_TIMEOUT = 5.0
POOL_SIZE = 4
# Server error codes that mean "this configuration will never work".
_CONFIG_ERRORS = {1044: "access denied to the database", 1045: "access denied (wrong user or password)",
                  1049: "unknown database", 1698: "access denied (wrong user or password)"}
_UNKNOWN_DATABASE = 1049


class _UnknownDatabase(StoreMisconfigured):
    """The server answers but the database does not exist (yet)."""


@dataclass(frozen=True, slots=True)
class MysqlParams:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def where(self) -> str:
        return f"MySQL {self.user}@{self.host}:{self.port}/{self.database}"


def parse_mysql_url(url: str) -> MysqlParams:
    try:
        parts = urlsplit(url)
        port = parts.port or 3306
    except ValueError as exc:
        raise StoreMisconfigured(f"bad MySQL URL: {exc}") from None
    database = parts.path.lstrip("/")
    if not database or "/" in database:
        raise StoreMisconfigured("bad MySQL URL: expected mysql://user:password@host:port/database")
    return MysqlParams(host=parts.hostname or "127.0.0.1", port=port, user=unquote(parts.username or "root"),
                       password=unquote(parts.password or ""), database=unquote(database))


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, (pymysql.err.OperationalError, pymysql.err.InterfaceError,
                              OSError, asyncio.TimeoutError))


def translate(error: BaseException, where: str) -> Exception:
    if _is_transient(error):
        return StoreUnavailable(f"{where}: {_reason(error)}")
    return StoreQueryError(f"{where}: {_reason(error)}")


def _reason(error: BaseException) -> str:
    if isinstance(error, pymysql.err.MySQLError) and len(error.args) >= 2:
        return f"{error.args[1]} (error {error.args[0]})"
    return str(error) or type(error).__name__


def _sql(sql: str) -> str:
    # Our SQL uses `?`; pymysql formats with `%`, so a literal % must be doubled first.
    return sql.replace("%", "%%").replace("?", "%s")


async def _create_database(params: MysqlParams) -> None:
    """CREATE DATABASE IF NOT EXISTS, as the URL's user; a user without the right gets
    the one-line "unknown database" error it would have had anyway."""
    quoted = "`" + params.database.replace("`", "``") + "`"
    try:
        connection = await aiomysql.connect(host=params.host, port=params.port, user=params.user,
                                            password=params.password, connect_timeout=CONNECT_TIMEOUT,
                                            autocommit=True, charset="utf8mb4")
    except (TimeoutError, pymysql.err.MySQLError, OSError) as exc:
        raise StoreUnavailable(f"cannot reach {params.where}: {_reason(exc)}") from None
    try:
        async with connection.cursor() as cursor:
            # utf8mb4_bin: SOCP §3 user ids are case-sensitive.
            await cursor.execute(f"CREATE DATABASE IF NOT EXISTS {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    except pymysql.err.MySQLError as exc:
        raise StoreMisconfigured(f"{params.where}: unknown database, and creating it failed: {_reason(exc)}") from None
    finally:
        connection.close()
    log.info("created database %s", params.where)


class _MysqlTransaction(Transaction):
    def __init__(self, cursor: aiomysql.Cursor, where: str) -> None:
        self._cursor = cursor
        self._where = where

    async def execute(self, sql: str, params: Params = ()) -> int:
        try:
            affected: int = await self._cursor.execute(_sql(sql), tuple(params))
            return affected
        except (TimeoutError, pymysql.err.MySQLError, OSError) as exc:
            raise translate(exc, self._where) from None

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        await self.execute(sql, params)
        row = await self._cursor.fetchone()
        return None if row is None else tuple(row)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        await self.execute(sql, params)
        return [tuple(row) for row in await self._cursor.fetchall()]


class MysqlDatabase(Database):
    dialect = MYSQL

    def __init__(self, pool: aiomysql.Pool, params: MysqlParams) -> None:
        self._pool = pool
        self.description = params.where

    @classmethod
    async def open(cls, url: str) -> MysqlDatabase:
        params = parse_mysql_url(url)
        try:
            return await cls._open(params)
        except _UnknownDatabase:
            await _create_database(params)
        return await cls._open(params)

    @classmethod
    async def _open(cls, params: MysqlParams) -> MysqlDatabase:
        try:
            pool = await aiomysql.create_pool(
                host=params.host, port=params.port, user=params.user, password=params.password,
                db=params.database, minsize=1, maxsize=POOL_SIZE, autocommit=False, charset="utf8mb4",
                connect_timeout=CONNECT_TIMEOUT, pool_recycle=3600,
                # Notes such as "table already exists" (after CREATE TABLE IF NOT EXISTS)
                # would surface as Python warnings; real warnings still do.
                init_command="SET SESSION sql_notes = 0")
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args else 0
            if code == _UNKNOWN_DATABASE:
                raise _UnknownDatabase(f"{params.where}: {_CONFIG_ERRORS[code]}") from None
            if code in _CONFIG_ERRORS:
                raise StoreMisconfigured(f"{params.where}: {_CONFIG_ERRORS[code]}") from None
            raise StoreUnavailable(f"cannot reach {params.where}: {_reason(exc.__cause__ or exc)}") from None
        except (TimeoutError, pymysql.err.MySQLError, OSError) as exc:
            raise StoreUnavailable(f"cannot reach {params.where}: {_reason(exc)}") from None
        return cls(pool, params)

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Transaction]:
        try:
            connection = await self._pool.acquire()
        except (TimeoutError, pymysql.err.MySQLError, OSError) as exc:
            raise translate(exc, self.description) from None
        try:
            try:
                await connection.begin()
                # A buffered cursor: results are read whole, nothing is left to drain.
                cursor = await connection.cursor()
            except (TimeoutError, pymysql.err.MySQLError, OSError) as exc:
                raise translate(exc, self.description) from None
            try:
                yield _MysqlTransaction(cursor, self.description)
                try:
                    await connection.commit()
                except (TimeoutError, pymysql.err.MySQLError, OSError) as exc:
                    raise translate(exc, self.description) from None
            except BaseException:
                await self._abandon(connection)
                raise
        finally:
            # The pool closes (rather than reuses) a connection still inside a transaction.
            await self._pool.release(connection)

    async def _abandon(self, connection: aiomysql.Connection) -> None:
        """Roll back; a connection that cannot even do that is closed, so the pool drops it."""
        if connection.closed:
            return
        try:
            await connection.rollback()
        except (TimeoutError, pymysql.err.MySQLError, OSError) as exc:
            log.debug("closing a broken MySQL connection: %s", _reason(exc))
            connection.close()

    async def close(self) -> None:
        self._pool.close()
        await self._pool.wait_closed()
