"""Fuzz a live node: generated frames through its gateway, verifiers and router.

Two kinds of input: valid-ish frames (a real SOCP type, real field names, random
values) and garbage (random text, JSON of any shape, binary). Most go over one
accepted user connection; some open a fresh connection and are its first frame.
Afterwards the node must still answer /healthz, deliver a DM between two new
users, and list its users correctly (sorted, consistent, nobody who is gone).

Bounded for CI: at most FUZZ_SECONDS of sending (SOCP_FUZZ_SECONDS, default 15) and
SOCP_FUZZ_EXAMPLES inputs (default 3000, about what 15 s holds here); the number sent
is printed (`-s`). A longer local run:

    SOCP_FUZZ_EXAMPLES=20000 SOCP_FUZZ_SECONDS=600 pytest -q -s tests/poc/test_fuzz_node.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from socp.protocol import crypto, frames, signing
from socp.protocol.frame_types import KNOWN_TYPES
from socp.protocol.ids import new_id
from support.wsclient import RawUser, now_ms

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("SOCP_FUZZ_EXAMPLES", "3000"))
FUZZ_SECONDS = float(os.environ.get("SOCP_FUZZ_SECONDS", "15"))
FIELDS = ["ciphertext", "sender_pub", "content_sig", "pubkey", "enc_pubkey", "user_id", "server_id", "meta",
          "file_id", "index", "name", "size", "sha256", "mode", "shares", "creator_pub", "add", "if_version",
          "version", "wraps", "host", "port", "assigned_id", "servers", "clients", "code", "detail", "msg_ref",
          "sender", "part", "client"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def valid_ish(draw: st.DrawFn, own_id: str, real_key: str) -> str:
    payload = draw(st.dictionaries(st.sampled_from(FIELDS),
                                   json_values | st.sampled_from([real_key, own_id, new_id(), "*", "public", ""]),
                                   max_size=6))
    frame = {
        "type": draw(st.sampled_from(sorted(KNOWN_TYPES)) | st.text(max_size=12)),
        "from": draw(st.sampled_from([own_id, new_id(), "", "*"]) | st.text(max_size=40)),
        "to": draw(st.sampled_from(["*", "public", own_id, new_id(), "127.0.0.1:1"])),
        "ts": draw(st.sampled_from([now_ms(), 0, -1, 2**60]) | st.integers(0, 2**53)),
        "payload": payload,
        "sig": draw(st.sampled_from(["", "c2ln", "!!"]) | st.text(max_size=20)),
    }
    for name in draw(st.sets(st.sampled_from(list(frame)), max_size=1)):
        del frame[name]   # sometimes a field is missing
    return json.dumps(frame)


garbage = (st.text(max_size=300) | st.binary(max_size=300)
           | json_values.map(json.dumps) | st.just("{" * 5000) | st.just('{"type":"USER_HELLO"'))


def healthz(url: str) -> dict:
    port = url.rsplit(":", 1)[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        return json.loads(answer.read())


class FuzzUser:
    """A synchronous user connection that reconnects when the node closes it."""

    def __init__(self, url: str, key: crypto.PrivateKey) -> None:
        self.url, self.key = url, key
        self.user_id = new_id()
        self.socket: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self.reconnects = 0

    def ensure(self) -> ClientConnection:
        if self.socket is None:
            self.user_id = new_id()
            # No keepalive pings: their payloads come from `random` on a background
            # thread, which Hypothesis reports as a strategy using the random module.
            self.socket = self._stack.enter_context(connect(self.url, compression=None, open_timeout=5,
                                                            max_size=None, ping_interval=None))
            hello = frames.user_hello(self.user_id, None, now_ms(), crypto.encode_public_key(self.key))
            self.socket.send(signing.sign_envelope(self.key, hello).to_wire())
            self.reconnects += 1
        return self.socket

    def send(self, data: str | bytes) -> None:
        try:
            socket = self.ensure()
            socket.send(data)
            while True:   # drain answers without waiting, so the node never sees us stall
                socket.recv(timeout=0)
        except TimeoutError:
            return
        except (ConnectionClosed, OSError, InvalidHandshake):
            self.close()

    def close(self) -> None:
        if self.socket is not None:
            self.socket = None
            self._stack.close()


def fresh_connection_first_frame(url: str, data: str | bytes) -> None:
    try:
        with connect(url, compression=None, open_timeout=5, max_size=None) as socket:
            socket.send(data)
            try:
                socket.recv(timeout=0.05)
            except TimeoutError:
                pass
    except (ConnectionClosed, OSError, InvalidHandshake):
        pass


def test_node_survives_fuzzing(node, keys) -> None:
    fuzzer = FuzzUser(node.url, keys[1])
    real_key = crypto.encode_public_key(keys[1])
    started = time.monotonic()
    count = {"inputs": 0, "skipped": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def one_input(data: st.DataObject) -> None:
        # Draw before looking at the clock: an example that drew nothing where an
        # earlier one drew is "inconsistent data generation" to Hypothesis.
        text = data.draw(valid_ish(fuzzer.user_id, real_key) | garbage)
        first_frame_of_a_fresh_connection = data.draw(st.integers(0, 9)) == 0
        if time.monotonic() - started > FUZZ_SECONDS:
            count["skipped"] += 1
        elif first_frame_of_a_fresh_connection:
            fresh_connection_first_frame(node.url, text)
            count["inputs"] += 1
        else:
            fuzzer.send(text)
            count["inputs"] += 1

    one_input()
    fuzzer.close()
    print(f"\nfuzz: {count['inputs']} inputs in {time.monotonic() - started:.1f} s "
          f"({fuzzer.reconnects} user connections; {count['skipped']} examples past the time budget)")
    assert count["inputs"] >= min(EXAMPLES, 50)

    health = healthz(node.url)
    assert health["status"] == "ok"
    asyncio.run(_still_works(node, keys))


async def _still_works(node, keys) -> None:
    alice = await RawUser(node.url, keys[2]).connect(display_name="alice")
    bob = await RawUser(node.url, keys[3]).connect(display_name="bob")
    await alice.list_users()
    await bob.list_users()
    await alice.send(alice.dm_to(bob.user_id, bob.pubkey, b"after the storm"))
    assert bob.open_dm(await bob.receive("USER_DELIVER", timeout=15)) == b"after the storm"
    # Every fuzz connection's departure must be processed; on a loaded machine that
    # can take a moment, so look again (bounded) before judging.
    for _ in range(40):
        listing = (await alice.list_users()).payload
        if set(listing["users"]) == {alice.user_id, bob.user_id}:
            break
        await asyncio.sleep(0.25)
    users = listing["users"]
    assert users == sorted(users) == listing["online_users"]
    assert {alice.user_id, bob.user_id} <= set(users)
    assert set(users) == {alice.user_id, bob.user_id}, "a fuzz connection left a user behind"
    assert {d["user_id"] for d in listing["details"]} == set(users)
    await alice.close()
    await bob.close()
