"""Unreachable or misconfigured databases: one clear line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from socp.config import NodeConfig
from socp.store.database import Database
from socp.store.errors import StoreMisconfigured, StoreUnavailable

MYSQL_PORT = int(os.environ.get("SOCP_TEST_MYSQL_PORT", "3306"))

if TYPE_CHECKING:
    from conftest import MysqlServer


async def test_unreachable_mysql_is_store_unavailable() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(StoreUnavailable) as caught:
        await Database.create("mysql://root:s3cret@127.0.0.1:1/socp")
    message = str(caught.value)
    assert not isinstance(caught.value, StoreMisconfigured)   # worth retrying
    assert "cannot reach MySQL root@127.0.0.1:1/socp" in message
    assert "\n" not in message and "s3cret" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.mysql
async def test_wrong_mysql_password_is_misconfigured(mysql_server: MysqlServer) -> None:
    with pytest.raises(StoreMisconfigured) as caught:
        await Database.create(f"mysql://root:definitely-wrong@127.0.0.1:{MYSQL_PORT}/mysql")
    assert str(caught.value) == f"MySQL root@127.0.0.1:{MYSQL_PORT}/mysql: access denied (wrong user or password)"


@pytest.mark.mysql
async def test_missing_mysql_database_is_created(mysql_server: MysqlServer) -> None:
    # `socp up --db mysql://root@127.0.0.1:3306/socp` works on a fresh server.
    name = f"socp_absent_{mysql_server.run_tag}"
    try:
        database = await Database.create(f"mysql://root@127.0.0.1:{MYSQL_PORT}/{name}")
        try:
            async with database.transaction(write=False) as tx:
                row = await tx.fetch_one("SELECT @@collation_database")
        finally:
            await database.close()
        assert row == ("utf8mb4_bin",)   # SOCP §3: user ids are case-sensitive
    finally:
        mysql_server.drop_database(name)


@pytest.mark.parametrize("url", ["postgres://x/y", "sqlite:///", "mysql://root@127.0.0.1:3306/", "mysql://h:notaport/db"])
async def test_bad_urls_are_misconfigured(url: str) -> None:
    with pytest.raises(StoreMisconfigured):
        await Database.create(url)


async def test_sqlite_directory_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreMisconfigured, match="cannot create the directory"):
        await Database.create(f"sqlite:///{blocker / 'sub' / 'socp.db'}")


@pytest.mark.mysql
def test_actor_with_wrong_password_exits_with_one_line(mysql_server: MysqlServer, tmp_path: Path) -> None:
    config = NodeConfig(data_dir=tmp_path, db_url=f"mysql://root:definitely-wrong@127.0.0.1:{MYSQL_PORT}/mysql")
    config.save()
    done = subprocess.run([sys.executable, "-m", "socp.store", str(tmp_path)], capture_output=True, text=True,
                          timeout=30, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"socp store: MySQL root@127.0.0.1:{MYSQL_PORT}/mysql: access denied (wrong user or password)")
