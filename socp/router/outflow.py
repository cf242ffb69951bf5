"""Credit for server links: never hand the gateway more unwritten frames for a peer
than its bounded outbox holds (STYLE §5).

The gateway closes a link whose outbox is full (a slow consumer); the frames it held
were already accepted and acknowledged, and only the last few seconds of them are
re-sent on re-link, so the rest would be lost without a word to their senders. So the
router counts the frames it hands on for each server link (`record_sent`, once per
event on every action the core returns), the gateway reports how many of them it has
written to the socket (ipc FramesWritten → `written`), and while the difference is at
`state.unwritten_limit` a sender is refused OVERLOADED (`congested`) instead: a slow
peer costs its own senders a retry, never the link or anyone else's frames.

Frames the router sends on its own behalf (heartbeats, presence, gossip relays,
re-sends with no origin, ERRORs) pass regardless; the limit leaves them room.
"""

from __future__ import annotations

from .events import Action, Relay, Send
from .state import Outflow, RouterState

CONGESTED_DETAIL = "the recipient's server is not keeping up; retry later"


def record_sent(state: RouterState, actions: list[Action]) -> None:
    """Count every frame the actions hand to the gateway for a server link."""
    server_conns = state.servers.values()
    if not server_conns:
        return
    for action in actions:
        if isinstance(action, Send):
            conns = [conn for conn, _ in action.targets]
        elif isinstance(action, Relay):
            conns = list(action.conns)
        else:
            continue
        for conn in conns:
            if conn in server_conns:
                outflow = state.outflows.get(conn)
                if outflow is None:
                    outflow = state.outflows[conn] = Outflow()
                outflow.sent += 1


def written(state: RouterState, counts: tuple[tuple[int, int], ...]) -> None:
    """The gateway wrote `count` frames in all to each link's socket so far.

    A count above what we sent is a link that outlived a router restart: the frames
    of the router before count as sent (the few we sent since are not counted, which
    lets through that many more at most)."""
    for conn, count in counts:
        if conn not in state.links:
            continue   # gone already (reports and LinkClosed race)
        outflow = state.outflows.get(conn)
        if outflow is None:
            outflow = state.outflows[conn] = Outflow()
        outflow.written = max(outflow.written, count)
        outflow.sent = max(outflow.sent, outflow.written)


def congested(state: RouterState, conn: int) -> bool:
    """Is the gateway holding as many unwritten frames for `conn` as we allow?"""
    outflow = state.outflows.get(conn)
    return outflow is not None and outflow.unwritten >= state.unwritten_limit


def link_down(state: RouterState, conn: int) -> None:
    state.outflows.pop(conn, None)
