"""The router's half of each link: who is on it and when we last heard it (the gateway
keeps the socket half, gateway/socket_links.py). Its life, as a table (STYLE §3):

    AWAITING_HELLO --USER_HELLO ok-->        USER
    AWAITING_HELLO --SERVER hello ok-->      SERVER
    DIALING        --link opened-->          SERVER_PENDING (our hello sent)
    SERVER_PENDING --peer's frames verify--> SERVER
    any            --close decided-->        CLOSING
    any            --link down-->            (forgotten)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class LinkState(str, Enum):
    AWAITING_HELLO = "awaiting_hello"
    DIALING = "dialing"
    SERVER_PENDING = "server_pending"
    USER = "user"
    SERVER = "server"
    CLOSING = "closing"


ALLOWED: dict[LinkState, frozenset[LinkState]] = {
    LinkState.AWAITING_HELLO: frozenset({LinkState.USER, LinkState.SERVER, LinkState.CLOSING}),
    LinkState.DIALING: frozenset({LinkState.SERVER_PENDING, LinkState.SERVER, LinkState.CLOSING}),
    LinkState.SERVER_PENDING: frozenset({LinkState.SERVER, LinkState.CLOSING}),
    LinkState.USER: frozenset({LinkState.CLOSING}),
    LinkState.SERVER: frozenset({LinkState.CLOSING}),
    LinkState.CLOSING: frozenset(),
}


class BadTransition(Exception):
    pass


@dataclass(slots=True)
class Link:
    conn: int
    state: LinkState
    peer_id: str = ""          # the user id or server id once known
    last_heard_ms: int = 0
    last_sent_ms: int = 0
    dialled_by_us: bool = False
    superseded: bool = False   # closed only because a duplicate link to the same server won
    address: str = ""          # where an accepted login connection comes from (login.address_key)
    proved_key: bool = False   # a user link opened by a signed hello never seen before
    server_address: str = ""   # a server link's "host:port", its row in the link book (linkbook.py)
    heard_heartbeat: bool = False  # some peers (G45) never send one: no silence timeout for them
    heard_peer: bool = False   # a dialled link had a frame other than ERROR from the peer
    # Restored from the gateway after a router restart with its USER_HELLO still to be
    # applied: that hello arrives again, and its signature may be one the old router
    # already noted as used, by this very connection (recovery.py).
    hello_resubmitted: bool = False

    def move(self, new_state: LinkState) -> None:
        if new_state not in ALLOWED[self.state]:
            raise BadTransition(f"link {self.conn}: {self.state.value} -> {new_state.value}")
        self.state = new_state

    @property
    def is_user(self) -> bool:
        return self.state is LinkState.USER

    @property
    def is_server(self) -> bool:
        return self.state is LinkState.SERVER
