"""The router's writes to the store (socp/router/persistence.py): in order, through the
typed RouterStore interface; a retryable failure is tried again and holds the writes
behind it, a permanent one is logged with the write, counted and dropped, never
blocking later writes. And the start-up settings that come from the node config."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from socp.config import NodeConfig
from socp.router import persistence
from socp.router.core_io import StoreWrite
from socp.router.snapshot import state_from_snapshot
from socp.store.errors import StoreQueryError, StoreTimeout
from socp.store.records import BindResult, RemoteBinding, StoreSnapshot


class ScriptedStore:
    """Answers each call with the next scripted failure for its operation, else success."""

    def __init__(self, failures: dict[str, list[BaseException]]) -> None:
        self.failures = failures
        self.applied: list[tuple[str, tuple[object, ...]]] = []

    async def _call(self, operation: str, *arguments: object) -> None:
        waiting = self.failures.get(operation)
        if waiting:
            raise waiting.pop(0)
        self.applied.append((operation, arguments))

    async def add_channel_member(self, member_id: str, version: int) -> None:
        await self._call("add_channel_member", member_id, version)

    async def set_login(self, user_id: str, privkey_store: str, pake_password: str) -> bool:
        await self._call("set_login", user_id, privkey_store, pake_password)
        return True

    async def bind_remote_user(self, *binding: object) -> BindResult:
        await self._call("bind_remote_user", *binding)
        return BindResult.BOUND

    async def bind_remote_users(self, bindings: list[RemoteBinding]) -> list[BindResult]:
        await self._call("bind_remote_users", *(tuple(b) for b in bindings))
        return [BindResult.BOUND] * len(bindings)


async def _write_all(store: ScriptedStore, writes: list[StoreWrite], counters: persistence.WriteCounters,
                     expected: int) -> None:
    queue: asyncio.Queue[StoreWrite] = asyncio.Queue()
    for write in writes:
        queue.put_nowait(write)
    task = asyncio.create_task(persistence.write_in_order(store, queue, counters, first_delay=0.01))  # type: ignore[arg-type]  # implements only the calls used here
    try:
        async with asyncio.timeout(5):
            while len(store.applied) + counters.dropped < expected:
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_retryable_failure_is_tried_again_and_the_order_holds() -> None:
    store = ScriptedStore({"add_channel_member": [StoreTimeout("no answer"), ConnectionError("lost")]})
    counters = persistence.WriteCounters()
    writes = [StoreWrite("add_channel_member", ("alice", 2)), StoreWrite("add_channel_member", ("bob", 3))]
    await _write_all(store, writes, counters, expected=2)
    assert store.applied == [("add_channel_member", ("alice", 2)), ("add_channel_member", ("bob", 3))]
    assert (counters.written, counters.failures, counters.dropped) == (2, 2, 0)


async def test_a_permanent_failure_is_logged_counted_and_dropped_without_blocking_later_writes(caplog) -> None:
    store = ScriptedStore({"set_login": [StoreQueryError("constraint failed")]})
    counters = persistence.WriteCounters()
    writes = [StoreWrite("set_login", ("alice", "BLOB-SECRET", "VERIFIER-SECRET")),
              StoreWrite("add_channel_member", ("bob", 3))]
    with caplog.at_level(logging.ERROR, logger="socp.router"):
        await _write_all(store, writes, counters, expected=2)
    assert store.applied == [("add_channel_member", ("bob", 3))]
    assert (counters.written, counters.failures, counters.dropped) == (1, 1, 1)
    (line,) = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert "StoreQueryError: constraint failed" in line and "set_login('alice', <secret>, <secret>)" in line
    assert "SECRET" not in caplog.text   # the key blob and password verifier never reach the log


async def test_a_bug_is_permanent_too_and_logged_with_its_traceback(caplog) -> None:
    store = ScriptedStore({"add_channel_member": [TypeError("wrong arguments")]})
    counters = persistence.WriteCounters()
    with caplog.at_level(logging.ERROR, logger="socp.router"):
        writes = [StoreWrite("add_channel_member", ("a", 1)), StoreWrite("add_channel_member", ("b", 2))]
        await _write_all(store, writes, counters, expected=2)
    assert store.applied == [("add_channel_member", ("b", 2))] and counters.dropped == 1
    (record,) = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert record.exc_info is not None


def _bind(user: str) -> StoreWrite:
    return StoreWrite("bind_remote_user", (user, f"key-{user}", "server-b", {}))


def test_consecutive_remote_bindings_make_one_batch_and_other_writes_keep_their_place() -> None:
    member = StoreWrite("add_channel_member", ("m", 2))
    writes = [_bind("a"), _bind("b"), member, _bind("c"), member, member, _bind("d"), _bind("e"), _bind("f")]
    assert persistence.batches(writes) == [writes[0:2], [member], [writes[3]], [member], [member], writes[6:9]]


async def test_queued_remote_bindings_reach_the_store_as_batches_in_order() -> None:
    store = ScriptedStore({})
    counters = persistence.WriteCounters()
    count = persistence.BATCH_LIMIT + 10
    writes = [_bind(str(n)) for n in range(count)] + [StoreWrite("add_channel_member", ("m", 2)), _bind("last")]
    await _write_all(store, writes, counters, expected=3)
    # All were queued before the loop ran: one full batch, the rest, the member, the last one alone.
    assert [(operation, len(arguments)) for operation, arguments in store.applied] == [
        ("bind_remote_users", persistence.BATCH_LIMIT), ("bind_remote_users", 10),
        ("add_channel_member", 2), ("bind_remote_user", 4)]
    applied_users = [a[0] for op, args in store.applied if op == "bind_remote_users" for a in args]  # type: ignore[index]  # bindings are tuples
    assert applied_users == [str(n) for n in range(count)]
    assert store.applied[-1][1][0] == "last"
    assert counters.written == count + 2


async def test_a_batch_that_fails_for_good_is_applied_one_by_one_so_only_the_bad_write_is_dropped() -> None:
    store = ScriptedStore({"bind_remote_users": [StoreTimeout("no answer"), StoreQueryError("bad row")],
                           "bind_remote_user": [StoreQueryError("bad row")]})
    counters = persistence.WriteCounters()
    await _write_all(store, [_bind("a"), _bind("b"), _bind("c")], counters, expected=3)
    # Retried once (timeout), then refused: each alone; the first fails again and is dropped.
    assert store.applied == [("bind_remote_user", ("b", "key-b", "server-b", {})),
                             ("bind_remote_user", ("c", "key-c", "server-b", {}))]
    assert (counters.written, counters.failures, counters.dropped) == (2, 3, 1)


@pytest.mark.parametrize(("setting", "value", "field", "wanted", "default"), [
    ("ack_interval", 0.2, "ack_interval_ms", 200, 500),
    ("ack_max_delay", 5, "ack_max_delay_ms", 5000, 30_000),
])
def test_ack_timing_comes_from_the_node_config(tmp_path: Path, setting: str, value: float, field: str,
                                               wanted: int, default: int) -> None:
    snapshot = StoreSnapshot(users={}, pinned_servers={}, pending_key_shares=(), public_channel_version=1,
                             public_channel_members=())
    identity = SimpleNamespace(server_id="6f1e8f0a-1d2c-4b3a-9e8f-7a6b5c4d3e2f", public_key_text="")
    config = NodeConfig(data_dir=tmp_path, **{setting: value})
    assert getattr(state_from_snapshot(identity, config, snapshot).timing, field) == wanted  # type: ignore[arg-type]  # only the two fields it reads
    assert getattr(state_from_snapshot(identity, NodeConfig(data_dir=tmp_path), snapshot).timing, field) == default  # type: ignore[arg-type]  # as above


def test_every_write_the_core_may_decide_has_its_store_call() -> None:
    from typing import get_args

    from socp.router.core_io import WriteOperation

    assert set(get_args(WriteOperation)) == set(persistence._WRITES)


def test_socp_up_takes_the_ack_timing_from_its_options_or_the_environment(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from socp import node
    from socp.cli import up as up_cli

    seen: list[NodeConfig] = []

    def stop_here(config: NodeConfig) -> None:
        seen.append(config)
        raise node.NodeStartError("stopped by the test")

    monkeypatch.setattr(node, "prepare", stop_here)
    monkeypatch.setenv("SOCP_ACK_INTERVAL", "0.25")
    monkeypatch.setenv("SOCP_ACK_MAX_DELAY", "7")
    CliRunner().invoke(up_cli.up, ["--data-dir", str(tmp_path / "a")])
    CliRunner().invoke(up_cli.up, ["--data-dir", str(tmp_path / "b"), "--ack-interval", "2", "--ack-max-delay", "60"])
    assert [config.ack_interval for config in seen] == [0.25, 2.0]
    assert [config.ack_max_delay for config in seen] == [7.0, 60.0]
