"""The bench counts exactly: a fake SOCP server that drops one delivery, duplicates
another and refuses a third (an ERROR naming its msg_ref) must be reported as 1
lost, 1 duplicated and 1 refused."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import orjson
import pytest
from click.testing import CliRunner
from websockets.asyncio.server import ServerConnection, serve

from socp.bench.dm import DmOptions, run_dm
from socp.bench.keys import KeyPool
from socp.bench.targets import NotLoopback, Target, check_loopback_url
from socp.cli.bench import bench
from socp.protocol.acks import msg_ref_of_text
from socp.protocol.ids import new_id

DROP_NTH = 3          # the 3rd DM the server receives is never delivered
DUPLICATE_NTH = 5     # the 5th is delivered twice
REFUSE_NTH = 7        # the 7th is refused: ERROR OVERLOADED naming its msg_ref


class FakeServer:
    """Just enough of SOCP §7 for a DM bench: hello, list, MSG_DIRECT → USER_DELIVER."""

    def __init__(self) -> None:
        self.server_id = new_id()
        self.users: dict[str, ServerConnection] = {}
        self.direct_messages = 0
        self.dm_senders: set[str] = set()
        self.dm_pairs: set[tuple[str, str]] = set()
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def frame(self, frame_type: str, to: str, ts: int, payload: dict) -> str:
        return orjson.dumps({"type": frame_type, "from": self.server_id, "to": to, "ts": ts,
                             "payload": payload, "sig": ""}).decode()

    async def handle(self, ws: ServerConnection) -> None:
        async for text in ws:
            frame = orjson.loads(text)
            kind, sender = frame["type"], frame["from"]
            if kind == "USER_HELLO":
                self.users[sender] = ws
                await ws.send(self.frame("PUBLIC_CHANNEL_ADD", "*", frame["ts"], {"add": [sender]}))
            elif kind == "LIST_REQUEST":
                await ws.send(self.frame("LIST_RESPONSE", sender, frame["ts"], {"users": sorted(self.users)}))
            elif kind == "MSG_DIRECT":
                self.direct_messages += 1
                self.dm_senders.add(sender)
                self.dm_pairs.add((sender, frame["to"]))
                if self.direct_messages == REFUSE_NTH:
                    await ws.send(self.frame("ERROR", sender, frame["ts"], {
                        "code": "OVERLOADED", "detail": "busy; retry after 5 ms (retry_after_ms=5)",
                        "msg_ref": msg_ref_of_text(text)}))
                    continue
                payload = frame["payload"]
                deliver = self.frame("USER_DELIVER", frame["to"], frame["ts"], {
                    "ciphertext": payload["ciphertext"], "sender": sender,
                    "sender_pub": payload["sender_pub"], "content_sig": payload["content_sig"]})
                if self.direct_messages == DROP_NTH:
                    continue
                copies = 2 if self.direct_messages == DUPLICATE_NTH else 1
                for _ in range(copies):
                    await self.users[frame["to"]].send(deliver)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with serve(self.handle, "127.0.0.1", 0, compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._main())
        self._loop.close()

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server._ready.wait(10)
    yield server
    server.stop()
    thread.join(10)


def test_one_dropped_and_one_duplicated_delivery_are_counted_exactly(fake_server, keys):
    options = DmOptions(users=2, duration_s=1.0, rate=20.0, drain_s=1.0, capacity_s=0.5, progress=False)
    result = run_dm(Target(urls=(f"ws://127.0.0.1:{fake_server.port}",)), options,
                    keys=KeyPool((keys[0],)))

    assert fake_server.direct_messages == result.sent == 20
    assert result.lost == 1
    assert result.refused == 1
    assert result.refused_by_code == {"OVERLOADED": 1}
    assert result.duplicated == 1
    assert result.deliveries == 18
    assert result.sample_failed == 0


def test_few_heavy_senders_each_write_to_their_own_receiver(fake_server, keys):
    options = DmOptions(senders=3, duration_s=1.0, rate=30.0, drain_s=1.0, capacity_s=0.5, progress=False)
    result = run_dm(Target(urls=(f"ws://127.0.0.1:{fake_server.port}",)), options, keys=KeyPool((keys[0],)))

    assert result.users == 6
    assert len(fake_server.dm_senders) == 3
    assert len(fake_server.dm_pairs) == 3                       # each sender to one receiver only
    receivers = {to for _, to in fake_server.dm_pairs}
    assert not receivers & fake_server.dm_senders               # receivers never send
    assert result.sent == 30
    # The 3rd DM is dropped, the 5th delivered twice, the 7th refused.
    assert (result.deliveries, result.lost, result.refused, result.duplicated) == (28, 1, 1, 1)


def test_a_refused_frame_gives_its_window_slot_back_after_the_hint() -> None:
    from socp.bench.prepare import PreparedFrame
    from socp.bench.tracker import DeliveryTracker

    tracker = DeliveryTracker()
    tracker.expect([PreparedFrame(sender=0, receivers=(1,), key="k1", text="", ref="r1"),
                    PreparedFrame(sender=0, receivers=(1,), key="k2", text="", ref="r2")])
    released: list[tuple[int, float]] = []
    tracker.on_refused = lambda sender, wait_s: released.append((sender, wait_s))
    tracker.sent("k1", 0.0)
    tracker.sent("k2", 0.0)
    assert tracker.refused("r1", "RATE_LIMITED", 0.25)
    assert not tracker.refused("r1", "RATE_LIMITED", 0.25)     # named again: counted once
    assert not tracker.refused("unknown", "RATE_LIMITED")       # not a frame of ours
    assert released == [(0, 0.25)]
    assert (tracker.refused_count(), tracker.lost(), tracker.outstanding()) == (1, 1, 1)
    tracker.delivered(1, "k2", 0.1, "", "")
    assert (tracker.lost(), tracker.outstanding()) == (0, 0)


def test_cli_refuses_senders_and_users_together():
    outcome = CliRunner().invoke(bench, ["dm", "--url", "ws://127.0.0.1:1", "--users", "4", "--senders", "2"])
    assert outcome.exit_code != 0
    assert "not both" in outcome.output


@pytest.mark.parametrize("url", ["ws://127.0.0.1:1", "ws://localhost:1", "ws://[::1]:1", "ws://127.8.9.10:1"])
def test_loopback_urls_are_accepted(url):
    assert check_loopback_url(url) == url


@pytest.mark.parametrize("url", ["ws://10.0.0.1:8765", "ws://example.com:80", "http://127.0.0.1:1", "ws://[::2]:1"])
def test_other_urls_are_refused(url):
    with pytest.raises(NotLoopback):
        check_loopback_url(url)


def test_cli_refuses_a_remote_url():
    outcome = CliRunner().invoke(bench, ["dm", "--url", "ws://192.0.2.1:8765", "--duration", "1"])
    assert outcome.exit_code != 0
    assert "loopback" in outcome.output


def test_an_error_naming_a_refused_burst_counts_each_frame() -> None:
    from socp.bench.phase import make_handler
    from socp.bench.tracker import DeliveryTracker

    tracker = DeliveryTracker()
    handle = make_handler(tracker, frozenset({"USER_DELIVER"}), lambda frame: None)
    handle(None, {"type": "ERROR", "payload": {"code": "RATE_LIMITED", "msg_ref": "c",
                                               "msg_refs": ["a", "b", "c"]}}, "", 0.0)
    handle(None, {"type": "ERROR", "payload": {"code": "RATE_LIMITED", "msg_ref": "d"}}, "", 0.0)
    handle(None, {"type": "ERROR", "payload": {"code": "USER_NOT_FOUND"}}, "", 0.0)
    assert tracker.errors == {"RATE_LIMITED": 4, "USER_NOT_FOUND": 1}
