"""The gateway process over real sockets, for what it adds beside WebSockets: the
HTTP directory look-up, the database's health in /healthz, and the address of a login
connection told to the router. The test plays router and verifier over ZeroMQ."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from socp.ipc.messages import (
    ROLE_UNKNOWN,
    ROLE_USER,
    Deliver,
    DirectoryMiss,
    DirectoryQuery,
    LinkClosed,
    LinkOpened,
    ServerLinks,
    StoreStatus,
)
from socp.protocol import crypto, frames, signing
from socp.protocol.ids import new_id
from support.http import aget_json

from .gateway_harness import WAIT, GatewayHarness, wait_for_hello

LOGIN_REQUEST = json.dumps({"type": "LOGIN_REQUEST", "from": "u", "to": "s", "ts": 1,
                            "payload": {"user_id": "u"}, "sig": ""})
USER_HELLO = json.dumps({"type": "USER_HELLO", "from": "u", "to": "s", "ts": 1,
                         "payload": {"client": "test", "pubkey": "UK", "enc_pubkey": "UK"}, "sig": ""})


def url(harness: GatewayHarness, path: str) -> str:
    return f"http://127.0.0.1:{harness.config.port}{path}"


async def healthz_until(harness: GatewayHarness, predicate) -> dict:
    """The /healthz body once `predicate` holds (the inbox works apart from HTTP)."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        reply = await aget_json(url(harness, "/healthz"))
        assert reply.status == 200
        if predicate(reply.body) or asyncio.get_running_loop().time() > deadline:
            return reply.body
        await asyncio.sleep(0.05)


async def test_a_login_connection_is_announced_with_its_address_first(gateway: GatewayHarness) -> None:
    async with connect(gateway.ws_url, compression=None, open_timeout=WAIT, proxy=None) as client:
        await client.send(LOGIN_REQUEST)
        opened = await gateway.from_router_inbox()
        assert isinstance(opened, LinkOpened) and (opened.seq, opened.address) == (0, "127.0.0.1")
        job = await gateway.next_job()
        assert (job.conn, job.seq, job.role, job.text) == (opened.conn, 1, ROLE_UNKNOWN, LOGIN_REQUEST)
        await client.send("second")
        assert (await gateway.next_job()).seq == 2
    assert await gateway.from_router_inbox() == LinkClosed(opened.conn, 3, "peer closed with 1000")
    # A user's hello is not announced: its first frame keeps seq 0.
    async with connect(gateway.ws_url, compression=None, open_timeout=WAIT, proxy=None) as client:
        await client.send(USER_HELLO)
        job = await gateway.next_job()
        assert (job.seq, job.role) == (0, ROLE_USER)
        await gateway.nothing_for_router(0.3)


@pytest.mark.parametrize(("trusted", "seen"), [("127.0.0.1", "198.51.100.7"), ("", "127.0.0.1")])
async def test_behind_a_trusted_proxy_the_address_is_the_one_it_forwarded(start_gateway, trusted, seen) -> None:
    """--trusted-proxy: the proxy's own address would put every user in one bucket; an
    untrusted peer's X-Forwarded-For is ignored (anyone can write the header)."""
    gateway = await start_gateway(trusted_proxies=trusted)
    await wait_for_hello(gateway)
    forwarded = {"X-Forwarded-For": "10.1.2.3, 198.51.100.7"}
    async with connect(gateway.ws_url, compression=None, open_timeout=WAIT, proxy=None,
                       additional_headers=forwarded) as client:
        await client.send(LOGIN_REQUEST)
        opened = await gateway.from_router_inbox()
        assert isinstance(opened, LinkOpened) and opened.address == seen


