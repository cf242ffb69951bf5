"""The router's side of the store: what it calls, and how its writes reach the store.

The core decides writes as `StoreWrite(operation, arguments)` actions (core_io.py); the
driver queues them and `write_in_order` applies them in order through `RouterStore`
(socp.store.client.StoreClient is the real one); consecutive remote-user bindings go as
one batch, one transaction. Each operation is one row of `_WRITES`, a typed call: no
method looked up by its name.

A failed write is either
  retryable  the store or its database is out of reach for now (timeout, connection
             lost, database down, write queue full): tried again with backoff, and the
             writes behind it wait, so the order holds. Writes are idempotent, so one
             that timed out but was applied after all does no harm when repeated.
  permanent  retrying cannot help (the store refused the request, the statement
             failed, a bug raised): logged with the write, counted, and dropped, so it
             never blocks the writes behind it.

At a stop (a signal, or an error) `stop_cleanly` writes what is still queued, then the
replay keys and the mark that says all were (replay_log.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from socp.protocol.ids import ServerId, UserId
from socp.store.errors import StoreClosed, StoreError, StoreOverloaded, StoreTimeout, StoreUnavailable
from socp.store.records import BindResult, DatabaseStatus, PinResult, RemoteBinding, StoreSnapshot

from .core_io import StoreWrite, WriteOperation
from .state import RouterState

log = logging.getLogger("socp.router")

STOP_WRITES_TIMEOUT = 3.0     # seconds to write what is queued at a stop (supervisord kills after 5)
FIRST_RETRY_DELAY = 0.2
MAX_RETRY_DELAY = 10.0
# Remote users' bindings (gossip, a joining server's snapshot) go to the store in batches
# of at most this many, each one transaction (write_in_order).
BATCHED: WriteOperation = "bind_remote_user"
BATCH_LIMIT = 500


class RouterStore(Protocol):
    """What the router asks of the store (socp.store.client.StoreClient)."""

    async def load_snapshot(self) -> StoreSnapshot: ...
    async def status(self, *, timeout: float | None = None) -> DatabaseStatus: ...
    async def bind_user(self, user_id: UserId, pubkey: str, meta: dict[str, Any] | None = None) -> BindResult: ...
    async def bind_remote_user(self, user_id: UserId, pubkey: str, home_server: ServerId,
                               meta: dict[str, Any] | None = None) -> BindResult: ...
    async def bind_remote_users(self, bindings: Sequence[RemoteBinding]) -> list[BindResult]: ...
    async def set_login(self, user_id: UserId, privkey_store: str, pake_password: str) -> bool: ...
    async def save_key_share(self, sender: UserId, member: UserId, wrapped_key: str, payload: dict[str, Any],
                             ts: int) -> bool: ...
    async def mark_share_delivered(self, sender: UserId, member: UserId, ts: int | None = None) -> bool: ...
    async def pin_server(self, server_id: ServerId, pubkey: str, host: str | None, port: int | None) -> PinResult: ...
    async def update_server_addr(self, server_id: ServerId, host: str | None, port: int | None) -> bool: ...
    async def note_signed_hello(self, user_id: UserId, sig_digest: str, seen_at: int, forget_before: int,
                                keep: int) -> None: ...
    async def note_replay_keys(self, keys: list[list[Any]], forget_before: int) -> None: ...
    async def set_replay_state(self, name: str, value: int) -> None: ...
    async def add_channel_member(self, member_id: UserId, version: int) -> None: ...
    async def hold_message(self, recipient: UserId, held_id: int, held_at: int, message: dict[str, Any]) -> None: ...
    async def drop_held(self, recipient: UserId, held_ids: list[int]) -> None: ...


Write = Callable[[RouterStore, tuple[Any, ...]], Awaitable[object]]

# Every write the core may decide, as the store call that applies it.
_WRITES: dict[WriteOperation, Write] = {
    "bind_user": lambda store, a: store.bind_user(*a),
    "bind_remote_user": lambda store, a: store.bind_remote_user(*a),
    "set_login": lambda store, a: store.set_login(*a),
    "save_key_share": lambda store, a: store.save_key_share(*a),
    "mark_share_delivered": lambda store, a: store.mark_share_delivered(*a),
    "pin_server": lambda store, a: store.pin_server(*a),
    "update_server_addr": lambda store, a: store.update_server_addr(*a),
    "note_signed_hello": lambda store, a: store.note_signed_hello(*a),
    "note_replay_keys": lambda store, a: store.note_replay_keys(*a),
    "set_replay_state": lambda store, a: store.set_replay_state(*a),
    "add_channel_member": lambda store, a: store.add_channel_member(*a),
    "hold_message": lambda store, a: store.hold_message(*a),
    "drop_held": lambda store, a: store.drop_held(*a),
}

# Out of reach for now: the same write may work later.
RETRYABLE = (StoreTimeout, StoreUnavailable, StoreOverloaded, StoreClosed, ConnectionError, TimeoutError)

# Arguments never written to the log (the key blob and password verifier of set_login).
_SECRET_ARGUMENTS: dict[str, frozenset[int]] = {"set_login": frozenset({1, 2})}


async def apply(store: RouterStore, write: StoreWrite) -> None:
    await _WRITES[write.operation](store, write.arguments)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE)


def describe(write: StoreWrite, limit: int = 300) -> str:
    """The write for a log line: its operation and arguments, secrets left out, cut short."""
    secret = _SECRET_ARGUMENTS.get(write.operation, frozenset())
    shown = ", ".join("<secret>" if i in secret else repr(a) for i, a in enumerate(write.arguments))
    text = f"{write.operation}({shown})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class WriteCounters:
    written: int = 0
    failures: int = 0      # failed tries, retried or not
    dropped: int = 0       # permanent failures: never written


def batches(writes: list[StoreWrite]) -> list[list[StoreWrite]]:
    """`writes` cut into what is applied as one store request, in order: each run of
    consecutive `bind_remote_user` writes is one batch (one transaction), any other
    write is alone."""
    groups: list[list[StoreWrite]] = []
    for write in writes:
        if write.operation == BATCHED and groups and groups[-1][0].operation == BATCHED:
            groups[-1].append(write)
        else:
            groups.append([write])
    return groups


async def apply_batch(store: RouterStore, batch: list[StoreWrite]) -> None:
    if len(batch) == 1:
        await apply(store, batch[0])
    else:
        await store.bind_remote_users([RemoteBinding(*write.arguments) for write in batch])


async def write_in_order(store: RouterStore, writes: asyncio.Queue[StoreWrite], counters: WriteCounters,
                         outage_known: Callable[[], bool] = lambda: False,
                         in_hand: list[StoreWrite] | None = None,
                         first_delay: float = FIRST_RETRY_DELAY) -> None:
    """Apply writes until cancelled (module docstring). What is queued when the loop
    comes round, up to BATCH_LIMIT writes, is taken at once and applied in `batches`:
    a joining server's snapshot of 10,000 users costs 20 store round trips and
    transactions, not 10,000. A batch that fails permanently is applied again one
    write at a time, so only the bad write is dropped. While the store reports its
    database down, it has logged that once: no line per retry. `in_hand` holds the
    writes taken and not yet applied, which a stop writes again."""
    in_hand = [] if in_hand is None else in_hand
    while True:
        in_hand[:] = [await writes.get()]
        while len(in_hand) < BATCH_LIMIT and not writes.empty():
            in_hand.append(writes.get_nowait())
        for batch in batches(list(in_hand)):
            if not await _apply_with_retries(store, batch, counters, outage_known, first_delay) and len(batch) > 1:
                for write in batch:
                    await _apply_with_retries(store, [write], counters, outage_known, first_delay)
            del in_hand[:len(batch)]


async def _apply_with_retries(store: RouterStore, batch: list[StoreWrite], counters: WriteCounters,
                              outage_known: Callable[[], bool], first_delay: float) -> bool:
    """Apply one batch, retrying what may work later; False if it failed for good
    (a single write is then counted as dropped and logged)."""
    delay = first_delay
    while True:
        try:
            await apply_batch(store, batch)
            counters.written += len(batch)
            return True
        except Exception as exc:  # noqa: BLE001 - every failure is sorted below, none ends the loop
            counters.failures += 1
            if not is_retryable(exc):
                if len(batch) > 1:
                    log.warning("router: a batch of %d %s writes failed (%s: %s); applying them one by one",
                                len(batch), batch[0].operation, type(exc).__name__, exc)
                    return False
                counters.dropped += 1
                # The store's refusals say why in one line; anything else is a bug: its traceback.
                log.error("router: store write dropped, retrying cannot help (%s: %s): %s",
                          type(exc).__name__, exc, describe(batch[0]), exc_info=not isinstance(exc, StoreError))
                return False
            level = logging.DEBUG if outage_known() else logging.WARNING
            log.log(level, "router: store write %s failed (%s); retrying in %.1fs", batch[0].operation, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)


async def stop_cleanly(store: RouterStore, writes: asyncio.Queue[StoreWrite], state: RouterState,
                       in_hand: list[StoreWrite], now_ms: int | None = None) -> None:
    """On the way out: write what is still queued, then the replay keys not yet written
    and the mark that says all were. Any failure or time-out leaves the mark at 0, and
    the next start treats this stop as a crash (replay_log.py)."""
    pending = list(in_hand)
    while not writes.empty():
        pending.append(writes.get_nowait())
    pending += state.replay_log.stop(int(time.time() * 1000) if now_ms is None else now_ms)
    try:
        async with asyncio.timeout(STOP_WRITES_TIMEOUT):
            for write in pending:
                await apply(store, write)
    except Exception as exc:  # noqa: BLE001 - any failure: the next start doubts, as after a crash
        log.warning("router: stopped without writing every replay key (%s: %s); the next start treats it as "
                    "a crash", type(exc).__name__, exc)
        return
    log.info("router: replay keys written; stopped cleanly")


async def load_snapshot(store: RouterStore) -> StoreSnapshot:
    """The store's snapshot, waiting for the store while it starts."""
    delay = 0.1
    while True:
        try:
            return await store.load_snapshot()
        except Exception as exc:  # noqa: BLE001 - the store may still be starting
            log.warning("router: waiting for the store (%s)", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
