"""How far each connection's frames took effect reaches the gateway (InboundDone) at
every tick and, under a flood, sooner: the gateway stops reading a link once it keeps
KEPT_FRAMES of its frames, so waiting for the tick alone capped a link's rate."""

from __future__ import annotations

import asyncio
from pathlib import Path

from socp.config import NodeConfig
from socp.ipc import messages as m
from socp.router.process import INBOUND_DONE_AFTER, RouterDriver
from socp.router.recovery import InboundOrder
from socp.router.state import NodeSelf, RouterState


class CapturingSocket:
    def __init__(self) -> None:
        self.sent: list[object] = []

    async def send(self, data: bytes) -> None:
        self.sent.append(m.unpack(data))


def test_events_applied_since_the_last_marks_are_counted() -> None:
    order = InboundOrder()
    for seq in range(3):
        order.applied_up_to(7, seq)
    order.applied_up_to(9, 0)
    assert order.applied_unreported == 4
    assert sorted(order.applied_marks()) == [(7, 3), (9, 1)]
    assert order.applied_unreported == 0
    assert order.applied_marks() == []


def test_report_applied_sends_one_inbound_done_only_when_something_moved() -> None:
    to_gateway = CapturingSocket()
    state = RouterState(me=NodeSelf(server_id="me", pubkey="", host="127.0.0.1", port=1))
    driver = RouterDriver(state, NodeConfig(data_dir=Path("unused"), verifiers=2), sign_jobs=None,  # type: ignore[arg-type]  # never used here
                          to_gateway=to_gateway, store_writes=asyncio.Queue(1))  # type: ignore[arg-type]  # a stand-in socket
    for seq in range(INBOUND_DONE_AFTER):
        driver.inbound_order.applied_up_to(5, seq)

    async def report_twice() -> None:
        await driver.report_applied()
        await driver.report_applied()

    asyncio.run(report_twice())
    assert to_gateway.sent == [m.InboundDone([[5, INBOUND_DONE_AFTER]])]   # msgpack: pairs as lists
