"""Replay protection across a restart (router/replay_log.py; issue #15 item 5): the
keys of user frames go to the store once per Tick and come back at start; after an
unclean stop, a frame stamped before the restart whose key is unknown is answered
RESEND rather than delivered (a copy) or called a REPLAY (lost)."""

from __future__ import annotations

from socp.protocol import frames
from socp.protocol.acks import msg_ref
from socp.router import core, replay_log
from socp.router.core_io import StoreWrite, Tick

from .harness import NOW, Harness, sent_to, store_writes


def dm(sender: str, recipient: str, ts: int, n: int = 0):
    return frames.msg_direct(sender, recipient, ts, "Y2lwaGVy", "a2V5", f"c2ln{n}")


def restart(before: Harness, keys, stopped_cleanly: bool, after_ms: int = 5_000) -> Harness:
    """A new router on the keys the old one wrote (StoreWrites of its Ticks and stop)."""
    written = [w for w in _writes(before) if w.operation == "note_replay_keys"]
    rows = [(ref, ts) for write in written for ref, ts, _ in write.arguments[0]]
    fresh = Harness(server_key=keys[0])
    fresh.state.now_ms = NOW + after_ms
    fresh.state.replay_log.load(rows, {replay_log.STOPPED_CLEANLY_AT: NOW if stopped_cleanly else 0},
                                fresh.state.now_ms)
    return fresh


_WRITES: dict[int, list[StoreWrite]] = {}


def _writes(node: Harness) -> list[StoreWrite]:
    return _WRITES.setdefault(id(node), [])


def tick(node: Harness) -> None:
    _writes(node).extend(a for a in core.handle(node.state, Tick()) if isinstance(a, StoreWrite))


def test_a_frame_seen_before_a_restart_is_a_duplicate_after_it(keys) -> None:
    old = Harness(server_key=keys[0])
    a_conn, alice, _ = old.connect_user(keys[1])
    b_conn, bob, _ = old.connect_user(keys[2])
    captured = dm(alice, bob, NOW)
    assert sent_to(old.feed(a_conn, captured), b_conn, "USER_DELIVER")
    tick(old)
    (write,) = [w for w in _writes(old) if w.operation == "note_replay_keys"]
    assert [row[0] for row in write.arguments[0]] == [msg_ref(captured)]
    for clean in (True, False):
        new = restart(old, keys, stopped_cleanly=clean)
        a2, _, _ = new.connect_user(keys[1], user_id=alice)
        b2, _, _ = new.connect_user(keys[2], user_id=bob)
        answers = new.feed(a2, captured)
        assert sent_to(answers, b2) == []                                  # not delivered again
        (error,) = sent_to(answers, a2, "ERROR")
        assert error.payload["code"] == "REPLAY" and error.payload["msg_ref"] == msg_ref(captured)


def test_after_an_unclean_stop_an_unknown_frame_stamped_before_the_restart_must_be_resent(keys) -> None:
    old = Harness(server_key=keys[0])
    new = restart(old, keys, stopped_cleanly=False)
    a_conn, alice, _ = new.connect_user(keys[1])
    b_conn, bob, _ = new.connect_user(keys[2])
    lost_key = dm(alice, bob, NOW + 1_000)                 # stamped before the restart (NOW + 5 s)
    answers = new.feed(a_conn, lost_key)
    assert sent_to(answers, b_conn) == []
    (error,) = sent_to(answers, a_conn, "ERROR")
    assert error.payload["code"] == "RESEND" and error.payload["msg_ref"] == msg_ref(lost_key)
    # Re-stamped after the restart, it goes through (a frame is new by construction).
    restamped = dm(alice, bob, new.state.now_ms + 1)
    assert sent_to(new.feed(a_conn, restamped), b_conn, "USER_DELIVER")
    # ...and a RESEND is no verdict on the bytes: once the window has passed, the same
    # old frame is refused as stale, never delivered.
    new.state.now_ms += replay_log.WINDOW_MS + 1
    (stale,) = sent_to(new.feed(a_conn, lost_key), a_conn, "ERROR")
    assert stale.payload["code"] == "REPLAY"


