"""Replay keys and the clean-stop mark (router/replay_log.py), on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from socp.store.errors import StoreRequestRejected
from socp.store.migrations import STOPPED_CLEANLY_AT, apply_migrations
from socp.store.operations import REPLAY_KEYS_KEPT_MS, REPLAY_ROWS_PER_STATEMENT, Store

NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url, clock=lambda: NOW)
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_new_database_says_the_last_stop_was_clean(store: Store) -> None:
    snapshot = await store.load_snapshot()
    assert snapshot.replay_keys == ()
    assert snapshot.replay_state == {STOPPED_CLEANLY_AT: NOW_MS}


async def test_keys_come_back_oldest_first_and_old_ones_are_forgotten(store: Store) -> None:
    many = [[f"{n:032x}", NOW_MS - n, NOW_MS] for n in range(2 * REPLAY_ROWS_PER_STATEMENT + 7)]
    await store.note_replay_keys(many, forget_before_ms=0)
    await store.note_replay_keys([["old", NOW_MS - REPLAY_KEYS_KEPT_MS - 1, NOW_MS], many[0]], forget_before_ms=0)
    keys = (await store.load_snapshot()).replay_keys
    assert list(keys) == sorted(((ref, ts) for ref, ts, _ in many), key=lambda k: k[1])   # "old": past the window
    await store.note_replay_keys([], forget_before_ms=NOW_MS - 10)
    assert {ts for _, ts in (await store.load_snapshot()).replay_keys} == {NOW_MS - n for n in range(11)}


async def test_the_stop_mark_is_overwritten(store: Store) -> None:
    await store.set_replay_state(STOPPED_CLEANLY_AT, 0)
    assert (await store.load_snapshot()).replay_state[STOPPED_CLEANLY_AT] == 0
    await store.set_replay_state(STOPPED_CLEANLY_AT, NOW_MS + 5)
    assert (await store.load_snapshot()).replay_state[STOPPED_CLEANLY_AT] == NOW_MS + 5


async def test_bad_keys_are_refused(store: Store) -> None:
    with pytest.raises(StoreRequestRejected):
        await store.note_replay_keys([["ref", "not a ts", 1]], forget_before_ms=0)
    with pytest.raises(StoreRequestRejected):
        await store.set_replay_state("", 1)


async def test_migrating_twice_keeps_the_mark_and_the_keys(store: Store) -> None:
    await store.set_replay_state(STOPPED_CLEANLY_AT, 0)
    await store.note_replay_keys([["k", NOW_MS, NOW_MS]], forget_before_ms=0)
    assert await apply_migrations(store.database, NOW_MS + 1) == []
    snapshot = await store.load_snapshot()
    assert snapshot.replay_state[STOPPED_CLEANLY_AT] == 0 and snapshot.replay_keys == (("k", NOW_MS),)
