"""The router's half of each link: who is on it and when we last heard it (the gateway
keeps the socket half, gateway/socket_links.py). Its states and their table are
socp/ipc/link_state.py; the router moves it:

    AWAITING_HELLO --USER_HELLO ok-->        USER
    AWAITING_HELLO --SERVER hello ok-->      JOINED
    DIALLING       --link opened-->          HELLO_SENT (our hello sent)
    HELLO_SENT     --peer's frames verify--> JOINED
    any            --close decided-->        CLOSING
    any            --link down-->            (forgotten)
"""

from __future__ import annotations

from dataclasses import dataclass

from socp.ipc.link_state import LinkState, connection_move


@dataclass(slots=True)
class PeerLink:
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
    address_proved: bool = False   # its server's ids pinned before at server_address were looked at (stale_pins.py)
    # Restored from the gateway after a router restart with its USER_HELLO still to be
    # applied: that hello arrives again, and its signature may be one the old router
    # already noted as used, by this very connection (recovery.py).
    hello_resubmitted: bool = False

    def move(self, new_state: LinkState) -> None:
        self.state = connection_move(self.conn, self.state, new_state)

    @property
    def is_user(self) -> bool:
        return self.state is LinkState.USER

    @property
    def is_server(self) -> bool:
        return self.state is LinkState.JOINED
