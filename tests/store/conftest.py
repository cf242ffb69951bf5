"""Backends for the store tests: every store test runs on SQLite and on MySQL/MariaDB.

MySQL is the server on 127.0.0.1:3306 (user root, empty password; SOCP_TEST_MYSQL_PORT
overrides the port). Each test gets a
fresh database named `socp_test_<run>_<n>`, dropped afterwards. Without a reachable
server the MySQL cases are skipped - or fail, when SOCP_REQUIRE_MYSQL=1 (CI).
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

MYSQL_HOST = "127.0.0.1"
MYSQL_PORT = int(os.environ.get("SOCP_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = "root"
MYSQL_PASSWORD = ""


class MysqlServer:
    """Creates and drops the throw-away databases of this test run."""

    def __init__(self) -> None:
        self.run_tag = secrets.token_hex(4)
        self._numbers = itertools.count(1)

    def _connect(self) -> pymysql.connections.Connection:
        return pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD,
                               connect_timeout=3, read_timeout=10, write_timeout=10, autocommit=True)

    def check(self) -> None:
        self._connect().close()

    def create_database(self) -> str:
        name = f"socp_test_{self.run_tag}_{next(self._numbers)}"
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            connection.close()
        return name

    def drop_database(self, name: str) -> None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            connection.close()

    def url(self, database: str) -> str:
        return f"mysql://{MYSQL_USER}:{MYSQL_PASSWORD}@{MYSQL_HOST}:{MYSQL_PORT}/{database}"


@pytest.fixture(scope="session")
def mysql_server() -> MysqlServer:
    server = MysqlServer()
    try:
        server.check()
    except pymysql.err.MySQLError as exc:
        reason = f"MySQL/MariaDB not reachable on {MYSQL_HOST}:{MYSQL_PORT} as {MYSQL_USER}: {exc}"
        if os.environ.get("SOCP_REQUIRE_MYSQL") == "1":
            pytest.fail(f"{reason} (SOCP_REQUIRE_MYSQL=1)", pytrace=False)
        pytest.skip(reason)
    return server


@pytest.fixture
def mysql_url(mysql_server: MysqlServer) -> Iterator[str]:
    name = mysql_server.create_database()
    try:
        yield mysql_server.url(name)
    finally:
        mysql_server.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database, one per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'socp.db'}"
    return request.getfixturevalue("mysql_url")
