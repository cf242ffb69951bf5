"""Credit for server links: tell the router how many frames each one has written.

The router hands a server link no more unwritten frames than this gateway's outbox
holds (socp/router/outflow.py), so a peer that reads slowly makes its senders retry
instead of filling the outbox, which would close the link and lose what it held.
For that the router needs each link's progress: every CREDIT_REPORT_INTERVAL, one
FramesWritten with the cumulative count of every server link whose count moved.
"""

from __future__ import annotations

import asyncio

from socp.gateway.context import GatewayContext
from socp.ipc.messages import ROLE_SERVER, FramesWritten

# Often enough that the router's credit is fresh (a link writes thousands of frames a
# second), rarely enough to cost nothing: one message for every link at once. Five times
# as often as recovery's OUTBOUND_REPORT_INTERVAL: credit limits a server link's
# throughput, while recovery only needs to notice a lost job within seconds.
CREDIT_REPORT_INTERVAL = 0.1


def written_counts(context: GatewayContext) -> list[tuple[int, int]]:
    """(conn, frames written) of every server link written to since the last report."""
    counts = []
    for link in context.links:
        if link.role == ROLE_SERVER and link.frames_written != link.reported_written:
            link.reported_written = link.frames_written
            counts.append((link.conn, link.frames_written))
    return counts


async def report_written(context: GatewayContext) -> None:
    """Report until cancelled."""
    while True:
        await asyncio.sleep(CREDIT_REPORT_INTERVAL)
        counts = written_counts(context)
        if counts:
            await context.bus.tell_router(FramesWritten(counts))