def test_after_a_clean_stop_an_unknown_frame_is_new(keys) -> None:
    new = restart(Harness(server_key=keys[0]), keys, stopped_cleanly=True)
    a_conn, alice, _ = new.connect_user(keys[1])
    b_conn, bob, _ = new.connect_user(keys[2])
    assert sent_to(new.feed(a_conn, dm(alice, bob, NOW + 1_000)), b_conn, "USER_DELIVER")


def test_a_refused_frame_leaves_no_key_behind(keys) -> None:
    node = Harness(server_key=keys[0])
    a_conn, alice, _ = node.connect_user(keys[1])
    refused = dm(alice, "nobody-here", NOW)
    assert sent_to(node.feed(a_conn, refused), a_conn, "ERROR")[0].payload["code"] == "USER_NOT_FOUND"
    tick(node)
    assert store_writes(_writes(node), "note_replay_keys") == []


def test_a_clean_stop_writes_the_last_keys_then_the_mark(keys) -> None:
    node = Harness(server_key=keys[0])
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    frame = dm(alice, bob, NOW)
    node.feed(a_conn, frame)
    writes = node.state.replay_log.stop(NOW + 10)
    assert [w.operation for w in writes] == ["note_replay_keys", "set_replay_state"]
    assert writes[0].arguments[0][0][0] == msg_ref(frame)
    assert writes[1].arguments == (replay_log.STOPPED_CLEANLY_AT, NOW + 10)
    assert replay_log.running_mark().arguments == (replay_log.STOPPED_CLEANLY_AT, 0)


def test_restored_keys_leave_with_the_window(keys) -> None:
    log = replay_log.ReplayLog()
    log.load([("b", NOW), ("a", NOW - 1)], {replay_log.STOPPED_CLEANLY_AT: 1}, NOW)
    assert list(log.restored) == ["a", "b"]
    log.tick(NOW + replay_log.WINDOW_MS)        # "a" is now older than the window
    assert list(log.restored) == ["b"]


def test_no_clean_stop_is_claimed_when_keys_were_lost(keys) -> None:
    log = replay_log.ReplayLog()
    log.note("k", NOW, NOW)
    log.keys_lost = True                         # the driver could not queue a write of keys
    assert [w.operation for w in log.stop(NOW)] == [replay_log.WRITE_KEYS]


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def __getattr__(self, operation: str):
        async def call(*arguments):
            if self.fail:
                raise ConnectionError("the store is gone")
            self.calls.append((operation, *arguments))
        return call


async def test_the_driver_writes_what_is_queued_then_the_keys_then_the_mark(keys) -> None:
    import asyncio

    from socp.router.persistence import stop_cleanly

    node = Harness(server_key=keys[0])
    a_conn, alice, _ = node.connect_user(keys[1])
    _, bob, _ = node.connect_user(keys[2])
    node.feed(a_conn, dm(alice, bob, NOW))
    queue: asyncio.Queue[StoreWrite] = asyncio.Queue()
    queue.put_nowait(StoreWrite("bind_user", ("x", "key", {})))
    store = FakeStore()
    await stop_cleanly(store, queue, node.state, [StoreWrite("add_channel_member", ("y", 2))])
    assert [call[0] for call in store.calls] == ["add_channel_member", "bind_user", "note_replay_keys",
                                                 "set_replay_state"]
    assert store.calls[-1][1:3] == (replay_log.STOPPED_CLEANLY_AT, store.calls[-1][2]) and store.calls[-1][2] > 0
    failing = FakeStore(fail=True)
    await stop_cleanly(failing, asyncio.Queue(), node.state, [])    # logs; leaves the mark at 0
    assert failing.calls == []
