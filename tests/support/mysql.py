"""The MySQL/MariaDB server the tests use: 127.0.0.1:3306 (user root, empty password;
SOCP_TEST_MYSQL_PORT overrides the port). Each test gets a fresh database named
`socp_test_<run>_<n>`, dropped afterwards. Without a reachable server the MySQL
tests are skipped - or fail, when SOCP_REQUIRE_MYSQL=1 (CI)."""

from __future__ import annotations

import itertools
import os
import secrets

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
        self._execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return name

    def drop_database(self, name: str) -> None:
        self._execute(f"DROP DATABASE IF EXISTS `{name}`")

    def _execute(self, statement: str) -> None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def url(self, database: str, host: str = MYSQL_HOST, port: int = MYSQL_PORT) -> str:
        return f"mysql://{MYSQL_USER}:{MYSQL_PASSWORD}@{host}:{port}/{database}"


def reachable_mysql_server() -> MysqlServer:
    """The server, or skip the test (fail it under SOCP_REQUIRE_MYSQL=1) if none answers."""
    server = MysqlServer()
    try:
        server.check()
    except pymysql.err.MySQLError as exc:
        reason = f"MySQL/MariaDB not reachable on {MYSQL_HOST}:{MYSQL_PORT} as {MYSQL_USER}: {exc}"
        if os.environ.get("SOCP_REQUIRE_MYSQL") == "1":
            pytest.fail(f"{reason} (SOCP_REQUIRE_MYSQL=1)", pytrace=False)
        pytest.skip(reason)
    return server
