"""What every part of the gateway shares: its config, link table, bus, counters, the
database's health as last reported, the HTTP look-ups in flight, and the allowance
of failed signature checks of each connection."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from socp.config import NodeConfig
from socp.gateway.bus import Bus
from socp.gateway.check_throttle import CheckThrottle
from socp.gateway.health import DatabaseReport, GatewayStats, ServerLinksReport
from socp.gateway.lookups import DirectoryLookups
from socp.gateway.socket_links import LinkTable
from socp.ratelimit import AddressSlots, TokenBucket

if TYPE_CHECKING:
    from socp.metrics.gateway import GatewayMetrics


@dataclass(frozen=True, slots=True)
class GatewayContext:
    config: NodeConfig
    links: LinkTable
    bus: Bus
    stats: GatewayStats
    address_slots: AddressSlots   # open connections per remote address
    database: DatabaseReport      # the store's status, as the router last reported it
    lookups: DirectoryLookups     # GET /directory/<id> waiting for the router
    server_links: ServerLinksReport = field(default_factory=ServerLinksReport)   # /healthz server_links
    spare_frames: TokenBucket | None = None   # shared by user connections beyond their own rate
    metrics: GatewayMetrics | None = None   # with --metrics only (socp/metrics/gateway.py)
    # Connections whose content signatures keep failing (check_throttle.py).
    check_throttle: CheckThrottle = field(default_factory=lambda: CheckThrottle(time.monotonic))

    @property
    def max_message_bytes(self) -> int:
        """websockets' max_size: a hard cap well above the SOCP frame limit, so a
        merely oversized frame is answered with an ERROR rather than a dropped link."""
        return 4 * self.config.max_frame_bytes
