"""The check throttle's refusals reach the router a batch at a time
(gateway/throttle_reports.py): as a pure unit, and through a real gateway process with
the test playing router and verifier."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from socp.gateway.throttle_reports import REPORT_AFTER_S, REPORT_AT_MOST, RefusedFrames
from socp.ipc.messages import ChecksFailed, Rejected, VerifyJob
from socp.protocol.acks import msg_ref_of_text

from .gateway_harness import GatewayHarness
from .test_gateway import said_hello, ws_connect


def test_a_batch_is_due_after_its_delay_or_when_full() -> None:
    batch = RefusedFrames()
    assert not batch
    assert not batch.add("r0", "slow down", "MSG_DIRECT", 10.0)
    assert not batch.add("r1", "slow down; retry in 2 s", "MSG_DIRECT", 10.05)
    assert batch.wait_s(10.05) == pytest.approx(REPORT_AFTER_S - 0.05)    # counted from the first
    assert batch.add("r2", "slow down; retry in 1 s", "MSG_DIRECT", 10.0 + REPORT_AFTER_S)
    assert batch.take() == (["r0", "r1", "r2"], "slow down; retry in 1 s", "MSG_DIRECT")
    assert not batch
    due = [batch.add(f"r{n}", "", "MSG_DIRECT", 20.0) for n in range(REPORT_AT_MOST)]
    assert due == [False] * (REPORT_AT_MOST - 1) + [True]


def dm(n: int) -> str:
    return json.dumps({"type": "MSG_DIRECT", "from": "u", "to": "v", "ts": 1000 + n,
                       "payload": {"ciphertext": f"c{n}", "sender_pub": "UK", "content_sig": "bad"}, "sig": ""})


async def next_rejected(harness: GatewayHarness) -> Rejected:
    message = await harness.from_router_inbox()
    assert isinstance(message, Rejected), message
    return message


async def test_throttled_frames_are_reported_in_batches_in_order(gateway: GatewayHarness) -> None:
    """Before: one Rejected (one router event) per throttled frame. Now one per batch,
    naming every frame in the order sent, before any later frame of the connection."""
    async with ws_connect(gateway.ws_url) as client:
        conn = await said_hello(gateway, client)
        await gateway.to_gateway(ChecksFailed([(conn, 1000)]))     # its allowance spent: throttled
        await asyncio.sleep(0.3)                                     # (the report is read)
        sent = 40
        for n in range(sent):
            await client.send(dm(n))
        await client.send('{"type": "LIST"}')                       # not throttled: goes on to a verifier
        reports: list[Rejected] = []
        named: list[str] = []
        while len(named) < sent:
            report = await next_rejected(gateway)
            reports.append(report)
            named += [*report.earlier_refs, report.msg_ref]
        assert named == [msg_ref_of_text(dm(n)) for n in range(sent)]
        assert len(reports) < sent / 4, [len(r.earlier_refs) + 1 for r in reports]
        assert [r.seq for r in reports] == list(range(1, 1 + len(reports)))
        job = await gateway.next_job()
        assert isinstance(job, VerifyJob) and job.seq == 1 + len(reports)   # after every refused frame


async def test_a_lone_throttled_frame_is_reported_without_waiting_for_more(gateway: GatewayHarness) -> None:
    async with ws_connect(gateway.ws_url) as client:
        conn = await said_hello(gateway, client)
        await gateway.to_gateway(ChecksFailed([(conn, 1000)]))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await client.send(dm(1))
        report = await next_rejected(gateway)
        assert (report.msg_ref, list(report.earlier_refs), report.code) == (msg_ref_of_text(dm(1)), [], "RATE_LIMITED")
        assert time.monotonic() - started < REPORT_AFTER_S + 1.0
