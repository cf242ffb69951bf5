"""Issue #19 item 2: `socp up --metrics` serves Prometheus text; scraped during
traffic, the counters move by exactly what the test sent."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.nodes import free_port, start_node
from support.wsclient import RawUser

pytestmark = pytest.mark.e2e

Sample = tuple[str, frozenset[tuple[str, str]]]
DMS = 40


@pytest.fixture(scope="module")
def metered(keys, tmp_path_factory):
    address = f"127.0.0.1:{free_port()}"
    node = start_node(tmp_path_factory.mktemp("metrics") / "n", keys[0], verifiers=2,
                      extra_args=("--metrics", address))
    yield node, f"http://{address}/metrics"
    node.stop()


def scrape(url: str) -> dict[Sample, float]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape_until(url: str, condition, timeout: float = 15.0) -> dict[Sample, float]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        samples = await asyncio.to_thread(scrape, url)
        if condition(samples):
            return samples
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"metrics never met the condition; last scrape: {samples}")
        await asyncio.sleep(0.3)


async def test_counters_move_by_what_was_sent(metered, keys):
    node, url = metered
    before = await asyncio.to_thread(scrape, url)
    alice = await RawUser(node.url, keys[1]).connect(display_name="alice")
    bob = await RawUser(node.url, keys[2]).connect(display_name="bob")
    try:
        await scrape_until(url, lambda s: value(s, "socp_users_online", where="local") == 2
                           and value(s, "socp_connections", role="user") == 2)
        samples_during = []
        for i in range(DMS):
            await alice.send(alice.dm_to(bob.user_id, bob.pubkey, f"dm {i}".encode()))
            if i == DMS // 2:
                samples_during.append(await asyncio.to_thread(scrape, url))
        for i in range(DMS):
            deliver = await bob.receive("USER_DELIVER")
            assert bob.open_dm(deliver) == f"dm {i}".encode()

        def grown(samples, name, **labels):
            return value(samples, name, **labels) - value(before, name, **labels)

        after = await scrape_until(url, lambda s: grown(s, "socp_frames_sent_total", type="USER_DELIVER") >= DMS
                                   and grown(s, "socp_delivery_latency_seconds_count") >= DMS)
        assert grown(after, "socp_frames_received_total", type="MSG_DIRECT", outcome="accepted") == DMS
        assert grown(after, "socp_frames_received_total", type="USER_HELLO", outcome="accepted") == 2
        assert grown(after, "socp_frames_sent_total", type="USER_DELIVER") == DMS
        assert grown(after, "socp_delivery_latency_seconds_count") == DMS
        assert 0 < grown(after, "socp_delivery_latency_seconds_sum") < DMS * 10
        assert grown(after, "socp_signatures_total") >= DMS          # one per USER_DELIVER, and the replies
        assert grown(after, "socp_signature_seconds_count") == grown(after, "socp_signatures_total")
        assert grown(after, "socp_frame_check_seconds_count") >= DMS + 2
        assert grown(after, "socp_gateway_events_total", event="frames_in") >= DMS + 2
        # Counters only grow: the scrape in the middle of the traffic sits between the two.
        for during in samples_during:
            for key in ("socp_frames_received_total", "socp_signatures_total"):
                total = sum(v for (name, _), v in during.items() if name == key)
                assert sum(v for (name, _), v in before.items() if name == key) <= total
                assert total <= sum(v for (name, _), v in after.items() if name == key)

        # A frame a verifier refuses is counted by its ERROR code.
        await alice.send_text("this is not JSON")
        await scrape_until(url, lambda s: grown(s, "socp_frames_received_total", type="", outcome="MALFORMED") == 1)
    finally:
        await alice.close()
        await bob.close()
    await scrape_until(url, lambda s: value(s, "socp_users_online", where="local") == 0
                       and value(s, "socp_connections", role="user") == 0)


async def test_database_and_queues_are_reported(metered):
    _, url = metered
    samples = await asyncio.to_thread(scrape, url)
    assert value(samples, "socp_database_up") == 1
    assert value(samples, "socp_database_state", state="available") == 1
    assert ("socp_held_messages", frozenset()) in samples
    for actor, queue in (("gateway", "outbox"), ("router", "sign_jobs_in_flight"), ("store", "writes_waiting")):
        assert ("socp_queue_depth", frozenset({("actor", actor), ("queue", queue)})) in samples


async def test_a_killed_router_leaves_no_stale_gauge_and_counters_keep_their_counts(metered, keys):
    """Gauges are summed over live processes only (a dead router's users_online would
    otherwise be counted beside its successor's); counters keep what dead ones counted."""
    import os
    import signal

    from support.nodes import processes_mentioning

    node, url = metered
    user = await RawUser(node.url, keys[3]).connect()
    try:
        before = await scrape_until(url, lambda s: value(s, "socp_users_online", where="local") == 1)
        routers = [int(line.split(":")[0]) for line in processes_mentioning(str(node.data_dir))
                   if "actor router" in line]
        assert len(routers) == 1
        os.kill(routers[0], signal.SIGKILL)

        def new_router_ticked(samples) -> bool:
            alive = [int(line.split(":")[0]) for line in processes_mentioning(str(node.data_dir))
                     if "actor router" in line]
            return bool(alive) and alive != routers and value(samples, "socp_users_online", where="local") == 1

        await scrape_until(url, new_router_ticked, timeout=30)
        await asyncio.sleep(1.5)   # several ticks of the new router: still one user, not two
        after = await asyncio.to_thread(scrape, url)
        assert value(after, "socp_users_online", where="local") == 1
        assert value(after, "socp_frame_check_seconds_count") >= value(before, "socp_frame_check_seconds_count")
    finally:
        await user.close()
