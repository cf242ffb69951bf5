"""The HTTP directory look-up and /healthz bodies, without sockets (STYLE §9): the pure
answers of socp/gateway/lookups.py and health.py, and `DirectoryLookups` driven with
a bus double and a clock we move by hand."""

from __future__ import annotations

import asyncio

import pytest

from socp.gateway import lookups
from socp.gateway.health import DatabaseReport, GatewayStats, health_report, router_ready
from socp.gateway.lookups import DirectoryLookups, entry_answer, user_id_from_path
from socp.gateway.socket_links import LinkTable
from socp.ipc.messages import DirectoryQuery, StoreStatus
from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_decode, canonical_json
from socp.protocol.ids import new_id
from support.clock import Clock

USER = "3f0c6f55-6a43-4c2e-9a53-1b2f4f0e2a01"


class RouterDouble:
    """Plays the bus: keeps what the gateway tells the router."""

    def __init__(self) -> None:
        self.told: list[object] = []
        self.arrived = asyncio.Event()

    async def tell_router(self, message: object) -> None:
        self.told.append(message)
        self.arrived.set()

    async def next_query(self) -> DirectoryQuery:
        await asyncio.wait_for(self.arrived.wait(), 5)
        self.arrived.clear()
        query = self.told[-1]
        assert isinstance(query, DirectoryQuery)
        return query


def make(ready: bool = True, **options: object) -> tuple[DirectoryLookups, RouterDouble, GatewayStats, Clock]:
    bus, stats, clock = RouterDouble(), GatewayStats(), Clock(100.0)
    lookups_ = DirectoryLookups(bus, stats, lambda: ready, clock=clock, **options)  # type: ignore[arg-type]  # each test passes the options it changes
    return lookups_, bus, stats, clock


def signed_entry(keys, user_id: str = USER) -> str:
    server_id = new_id()
    frame = frames.directory_entry(server_id, "*", 1_700_000_000_000, user_id, crypto.encode_public_key(keys[1]),
                                   server_id, False, 3, False)
    return signing.sign_envelope(keys[0], frame).to_wire()


# --- pure answers --------------------------------------------------------------------------


@pytest.mark.parametrize("path, expected", [
    (f"/directory/{USER}", USER),
    (f"/directory/{USER.upper()}", USER.upper()),      # a UUID in capitals is still one
    ("/directory/" + USER.replace("-", "%2D"), USER),  # percent-encoded
    ("/directory/", None),
    ("/directory/alice", None),
    (f"/directory/{USER}/more", None),
    (f"/directory/{USER}%00", None),
    ("/healthz", None),
])
def test_user_id_from_path(path: str, expected: str | None) -> None:
    assert user_id_from_path(path) == expected


def test_entry_answer_carries_the_entry_and_the_signature_that_checks(keys) -> None:
    text = signed_entry(keys)
    answer = entry_answer(text)
    assert answer.status == 200
    body = answer.body
    assert body["entry"]["user_id"] == body["user_id"] == USER
    assert body["pubkey"] == crypto.encode_public_key(keys[1])
    assert (body["remote"], body["version"], body["revoked"]) == (False, 3, False)
    assert body["server_id"] == body["signed_by"] == body["entry"]["server_id"]
    assert body["ts"] == 1_700_000_000_000
    assert crypto.verify_pss(crypto.decode_public_key(crypto.encode_public_key(keys[0])),
                             b64url_decode(body["sig"]), canonical_json(body["entry"]))


@pytest.mark.parametrize("text", ["", "not json", '{"type":"ERROR","payload":{}}', "[1,2]"])
def test_entry_answer_for_no_entry_is_503(text: str) -> None:
    answer = entry_answer(text)
    assert answer.status == 503 and answer.body["error"] == "OVERLOADED"


def test_error_answers_are_json_with_a_code_and_retry_hints() -> None:
    assert lookups.not_found("no key known for user x").body == {"error": "USER_NOT_FOUND",
                                                                 "detail": "no key known for user x"}
    limited = lookups.rate_limited(0.2)
    assert limited.status == 429 and limited.body["retry_after_ms"] == 200
    assert limited.headers == (("Retry-After", "1"),)     # whole seconds, never 0
    assert lookups.not_ready().status == 503 and lookups.not_ready().body["error"] == "NOT_READY"
    assert lookups.timed_out().body["error"] == "TIMEOUT"


# --- the driver ----------------------------------------------------------------------------


async def test_a_found_user_is_answered_by_the_verifiers_deliver(keys) -> None:
    lookups_, bus, stats, _ = make()
    asking = asyncio.ensure_future(lookups_.answer(f"/directory/{USER}", "192.0.2.1"))
    query = await bus.next_query()
    assert query.user_id == USER and query.query < 0
    lookups_.answered(query.query, signed_entry(keys))
    answer = await asking
    assert answer.status == 200 and answer.body["user_id"] == USER
    assert len(lookups_) == 0 and stats.directory_lookups == 1
    # A second copy (a retried job) finds nobody waiting: dropped, counted.
    lookups_.answered(query.query, signed_entry(keys))
    assert stats.dropped == 1


