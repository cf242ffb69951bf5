"""Backends for the store tests: every store test runs on SQLite and on MySQL/MariaDB.

MySQL is the server of `support.mysql` (127.0.0.1:3306, user root, empty password).
Each test gets a fresh database, dropped afterwards. Without a reachable server the
MySQL cases are skipped - or fail, when SOCP_REQUIRE_MYSQL=1 (CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.mysql import MysqlServer, reachable_mysql_server


@pytest.fixture(scope="session")
def mysql_server() -> MysqlServer:
    return reachable_mysql_server()


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
