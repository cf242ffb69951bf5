"""What a connection is, judged from its first frame only (SOCP §4).

The gateway parses exactly one frame per connection, and only to learn its role and,
for a server, the key its later frames are verified with. Validation is the verifier's
job: anything odd here simply yields ROLE_UNKNOWN and the router rejects it.
"""

from __future__ import annotations

import orjson

from socp.ipc.messages import ROLE_SERVER, ROLE_UNKNOWN, ROLE_USER
from socp.protocol.frame_types import PASSWORD_OPENING_TYPES, SERVER_OPENING_TYPES, USER_OPENING_TYPES

_USER_OPENINGS = frozenset(t.value for t in USER_OPENING_TYPES)
_SERVER_OPENINGS = frozenset(t.value for t in SERVER_OPENING_TYPES)
_LOGIN_OPENINGS = frozenset(t.value for t in PASSWORD_OPENING_TYPES)   # ours and G17's


def role_of_first_frame(text: str) -> tuple[int, str]:
    """(ROLE_*, verify_key) for a connection whose first text message is `text`."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ROLE_UNKNOWN, ""
    if not isinstance(frame, dict):
        return ROLE_UNKNOWN, ""
    frame_type = frame.get("type")
    if not isinstance(frame_type, str):  # also keeps unhashable values out of the set lookups
        return ROLE_UNKNOWN, ""
    if frame_type in _USER_OPENINGS:
        return ROLE_USER, ""
    if frame_type in _SERVER_OPENINGS:
        # SOCP §6.1/§6.2: the opening server frame carries the sender's key.
        payload = frame.get("payload")
        pubkey = payload.get("pubkey") if isinstance(payload, dict) else None
        return ROLE_SERVER, pubkey if isinstance(pubkey, str) else ""
    return ROLE_UNKNOWN, ""


def opens_login(text: str) -> bool:
    """Does a connection whose first text message is `text` log in with a password?
    The router then limits wrong passwords per address, so it is told the address."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(frame, dict):
        return False
    frame_type = frame.get("type")
    return isinstance(frame_type, str) and frame_type in _LOGIN_OPENINGS