async def test_a_miss_is_404_and_each_query_has_its_own_id() -> None:
    lookups_, bus, _, _ = make()
    first = asyncio.ensure_future(lookups_.answer(f"/directory/{USER}", "192.0.2.1"))
    one = await bus.next_query()
    second = asyncio.ensure_future(lookups_.answer(f"/directory/{USER}", "192.0.2.1"))
    two = await bus.next_query()
    assert one.query != two.query and one.query < 0 and two.query < 0
    lookups_.missed(two.query, "no key known for user x")
    lookups_.missed(one.query, "no key known for user y")
    assert (await first).body["detail"].endswith("y") and (await second).body["detail"].endswith("x")
    assert (await first).status == 404


async def test_no_answer_in_time_is_503_timeout() -> None:
    lookups_, bus, stats, _ = make(timeout=0.05)
    answer = await lookups_.answer(f"/directory/{USER}", "192.0.2.1")
    assert (answer.status, answer.body["error"]) == (503, "TIMEOUT")
    assert stats.directory_timeouts == 1 and len(lookups_) == 0
    lookups_.answered(bus.told[0].query, "late")   # too late: nobody waits
    assert stats.dropped == 1


async def test_router_not_ready_is_503_without_asking() -> None:
    lookups_, bus, stats, _ = make(ready=False)
    answer = await lookups_.answer(f"/directory/{USER}", "192.0.2.1")
    assert (answer.status, answer.body["error"]) == (503, "NOT_READY")
    assert bus.told == [] and stats.directory_refused == 1


async def test_malformed_id_is_404_without_asking() -> None:
    lookups_, bus, _, _ = make()
    answer = await lookups_.answer("/directory/../etc/passwd", "192.0.2.1")
    assert (answer.status, answer.body["error"]) == (404, "USER_NOT_FOUND")
    assert bus.told == []


async def test_waiting_lookups_are_bounded() -> None:
    lookups_, bus, stats, _ = make(max_pending=2)
    waiting = [asyncio.ensure_future(lookups_.answer(f"/directory/{USER}", f"192.0.2.{i}")) for i in range(2)]
    await bus.next_query()
    while len(bus.told) < 2:
        await asyncio.sleep(0)
    answer = await lookups_.answer(f"/directory/{USER}", "192.0.2.9")
    assert (answer.status, answer.body["error"]) == (503, "OVERLOADED") and stats.directory_refused == 1
    for query in bus.told:
        lookups_.missed(query.query, "no key")
    assert [(await w).status for w in waiting] == [404, 404]


async def test_lookups_are_limited_per_address_and_node_wide() -> None:
    lookups_, bus, stats, clock = make(timeout=0.01)
    statuses = [(await lookups_.answer("/directory/x", "192.0.2.1")).status for _ in range(lookups.ADDRESS_BURST + 1)]
    assert statuses == [404] * lookups.ADDRESS_BURST + [429]
    assert (await lookups_.answer("/directory/x", "192.0.2.2")).status == 404   # another address
    clock.now += 1 / lookups.ADDRESS_RATE
    assert (await lookups_.answer("/directory/x", "192.0.2.1")).status == 404   # one more token
    # Node-wide: look-ups that reach the router spend the node's tokens too.
    answers = [await lookups_.answer(f"/directory/{USER}", f"198.51.100.{i // 10}")
               for i in range(lookups.NODE_BURST + 1)]
    assert [a.body["error"] for a in answers] == ["TIMEOUT"] * lookups.NODE_BURST + ["OVERLOADED"]
    assert stats.directory_timeouts == lookups.NODE_BURST


# --- /healthz ------------------------------------------------------------------------------


def test_health_shows_the_database_and_says_ok_only_when_all_is_well() -> None:
    stats, links, database = GatewayStats(), LinkTable(4), DatabaseReport()
    report = health_report(stats, links, database)
    assert report["database"]["state"] == "unknown" and report["database"]["since"] is None
    assert (report["ok"], report["status"], report["router_ready"]) == (False, "ok", False)

    database.update(StoreStatus("available", "", 1_700_000_000_123, 0))
    report = health_report(stats, links, database)
    assert (report["ok"], report["status"], report["router_ready"]) == (True, "ok", True)
    assert report["database"]["since"] == "2023-11-14T22:13:20.123Z"

    database.update(StoreStatus("unavailable", "MySQL x: Can't connect (error 2003)", 1_700_000_060_000, 3))
    report = health_report(stats, links, database)
    assert (report["ok"], report["status"]) == (False, "degraded")
    assert report["database"] == {"state": "unavailable", "detail": "MySQL x: Can't connect (error 2003)",
                                  "since": "2023-11-14T22:14:20.000Z", "since_ms": 1_700_000_060_000,
                                  "writes_waiting": 3}

    database.update(StoreStatus("unknown", "the store actor does not answer (...)", 1_700_000_061_000, 0))
    assert health_report(stats, links, database)["status"] == "degraded"


def test_router_ready_from_its_hello_or_from_a_report() -> None:
    stats, database = GatewayStats(), DatabaseReport()
    assert not router_ready(stats, database)
    stats.router_restarts = 1
    assert router_ready(stats, database)
    # A gateway restarted beside a running router hears no RouterHello, only its report.
    fresh = GatewayStats()
    database.update(StoreStatus("available", "", 1, 0))
    assert router_ready(fresh, database)
