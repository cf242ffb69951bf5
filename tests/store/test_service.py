"""The store service in-process over real ZeroMQ ipc, with a database we can switch off:
ordered writes, held writes during an outage, read-your-writes, bounds."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.asyncio

from socp.ipc import store_messages as wire
from socp.protocol.ids import ServerId, UserId
from socp.store.actor import StoreService, bind_store_socket
from socp.store.client import StoreClient
from socp.store.database import Database, Transaction
from socp.store.errors import StoreOverloaded, StoreRequestRejected, StoreTimeout, StoreUnavailable
from socp.store.migrations import apply_migrations
from socp.store.operations import Store
from socp.store.records import BindResult, DatabaseStatus, RemoteBinding

TIMEOUT = 5.0


class SwitchableDatabase(Database):
    """A real database that can be made unreachable, like a MySQL server going away."""

    def __init__(self, real: Database) -> None:
        self._real = real
        self.dialect = real.dialect
        self.description = real.description
        self.down = False
        self.attempts_while_down = 0

    def transaction(self, *, write: bool = True) -> AbstractAsyncContextManager[Transaction]:
        if self.down:
            self.attempts_while_down += 1
            raise StoreUnavailable("lost connection to the test database")
        return self._real.transaction(write=write)

    async def close(self) -> None:
        await self._real.close()


@dataclass
class Harness:
    service: StoreService
    client: StoreClient
    database: SwitchableDatabase
    endpoint: str


@asynccontextmanager
async def running_service(tmp_path: Path, *, open_delay: Callable[[], bool] = lambda: False, url: str = "",
                          **service_options: object) -> AsyncIterator[Harness]:
    real = await Database.create(url or f"sqlite:///{tmp_path / 'socp.db'}")
    database = SwitchableDatabase(real)
    store = Store(database)
    await apply_migrations(real, 0)

    async def open_store() -> Store:
        if open_delay():
            raise StoreUnavailable("not yet")
        return store

    endpoint = f"ipc://{tmp_path / 'store.sock'}"
    context = zmq.asyncio.Context()
    socket = bind_store_socket(context, endpoint)
    service = StoreService(socket, open_store, retry_first_delay=0.01, retry_max_delay=0.05,
                           **service_options)  # type: ignore[arg-type]  # each test passes the options it changes
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(service.run(stop))
            async with StoreClient(endpoint, timeout=TIMEOUT, context=context) as client:
                try:
                    yield Harness(service, client, database, endpoint)
                finally:
                    stop.set()
    finally:
        socket.close(linger=0)
        context.term()


async def test_writes_during_an_outage_are_held_and_applied_in_order(tmp_path: Path) -> None:
    async with running_service(tmp_path) as h:
        assert await h.client.bind_user(UserId("u1"), "k1", {}) is BindResult.BOUND
        h.database.down = True
        # Writes wait in the queue; they are sent now and answered after recovery.
        writes = [asyncio.ensure_future(h.client.add_channel_member(UserId(f"m{i}"), i + 2)) for i in range(20)]
        conflict = asyncio.ensure_future(h.client.bind_user(UserId("u1"), "k-other", {}))
        while h.database.attempts_while_down < 3:
            await asyncio.sleep(0.01)
        # A read meanwhile gets a clear error rather than waiting.
        with pytest.raises(StoreUnavailable, match="earlier writes are waiting"):
            await h.client.get_user(UserId("u1"))
        h.database.down = False
        await asyncio.wait_for(asyncio.gather(*writes), TIMEOUT)
        assert await asyncio.wait_for(conflict, TIMEOUT) is BindResult.CONFLICT
        snapshot = await h.client.load_snapshot()
        assert snapshot.public_channel_members == tuple(f"m{i}" for i in range(20))
        assert snapshot.public_channel_version == 21
        assert h.service.counters.write_retries >= 3


async def test_reads_see_earlier_writes(tmp_path: Path) -> None:
    async with running_service(tmp_path) as h:
        writes = [asyncio.ensure_future(h.client.bind_user(UserId(f"u{i}"), f"k{i}", {"n": i})) for i in range(50)]
        await asyncio.sleep(0)   # each write task runs up to its send
        assert h.service.counters.writes_applied < 50
        snapshot = await h.client.load_snapshot()   # sent after the writes: must see all of them
        assert len(snapshot.users) == 50
        assert [await w for w in writes] == [BindResult.BOUND] * 50
        assert (await h.client.get_user(UserId("u7"))).meta == {"n": 7}


async def test_database_not_open_yet(tmp_path: Path) -> None:
    attempts = [0]

    def still_down() -> bool:
        attempts[0] += 1
        return attempts[0] < 5

    async with running_service(tmp_path, open_delay=still_down) as h:
        await h.client.ping()
        pending = asyncio.ensure_future(h.client.bind_user(UserId("early"), "k", {}))
        with pytest.raises(StoreUnavailable, match="not open yet"):
            await h.client.load_snapshot()
        assert await asyncio.wait_for(pending, TIMEOUT) is BindResult.BOUND
        assert "early" in (await h.client.load_snapshot()).users


async def test_stops_even_when_a_connect_swallows_the_cancellation(tmp_path: Path) -> None:
    # Python 3.11's asyncio.wait_for (inside aiomysql's connect) can turn a cancellation
    # into the connect's own error when both land together; the opener must still stop.
    attempting = asyncio.Event()

    async def open_store_swallowing_cancel() -> Store:
        if not attempting.is_set():   # only the first attempt swallows; later ones fail fast
            attempting.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                pass
        raise StoreUnavailable("connection refused")

    endpoint = f"ipc://{tmp_path / 'store.sock'}"
    context = zmq.asyncio.Context()
    socket = bind_store_socket(context, endpoint)
    service = StoreService(socket, open_store_swallowing_cancel, retry_first_delay=0.01, retry_max_delay=0.05)
    stop = asyncio.Event()
    running = asyncio.ensure_future(service.run(stop))
    try:
        await asyncio.wait_for(attempting.wait(), TIMEOUT)
        stop.set()
        await asyncio.wait({running}, timeout=TIMEOUT)
        assert running.done(), "the store kept retrying to open the database after stop"
        running.result()
    finally:
        running.cancel()
        socket.close(linger=0)
        context.term()


async def test_full_write_queue_is_refused(tmp_path: Path) -> None:
    async with running_service(tmp_path, write_queue_size=2) as h:
        h.database.down = True
        held = [asyncio.ensure_future(h.client.bind_user(UserId("u0"), "k", {}))]
        while h.service.counters.write_retries < 1:   # the writer holds u0 and retries it
            await asyncio.sleep(0.005)
        held += [asyncio.ensure_future(h.client.bind_user(UserId(f"u{i}"), "k", {})) for i in (1, 2)]
        while h.service.counters.requests < 3:
            await asyncio.sleep(0.005)
        # u1 and u2 fill the queue: the next write is refused at once.
        with pytest.raises(StoreOverloaded, match="write queue full"):
            await h.client.bind_user(UserId("one-too-many"), "k", {})
        assert h.service.counters.refused_overloaded == 1
        h.database.down = False
        assert [await w for w in held] == [BindResult.BOUND] * 3


async def test_malformed_requests(tmp_path: Path) -> None:
    async with running_service(tmp_path) as h:
        raw = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(h.endpoint)
        try:
            # A readable request id: answered bad_request. Unreadable: dropped, counted.
            await raw.send(msgpack.packb([wire.WIRE_VERSION, wire.BindUser.KIND, 41, "u", 7, {}]))
            await raw.send(b"\xc1 not msgpack")
            await raw.send(msgpack.packb([wire.WIRE_VERSION, 999, 42]))
            replies = [wire.unpack(await asyncio.wait_for(raw.recv(), TIMEOUT), wire.MAX_REPLY_BYTES)
                       for _ in range(2)]
        finally:
            raw.close()
        assert [(r.request_id, r.reason) for r in replies] == [(41, "bad_request"), (42, "bad_request")]
        assert "pubkey has type int" in replies[0].detail
        assert h.service.counters.refused_malformed == 3
        # Bad meta (not JSON) is refused by the store, and the service goes on.
        with pytest.raises(StoreRequestRejected):
            await h.client.bind_user(UserId("u"), "k", {"x": b"bytes"})
        assert await h.client.bind_user(UserId("u"), "k", {}) is BindResult.BOUND


async def test_client_times_out_without_a_store(tmp_path: Path) -> None:
    async with StoreClient(f"ipc://{tmp_path / 'nobody.sock'}", timeout=0.2) as client:
        with pytest.raises(StoreTimeout, match="did not answer Ping within 0.2s"):
            await client.ping()


@pytest.mark.mysql
async def test_mysql_connections_killed_under_the_store(tmp_path: Path, mysql_url: str) -> None:
    """The server drops our connections (a restart, a proxy timeout): the store goes on
    with fresh pooled connections and nothing is lost or reordered."""
    import pymysql

    database_name = mysql_url.rsplit("/", 1)[1]
    async with running_service(tmp_path, url=mysql_url) as h:
        assert await h.client.bind_user(UserId("before"), "k", {}) is BindResult.BOUND
        admin = pymysql.connect(
            host="127.0.0.1",
            port=int(os.environ.get("SOCP_TEST_MYSQL_PORT", "3306")),
            user="root",
            password="",
            autocommit=True,
            connect_timeout=3,
        )
        try:
            with admin.cursor() as cursor:
                cursor.execute("SELECT id FROM information_schema.processlist WHERE db = %s", (database_name,))
                for (connection_id,) in cursor.fetchall():
                    cursor.execute(f"KILL CONNECTION {int(connection_id)}")
        finally:
            admin.close()
        results = await asyncio.gather(*(h.client.add_channel_member(UserId(f"m{i}"), i + 2) for i in range(10)))
        assert results == [None] * 10
        snapshot = await h.client.load_snapshot()
        assert snapshot.public_channel_members == tuple(f"m{i}" for i in range(10))
        assert "before" in snapshot.users


async def test_login_and_remote_users_through_the_client(tmp_path: Path) -> None:
    # The new requests travel the wire and come back with every directory field.
    async with running_service(tmp_path) as h:
        assert await h.client.bind_user(UserId("local"), "k1", {}) is BindResult.BOUND
        assert await h.client.set_login(UserId("local"), "blob", "verifier")
        assert not await h.client.set_login(UserId("nobody"), "blob", "verifier")
        assert (
            await h.client.bind_remote_user(UserId("far"), "k2", "server-b", {"display_name": "F"}) is BindResult.BOUND
        )
        assert await h.client.bind_remote_user(UserId("local"), "k-evil", "server-b") is BindResult.CONFLICT
        batch = [RemoteBinding(UserId("far"), "k2", ServerId("server-b"), {"display_name": "F"}),
                 RemoteBinding(UserId("near"), "k3", ServerId("server-c"), {})]
        assert await h.client.bind_remote_users(batch) == [BindResult.SAME, BindResult.BOUND]
        local = await h.client.get_user(UserId("local"))
        assert (local.privkey_store, local.pake_password, local.home_server, local.version) == (
            "blob",
            "verifier",
            None,
            2,
        )
        users = (await h.client.load_snapshot()).users
        assert users[UserId("local")] == local
        assert users[UserId("far")].home_server == "server-b" and users[UserId("far")].is_remote
        with pytest.raises(StoreRequestRejected):
            await h.client.set_login(UserId("local"), "", "verifier")


async def test_an_outage_shows_in_status_and_the_log_even_when_nothing_is_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="socp.store")
    async with running_service(tmp_path, probe_interval=0.02) as h:
        assert (await h.client.status()).state == "available"
        h.database.down = True
        status = await wait_for_status(h.client, "unavailable")
        assert status.detail == "lost connection to the test database"
        assert status.writes_waiting == 0
        # Status is answered at once during the outage, and counts the writes held.
        held = asyncio.ensure_future(h.client.bind_user(UserId("u1"), "k1", {}))
        while (await h.client.status()).writes_waiting < 1:
            await asyncio.sleep(0.01)
        while h.database.attempts_while_down < 10:  # probes and write retries, many
            await asyncio.sleep(0.01)
        h.database.down = False
        back = await wait_for_status(h.client, "available")
        assert back.detail == "" and back.since_ms >= status.since_ms
        assert await asyncio.wait_for(held, TIMEOUT) is BindResult.BOUND
        assert h.service.counters.outages == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "socp.store" and r.levelno >= logging.WARNING]
    assert len([line for line in lines if line.startswith("database unavailable, retrying")]) == 1, lines
    assert len([line for line in lines if line.startswith("database available again after")]) == 1, lines
    assert len(lines) == 2, lines


async def test_status_while_the_database_has_never_opened(tmp_path: Path) -> None:
    still_down = [True]
    async with running_service(tmp_path, open_delay=lambda: still_down[0]) as h:
        status = await wait_for_status(h.client, "unavailable")
        assert status.detail == "not yet"
        still_down[0] = False
        opened = await wait_for_status(h.client, "available")
        assert opened.since_ms >= status.since_ms


async def wait_for_status(client: StoreClient, state: str) -> DatabaseStatus:
    async with asyncio.timeout(TIMEOUT):
        while True:
            status = await client.status()
            if status.state == state:
                return status
            await asyncio.sleep(0.01)


async def test_signed_hellos_through_the_client(tmp_path: Path) -> None:
    # The new request and the snapshot's new fields travel the wire.
    async with running_service(tmp_path) as h:
        await h.client.note_signed_hello(UserId("local"), "ab" * 16, 1000, 0, 64)
        snapshot = await h.client.load_snapshot()
        assert snapshot.hello_signers == (UserId("local"),)
        assert [tuple(s) for s in snapshot.hello_signatures] == [("local", "ab" * 16, 1000)]
