"""Whether the node takes one more accepted connection (SOCP §13 resource abuse).

Three caps. Open connections from one remote address, and open connections in all:
over either, the newcomer is closed with 1013 before it costs more than its socket.
Connections that have not sent their first frame yet: over that cap the one that has
waited longest is closed instead, so a crowd of silent sockets from many addresses
holds little memory and cannot lock out an honest user, who says hello at once.
"""

from __future__ import annotations

from socp.config import NodeConfig

EVICTED_REASON = "too many connections waiting to say hello; this one waited longest"


def node_refusal(config: NodeConfig, open_links: int) -> str | None:
    """The close reason for a newcomer if the node holds all the connections it may."""
    if open_links >= config.max_connections:
        return f"the node holds its limit of {config.max_connections} connections; try again later"
    return None


def must_evict_a_silent_link(config: NodeConfig, waiting_for_hello: int) -> bool:
    """True if a newcomer would take the waiting-for-hello count over its cap."""
    return waiting_for_hello >= config.max_waiting_for_hello
