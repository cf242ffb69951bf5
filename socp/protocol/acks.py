"""Acknowledgement references (SOCP §7.5 `ACK {msg_ref}`): how a frame is named. Pure.

Project decision — msg_ref: the first 32 hex digits of

    sha256( str(ts) | "|" | from | "|" | to | "|" | hex(sha256(canonical payload)) )

over the frame *as the user sent it* (its own `ts`, `from`, `to`; the payload in the
canonical JSON form of §5). It is the SOCP §8 duplicate-cache key written as text, so a
re-sent frame (same bytes) has the same ref and a client computes it without the server.

ACKs are cumulative per connection: `ACK msg_ref=X` says X and every frame that
connection sent before X were handed on (or answered with an ERROR naming their
`msg_ref`); a client need not re-send any of them.

Project decision — no silent drops: every acknowledged frame a user sends ends in an
ACK that covers it or in an ERROR that names it, in `msg_ref` or, when the node
answers several refused frames at once, in the list `msg_refs` (at most
MAX_MSG_REFS; `msg_ref` is then the last of them). An ERROR naming a frame always
reaches its sender before an ACK that would cover it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .encoding import canonical_json
from .envelope import Envelope, load_json
from .errors import SocpError
from .frame_types import FrameType as T

MSG_REF_HEX_DIGITS = 32
MAX_MSG_REFS = 1000    # refused frames one ERROR names at most (payload `msg_refs`)

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


def msg_ref_of_text(text: str | bytes) -> str:
    """The msg_ref of a frame as text, if it reads as an acknowledged frame; else "".
    For frames refused before (or instead of) validation, so their ERROR can name
    them: the gateway's rate limit, the verifier's checks."""
    try:
        raw = load_json(text)
    except SocpError:
        return ""
    return msg_ref_of_obj(raw)


def msg_ref_of_obj(raw: Any) -> str:
    """As `msg_ref_of_text`, for a frame already decoded from JSON."""
    if not isinstance(raw, dict) or raw.get("type") not in ACKNOWLEDGED_TYPES:
        return ""
    ts, from_, to, payload = raw.get("ts"), raw.get("from"), raw.get("to"), raw.get("payload")
    if type(ts) is not int or not isinstance(from_, str) or not isinstance(to, str) or not isinstance(payload, dict):
        return ""
    try:
        return msg_ref_from_digest(ts, from_, to, payload_digest(payload))
    except (SocpError, TypeError, ValueError):
        return ""


def refs_named(payload: dict[str, Any]) -> list[str]:
    """Every msg_ref an ERROR payload names (`msg_ref` and `msg_refs`), in order."""
    refs = payload.get("msg_refs")
    named = [ref for ref in refs if isinstance(ref, str)] if isinstance(refs, list) else []
    single = payload.get("msg_ref")
    if isinstance(single, str) and single not in named:
        named.append(single)
    return named
