"""DMs held for offline users (router/offline.py) on every backend: kept in order,
dropped once delivered, a retried write kept once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from socp.protocol.ids import UserId
from socp.store.operations import Store
from socp.store.records import HeldMessage

ALICE = UserId("3f0c6f55-6a43-4c2e-9a53-1b2f4f0e2a01")
BOB = UserId("7d1e2b9c-0f4a-4b8e-8c11-2a6b3c4d5e02")


def message(n: int) -> dict:
    return {"sender": "s", "ts": 1000 + n, "payload": {"ciphertext": "c" * 40_000, "n": n}, "extra": {}}


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url, clock=lambda: 1_700_000_000.0)
    try:
        yield opened
    finally:
        await opened.close()


async def test_held_messages_come_back_in_order_until_dropped(store: Store) -> None:
    for n in (3, 1, 2):
        await store.hold_message(ALICE, n, 5000 + n, message(n))
    await store.hold_message(BOB, 1, 6000, message(9))
    await store.hold_message(ALICE, 2, 9999, message(99))     # the same id again: a retried write
    held = (await store.load_snapshot()).held_messages
    assert [(h.recipient, h.held_id) for h in held if h.recipient == ALICE] == [(ALICE, 1), (ALICE, 2), (ALICE, 3)]
    assert HeldMessage(ALICE, 2, 5002, message(2)) in held
    await store.drop_held(ALICE, [1, 2])
    held = (await store.load_snapshot()).held_messages
    assert sorted((h.recipient, h.held_id) for h in held) == sorted([(ALICE, 3), (BOB, 1)])
