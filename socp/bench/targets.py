"""What a bench may load, and the limits every run keeps.

A bench floods a server; it must never be pointed at someone else's by mistake,
so only loopback hosts are accepted (127.0.0.0/8, localhost, ::1).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Every run stops by itself: these bound each phase whatever the options say.
MAX_DURATION_S = 300.0          # timed phase
MAX_DRAIN_S = 60.0              # waiting for the last deliveries after the last send
SETUP_TIMEOUT_S = 120.0         # connecting users and waiting until they see each other
# The node refuses a ts older than 10 minutes (router/abuse_rules.py MAX_AGE_MS): frames are
# stamped when prepared, so preparation + setup + run must stay well inside that.
MAX_PREPARED_FRAMES = 30_000    # ~90 s of signing on 2 cores at ~6 ms a frame


class NotLoopback(ValueError):
    """A URL whose host is not a loopback address."""


def check_loopback_url(url: str) -> str:
    """Return `url` if it is ws:// or wss:// on a loopback host; raise NotLoopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise NotLoopback(f"{url!r}: only ws:// or wss:// URLs")
    host = parts.hostname or ""
    if host == "localhost":
        return url
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise NotLoopback(f"{url!r}: the host must be a loopback address, not a name") from None
    if not address.is_loopback:
        raise NotLoopback(f"{url!r}: {host} is not a loopback address (127.0.0.0/8 or ::1)")
    return url


@dataclass(frozen=True, slots=True)
class Target:
    """The server(s) under load. `data_dirs` name local nodes whose processes we
    measure; `server_keys` (base64url) let the sample check the node's signature."""

    urls: tuple[str, ...]
    data_dirs: tuple[str, ...] = ()
    server_keys: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for url in self.urls:
            check_loopback_url(url)

# Worker pools fork: the workers need nothing but a key, and forkserver or spawn
# would re-import the `socp` entry point. Pools are made before any event loop runs.
POOL_START_METHOD = "fork"
