"""A pinned server whose address another server now holds (issue #14, note c16).

G17 makes a new key at every start and joins as "auto", so each start is a new server
to us: a new id (we assign it) with a new key, at the address of the old one. The old
id stays pinned to the old key (a pinned key is never silently replaced, SOCP §5), and
we used to re-dial it at that address for up to `Timing.give_up_ms` (an hour): every
dial reached the new server, its answer failed the old pin ("INVALID_SIG"), and G17
routed its frames to us over that refused connection, so they were lost.

Rule: once a server has proved itself on a link at an address (a frame from it verified
with its own pinned key), any *other* pinned id at that address that is not linked now
is no longer dialled there. Its pin is kept, without an address: if the old server
comes back with its old key (it dials us, or a linked server announces it) it links and
gets an address again; its id can never be taken with the new key.
"""

from __future__ import annotations

import logging

from socp.ipc.link_state import LinkState

from .core_io import Action, StoreWrite
from .peer_links import PeerLink
from .state import RouterState, ServerRecord

log = logging.getLogger("socp.router")


def dialable(state: RouterState, server_id: str) -> bool:
    """Has this pinned server an address to dial (a retired pin has none)?"""
    record = state.pinned_servers.get(server_id)
    return record is not None and bool(state.server_addrs.get(server_id, (record.host, record.port))[0])


def retire_others_at(state: RouterState, link: PeerLink) -> list[Action]:
    """`link.peer_id` has proved itself at `link.server_address`: stop dialling the
    other ids pinned at that address that are not linked (see the module's rule)."""
    holder, address = link.peer_id, link.server_address
    holder_record = state.pinned_servers.get(holder)
    if not address or holder_record is None:
        return []
    actions: list[Action] = []
    for old_id, (host, port) in sorted(state.server_addrs.items()):
        if old_id == holder or f"{host}:{port}" != address or old_id in state.servers:
            continue
        old = state.pinned_servers.get(old_id)
        if old is None or old.pubkey == holder_record.pubkey:
            continue   # the same key under two names is one server (G45's alias): nothing stale
        del state.server_addrs[old_id]
        state.pinned_servers[old_id] = ServerRecord(pubkey=old.pubkey, host="", port=0)
        state.redials.pop(old_id, None)
        state.rejoin.discard(old_id)
        actions.append(StoreWrite("update_server_addr", (old_id, None, None)))
        log.info("server %s no longer dialled at %s: %s, with another key, has proved itself there "
                 "(the old pin is kept)", old_id, address, holder)
    if actions:
        # A dial of an old id may have taken the address's row meanwhile (live, G17):
        # the row is the live link's.
        state.linkbook.move(address, LinkState.JOINED, state.now_ms, peer_id=holder)
    return actions


def row_held_by_another(state: RouterState, link: PeerLink) -> bool:
    """Is the link book's row for this link's address the live link of another server
    (a late refusal of a retired id's dial must not hide it)?"""
    entry = state.linkbook.entries.get(link.server_address)
    return entry is not None and entry.peer_id not in ("", link.peer_id) and entry.peer_id in state.servers


def retire_if_address_taken(state: RouterState, server_id: str) -> list[Action]:
    """`server_id`'s link just went: if another server has already proved itself at its
    address (the old link was still up when the new server came), stop dialling it."""
    host_port = state.server_addrs.get(server_id)
    if host_port is None:
        return []
    address = f"{host_port[0]}:{host_port[1]}"
    for conn in state.servers.values():
        link = state.links.get(conn)
        if link is not None and link.address_proved and link.server_address == address:
            return retire_others_at(state, link)
    return []
