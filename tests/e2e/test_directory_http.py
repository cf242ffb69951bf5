"""End to end: `GET /directory/<user_id>` on a real node's port, over plain HTTP.

A user says hello; anyone may then fetch its key as JSON from the node, with the
node's signature over the entry, checked here with the node's public key exactly as
a DIRECTORY_ENTRY frame is checked.
"""

from __future__ import annotations

import time

import pytest

from socp.gateway import lookups
from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_decode, canonical_json
from socp.protocol.envelope import Envelope
from socp.protocol.ids import new_id
from support.http import aget_json
from support.nodes import start_node
from support.wsclient import RawUser, now_ms

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node(keys, tmp_path_factory):
    running = start_node(tmp_path_factory.mktemp("directory-http") / "data", keys[0], verifiers=2)
    yield running
    running.stop()


def directory_url(node, user_id: str) -> str:
    return f"http://127.0.0.1:{node.port}/directory/{user_id}"


async def test_a_registered_users_key_comes_signed_by_the_node(node, keys) -> None:
    alice = await RawUser(node.url, keys[1]).connect(display_name="alice")
    await alice.list_users()   # her hello took effect

    reply = await aget_json(directory_url(node, alice.user_id))
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    body = reply.body
    assert body["entry"] == {"user_id": alice.user_id, "pubkey": alice.pubkey, "server_id": node.server_id,
                             "remote": False, "version": 1, "revoked": False}
    assert {name: body[name] for name in body["entry"]} == body["entry"]   # the same fields at the top level
    assert body["signed_by"] == node.server_id

    # The node's signature over the entry: RSASSA-PSS over its canonical JSON...
    node_key = crypto.decode_public_key(node.pubkey)
    assert crypto.verify_pss(node_key, b64url_decode(body["sig"]), canonical_json(body["entry"]))
    # ...checked the way a DIRECTORY_ENTRY frame is checked,
    frame = Envelope(type="DIRECTORY_ENTRY", from_=body["signed_by"], to="*", ts=body["ts"],
                     payload=body["entry"], sig=body["sig"])
    signing.verify_transport(node_key, frame)
    # ...and by no other key, and not over another entry.
    assert not crypto.verify_pss(crypto.decode_public_key(alice.pubkey), b64url_decode(body["sig"]),
                                 canonical_json(body["entry"]))
    forged = dict(body["entry"], pubkey=crypto.encode_public_key(keys[2]))
    assert not crypto.verify_pss(node_key, b64url_decode(body["sig"]), canonical_json(forged))

    # The WebSocket look-up gives the same entry.
    await alice.send(frames.directory_get(alice.user_id, node.server_id, now_ms(), alice.user_id))
    assert (await alice.receive("DIRECTORY_ENTRY")).payload == body["entry"]
    await alice.close()


async def test_unknown_and_malformed_ids_are_404(node) -> None:
    stranger = await aget_json(directory_url(node, new_id()))
    assert stranger.status == 404
    assert stranger.body["error"] == "USER_NOT_FOUND"
    assert "no key known" in stranger.body["detail"]
    for wrong in ("not-a-user-id", "", "..%2F..%2Fetc%2Fpasswd", new_id().upper() + "x"):
        reply = await aget_json(directory_url(node, wrong))
        assert (reply.status, reply.body["error"]) == (404, "USER_NOT_FOUND"), wrong
    # Other paths still open WebSockets; /healthz still answers.
    health = await aget_json(f"http://127.0.0.1:{node.port}/healthz")
    assert health.status == 200 and health.body["directory_lookups"] >= 1


async def test_lookups_are_rate_limited_per_address(node, keys) -> None:
    bob = await RawUser(node.url, keys[2]).connect()
    await bob.list_users()
    started = time.monotonic()
    statuses = [(await aget_json(directory_url(node, bob.user_id))).status for _ in range(40)]
    elapsed = time.monotonic() - started
    assert statuses[0] == 200
    assert set(statuses) == {200, 429}, statuses
    # Never more than a burst (20) and what refilled meanwhile (5 per second).
    assert statuses.count(200) <= lookups.ADDRESS_BURST + lookups.ADDRESS_RATE * elapsed + 1, (statuses, elapsed)
    reply = await aget_json(directory_url(node, bob.user_id))
    assert reply.status == 429 and reply.body["error"] == "RATE_LIMITED"
    assert int(reply.headers["Retry-After"]) >= 1 and reply.body["retry_after_ms"] > 0
    await bob.close()
