"""What the gateway reads from the bootstrap file (the router read it already, so a
bad file never gets this far): the entries that asked for wss:// (tls.py), and the
peers whose links the operator opted in to G101's form (`g101_link: true`)."""

from __future__ import annotations

import logging
from pathlib import Path

from socp.bootstrap_file import BootstrapError, Introducer, load_bootstrap
from socp.protocol.crypto import normalise_public_key
from socp.protocol.errors import SocpError

log = logging.getLogger("socp.gateway")


def entries(bootstrap_path: str) -> list[Introducer]:
    if not bootstrap_path or not Path(bootstrap_path).exists():
        return []
    try:
        return load_bootstrap(bootstrap_path)
    except BootstrapError as exc:
        log.warning("bootstrap file: %s", exc)
        return []


def g101_addresses(bootstrap_path: str) -> dict[str, str]:
    """Pinned key (as we write keys) -> "host:port" of each entry with `g101_link: true`."""
    return {entry.pubkey: f"{entry.host}:{entry.port}" for entry in entries(bootstrap_path) if entry.g101_link}


def g101_address_of(addresses: dict[str, str], pubkey: str) -> str:
    """The opted-in entry's "host:port" if `pubkey` (in any accepted form) is pinned
    in one, else "": a server's link is read in G101's form only when its key is."""
    if not addresses or not pubkey:
        return ""
    try:
        return addresses.get(normalise_public_key(pubkey), "")
    except SocpError:
        return ""
