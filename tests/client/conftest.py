from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from socp.client.channel_keys import ChannelKeyRing
from socp.client.session import ClientSession
from socp.client.trust import PinStore
from socp.protocol.ids import new_id

from .client_fakes import FakeNode, MemoryNet

# keys[0..2]: users alice, bob, carol; keys[3], keys[4]: alice's and bob's channel keys.
USER_KEYS = {"alice": 0, "bob": 1, "carol": 2}
CHANNEL_KEYS = {"alice": 3, "bob": 4}


class TickClock:
    """Deterministic time: each reading advances 10 ms."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> float:
        return 1_700_000_000.0 + next(self._ticks) * 0.01


@pytest.fixture
def make_session(keys, tmp_path) -> Callable[..., ClientSession]:
    def make(name: str, *, user_key_index: int | None = None, user_id: str | None = None,
             clock: Callable[[], float] | None = None, **options) -> ClientSession:
        home = tmp_path / name
        channel_index = CHANNEL_KEYS.get(name)

        def own_channel_key():
            if channel_index is None:
                raise AssertionError(f"{name} has no channel key in this test")
            return keys[channel_index]

        user_key = keys[USER_KEYS[name] if user_key_index is None else user_key_index]
        return ClientSession(
            user_id or new_id(), user_key, display_name=name,
            pins=PinStore(home / "pins.json"),
            channel_keys=ChannelKeyRing(own_channel_key, path=home / "channel_keys.json", user_key=user_key),
            downloads_dir=home / "downloads", clock=clock or TickClock(), **options,
        )

    return make


@pytest.fixture
def net() -> MemoryNet:
    return MemoryNet(FakeNode())


@pytest.fixture
async def chats():
    """Chat subprocesses started by a test; killed at its end whatever happened."""
    started: list = []
    yield started
    for chat in started:
        chat.kill()
        await asyncio.wait_for(chat.proc.wait(), 10)