async def test_directory_over_http_asks_the_router_and_answers_with_the_signed_entry(
        gateway: GatewayHarness, keys) -> None:
    user_id = new_id()
    # No router has said hello to this gateway yet.
    early = await aget_json(url(gateway, f"/directory/{user_id}"))
    assert (early.status, early.body["error"]) == (503, "NOT_READY") and early.headers["Retry-After"] == "1"

    # The signed entry a verifier would send, made before asking: signing (and a key
    # made on first use) must not eat into the gateway's 2 s directory wait.
    server_id = new_id()
    entry = frames.directory_entry(server_id, "*", 1_700_000_000_000, user_id, crypto.encode_public_key(keys[1]),
                                   server_id, False, 1, False)
    signed = signing.sign_envelope(keys[0], entry)

    await gateway.to_gateway(StoreStatus("available", "", 1_700_000_000_000, 0))   # the router is alive
    await healthz_until(gateway, lambda h: h["router_ready"])
    asking = asyncio.ensure_future(aget_json(url(gateway, f"/directory/{user_id}")))
    query = await gateway.from_router_inbox()
    assert isinstance(query, DirectoryQuery) and query.user_id == user_id and query.query < 0
    await gateway.to_gateway(Deliver([(query.query, 0, signed.to_wire())]))   # delivered to the query id
    reply = await asking
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    assert reply.body["entry"] == entry.payload and reply.body["sig"] == signed.sig
    assert reply.body["signed_by"] == server_id

    asking = asyncio.ensure_future(aget_json(url(gateway, f"/directory/{user_id}")))
    query = await gateway.from_router_inbox()
    await gateway.to_gateway(DirectoryMiss(query.query, f"no key known for user {user_id}"))
    reply = await asking
    assert (reply.status, reply.body["error"]) == (404, "USER_NOT_FOUND")

    # Unanswered: 503 after the look-up timeout, and the gateway goes on.
    reply = await aget_json(url(gateway, f"/directory/{user_id}"))
    assert (reply.status, reply.body["error"]) == (503, "TIMEOUT")
    assert isinstance(await gateway.from_router_inbox(), DirectoryQuery)
    health = (await aget_json(url(gateway, "/healthz"))).body
    assert (health["directory_lookups"], health["directory_timeouts"], health["directory_refused"]) == (2, 1, 1)


async def test_healthz_shows_the_database_as_the_router_reports_it(gateway: GatewayHarness) -> None:
    health = (await aget_json(url(gateway, "/healthz"))).body
    assert health["database"]["state"] == "unknown" and health["ok"] is False

    await gateway.to_gateway(StoreStatus("unavailable", "MySQL x: Can't connect (error 2003)", 1_700_000_000_000, 2))
    health = await healthz_until(gateway, lambda h: h["database"]["state"] == "unavailable")
    assert (health["ok"], health["status"], health["router_ready"]) == (False, "degraded", True)
    assert health["database"] == {"state": "unavailable", "detail": "MySQL x: Can't connect (error 2003)",
                                  "since": "2023-11-14T22:13:20.000Z", "since_ms": 1_700_000_000_000,
                                  "writes_waiting": 2}

    await gateway.to_gateway(StoreStatus("available", "", 1_700_000_009_000, 0))
    health = await healthz_until(gateway, lambda h: h["database"]["state"] == "available")
    assert (health["ok"], health["status"]) == (True, "ok")


async def test_healthz_lists_server_links_as_the_router_reports_them(gateway: GatewayHarness) -> None:
    health = (await aget_json(url(gateway, "/healthz"))).body
    assert health["server_links"] == []
    rows = [("master_server_1", "127.0.0.1:9410", "joined", "", 2, "g45", "server_x", "g45_server_alias"),
            ("", "127.0.0.1:9461", "refused", "we refused its SERVER_WELCOME: INVALID_SIG: frame is not signed", 0, "",
             "", "")]
    await gateway.to_gateway(ServerLinks(rows))
    health = await healthz_until(gateway, lambda h: len(h["server_links"]) == 2)
    assert health["server_links"][0] == {"peer_id": "master_server_1", "address": "127.0.0.1:9410",
                                         "state": "joined", "reason": "", "dropped": 2, "dialect": "g45",
                                         "goes_by": "server_x", "opt_in": "g45_server_alias"}
    assert health["server_links"][1]["state"] == "refused" and "INVALID_SIG" in health["server_links"][1]["reason"]
