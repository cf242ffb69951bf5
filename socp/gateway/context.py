"""What every part of the gateway shares: its config, link table, bus, counters, the
database's health as last reported, and the HTTP look-ups in flight."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from socp.config import NodeConfig
from socp.gateway.bus import Bus
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

    @property
    def max_message_bytes(self) -> int:
        """websockets' max_size: a hard cap well above the SOCP frame limit, so a
        merely oversized frame is answered with an ERROR rather than a dropped link."""
        return 4 * self.config.max_frame_bytes
