"""Where a link is in its life: one vocabulary for the gateway, the router and the
operator (STYLE §3: each life is one table).

A link is one WebSocket, accepted or dialled. The gateway keeps its socket half
(gateway/socket_links.py: sequence counters, kept frames, outbox), the router its peer
half (router/peer_links.py: who is on it, when we last heard it); each moves its half
along CONNECTION_MOVES, as far as it can see:

    state           gateway                           router
    dialling        dial under way                    dial asked for (DialLink)
    awaiting hello  accepted, no frame yet            accepted, no hello applied
    open            frames flow both ways             -
    hello sent      -                                 dialled and up, our hello sent
    user            -                                 a user's hello applied
    joined          -                                 a server's hello applied
    closing         close under way                   close decided
    closed          gone (LinkClosed sent)            - (the router forgets the link)

    DIALLING        -> OPEN (gateway: connected), HELLO_SENT (router: LinkUp, hello sent),
                       JOINED (router: the peer's hello came first), CLOSING,
                       CLOSED (gateway: the dial failed)
    AWAITING_HELLO  -> OPEN (gateway: first frame), USER or JOINED (router: hello
                       applied), CLOSING
    HELLO_SENT      -> JOINED, CLOSING
    OPEN, USER, JOINED -> CLOSING -> CLOSED

Per peer server the router also keeps one row in its link book (router/linkbook.py),
which outlives the links to that server; `/healthz` and `socp status` show its state,
in the same words, along SERVER_LINK_MOVES: dialling, joined, and after a link ends
refused (by us or by the peer) or lost (it went down, or the dial failed).
"""

from __future__ import annotations

from enum import Enum


class LinkState(str, Enum):
    DIALLING = "dialling"
    AWAITING_HELLO = "awaiting hello"
    OPEN = "open"
    HELLO_SENT = "hello sent"
    USER = "user"
    JOINED = "joined"
    CLOSING = "closing"
    CLOSED = "closed"
    REFUSED = "refused"
    LOST = "lost"


_S = LinkState

CONNECTION_MOVES: dict[LinkState, frozenset[LinkState]] = {
    _S.DIALLING: frozenset({_S.OPEN, _S.HELLO_SENT, _S.JOINED, _S.CLOSING, _S.CLOSED}),
    _S.AWAITING_HELLO: frozenset({_S.OPEN, _S.USER, _S.JOINED, _S.CLOSING}),
    _S.OPEN: frozenset({_S.CLOSING}),
    _S.HELLO_SENT: frozenset({_S.JOINED, _S.CLOSING}),
    _S.USER: frozenset({_S.CLOSING}),
    _S.JOINED: frozenset({_S.CLOSING}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}

SERVER_LINK_MOVES: dict[LinkState, frozenset[LinkState]] = {
    _S.DIALLING: frozenset({_S.JOINED, _S.REFUSED, _S.LOST}),
    _S.JOINED: frozenset({_S.LOST, _S.REFUSED}),
    _S.REFUSED: frozenset({_S.DIALLING, _S.JOINED}),
    _S.LOST: frozenset({_S.DIALLING, _S.JOINED}),
}


class IllegalTransition(RuntimeError):
    """A bug: a link was moved along an edge CONNECTION_MOVES lacks."""


def connection_move(conn: int, old: LinkState, new: LinkState) -> LinkState:
    """`new`, if one connection may move there from `old`; else IllegalTransition."""
    if new not in CONNECTION_MOVES[old]:
        raise IllegalTransition(f"link {conn}: {old.value} -> {new.value}")
    return new
