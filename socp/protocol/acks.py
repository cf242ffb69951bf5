"""Acknowledgement references (SOCP §7.5 `ACK {msg_ref}`): how a frame is named. Pure.

Project decision — msg_ref: the first 32 hex digits of

    sha256( str(ts) | "|" | from | "|" | to | "|" | hex(sha256(canonical payload)) )

over the frame *as the user sent it* (its own `ts`, `from`, `to`; the payload in the
canonical JSON form of §5). It is the SOCP §8 duplicate-cache key written as text, so a
re-sent frame (same bytes) has the same ref and a client computes it without the server.

ACKs are cumulative per connection: `ACK msg_ref=X` says X and every frame that
connection sent before X were handed on (or answered with an ERROR naming their
`msg_ref`); a client need not re-send any of them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .encoding import canonical_json
from .envelope import Envelope
from .frame_types import FrameType as T

MSG_REF_HEX_DIGITS = 32

# The frames a user is acknowledged for (SOCP §7.2-§7.4).
ACKNOWLEDGED_TYPES = frozenset({T.MSG_DIRECT.value, T.MSG_PUBLIC_CHANNEL.value, T.FILE_START.value,
                                T.FILE_CHUNK.value, T.FILE_END.value})


def payload_digest(payload: dict[str, Any]) -> bytes:
    """sha256 of the canonical payload (the same digest the verifier computes)."""
    return hashlib.sha256(canonical_json(payload)).digest()


def msg_ref_from_digest(ts: int, from_: str, to: str, digest: bytes) -> str:
    text = f"{ts}|{from_}|{to}|{digest.hex()}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:MSG_REF_HEX_DIGITS]


def msg_ref(frame: Envelope) -> str:
    """The msg_ref of a frame as its sender wrote it."""
    return msg_ref_from_digest(frame.ts, frame.from_, frame.to, payload_digest(frame.payload))
