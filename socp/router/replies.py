"""Answers the router gives on its own behalf: errors, and closing a link."""

from __future__ import annotations

from socp.ipc.link_state import LinkState
from socp.ipc.messages import CLOSE_POLICY_VIOLATION
from socp.protocol import frames
from socp.protocol.errors import ErrorCode
from socp.protocol.ids import BROADCAST

from .core_io import Action, Close, Send, send_one
from .state import RouterState


def error_to(state: RouterState, conn: int, code: ErrorCode, detail: str) -> Send:
    link = state.links.get(conn)
    to = link.peer_id if link and link.peer_id else BROADCAST
    return send_one(conn, frames.error(state.me.server_id, to, state.now_ms, code, detail))


def refuse_and_close(state: RouterState, conn: int, code: ErrorCode, detail: str) -> list[Action]:
    """Answer with ERROR, then close (the gateway writes the ERROR first)."""
    link = state.links.get(conn)
    if link is not None and link.state is not LinkState.CLOSING:
        link.move(LinkState.CLOSING)
    return [error_to(state, conn, code, detail), Close(conn, CLOSE_POLICY_VIOLATION, detail[:120])]
