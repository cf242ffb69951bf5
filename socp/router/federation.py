"""Server-to-server rules (SOCP §6). Filled in by the federation work."""

from __future__ import annotations

from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode

from .events import Action, FrameIn
from .links import Link
from .replies import refuse_and_close
from .state import RouterState


def start(state: RouterState, config: object) -> list[Action]:
    return []


def server_hello(state: RouterState, link: Link, frame: Envelope) -> list[Action]:
    return refuse_and_close(state, link.conn, ErrorCode.FORBIDDEN, "this node does not federate yet")


def from_server(state: RouterState, link: Link, event: FrameIn) -> list[Action]:
    return []


def link_up(state: RouterState, conn: int) -> list[Action]:
    return []


def server_link_lost(state: RouterState, server_id: str) -> list[Action]:
    state.servers.pop(server_id, None)
    return []


def tick(state: RouterState) -> list[Action]:
    return []
