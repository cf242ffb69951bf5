"""Typed identifiers (SOCP §3 and the interop table).

We emit UUID v4 ids for our own users and server. Peers use other shapes
(`auto`, `master_server_<uuid>`, `127.0.0.1:8865`, free-form names), so what we accept
is any printable ASCII string of 1–128 characters without spaces: a server is
identified by its pinned key, never by the shape of its id.
"""

from __future__ import annotations

import re
import uuid
from typing import NewType

UserId = NewType("UserId", str)
ServerId = NewType("ServerId", str)
FileId = NewType("FileId", str)

PUBLIC_CHANNEL = "public"          # `to` of public-channel frames, group_id of the channel
BROADCAST = "*"                    # `to` of gossip frames
PUBLIC_CHANNEL_CREATOR = "system"  # SOCP §7.3

_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.IGNORECASE)


def is_uuid4(value: object) -> bool:
    return isinstance(value, str) and _UUID4.fullmatch(value) is not None


MAX_PEER_ID_CHARS = 128
_PEER_ID = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_PEER_ID_CHARS)
# Words with a meaning of their own in `to`; an id equal to one would be ambiguous.
RESERVED_IDS = frozenset({BROADCAST, PUBLIC_CHANNEL})


def is_peer_id(value: object) -> bool:
    """An id we accept from the wire: printable ASCII, no spaces, 1–128 characters."""
    return isinstance(value, str) and _PEER_ID.fullmatch(value) is not None and value not in RESERVED_IDS


def new_id() -> str:
    return str(uuid.uuid4())
