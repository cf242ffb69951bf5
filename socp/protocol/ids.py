"""Typed identifiers (SOCP §3): every user and server id is a UUID v4 string."""

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


def new_id() -> str:
    return str(uuid.uuid4())
