"""The closed set of messages between actors, and their msgpack wire form.

Every message is a frozen dataclass; on the wire it is a msgpack array
`[WIRE_VERSION, kind, field1, field2, ...]` in field order. No pickle: unpacking
has size limits and `strict_map_key`, and an unknown kind or version is refused.

Who sends what (→ receiver):

  gateway  → verifier  VerifyJob       a frame to parse, validate and maybe verify
  verifier → router    Verified        a valid frame (as an envelope map)
  verifier → router    Rejected        a frame that failed; the router answers ERROR
  gateway  → router    LinkClosed      the connection ended (after its last frame)
  gateway  → router    LinkOpened      an outbound link we dialled is connected
  router   → verifier  SignJob         sign one payload once, deliver to many
  verifier → gateway   Deliver         ready frame texts for connections
  router   → gateway   Deliver         already-signed frames (forwarded unchanged)
  router   → gateway   CloseLink       close a connection after its queued frames
  router   → gateway   DialLink        open an outbound link to a server
  gateway  → router    GatewayHello    the gateway (re)started; it holds no link of before

Ordering: each inbound event of a connection carries `seq` (0, 1, 2, ...) assigned by
the gateway; the router applies them in that order whatever path they took. Each
outbound item carries `seq` assigned by the router per connection; the gateway writes
them in that order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import msgpack

from socp.protocol.errors import MalformedFrame

WIRE_VERSION = 1
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

ConnId = int

ROLE_UNKNOWN = 0   # first frame not seen yet
ROLE_USER = 1
ROLE_SERVER = 2


@dataclass(frozen=True, slots=True)
class VerifyJob:
    KIND: ClassVar[int] = 1
    conn: ConnId
    seq: int
    text: str
    role: int                 # ROLE_* as the gateway knows it
    verify_key: str           # base64url key to check a server frame with; "" if none


@dataclass(frozen=True, slots=True)
class Verified:
    KIND: ClassVar[int] = 2
    conn: ConnId
    seq: int
    frame: dict[str, Any]     # {"type","from","to","ts","payload","sig"}, validated
    payload_digest: bytes     # sha256 of the canonical payload (replay cache key)


@dataclass(frozen=True, slots=True)
class Rejected:
    KIND: ClassVar[int] = 3
    conn: ConnId
    seq: int
    code: str                 # ErrorCode value
    detail: str
    frame_type: str           # "" when the frame was not readable


@dataclass(frozen=True, slots=True)
class LinkClosed:
    KIND: ClassVar[int] = 4
    conn: ConnId
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class LinkOpened:
    KIND: ClassVar[int] = 5
    conn: ConnId
    seq: int


@dataclass(frozen=True, slots=True)
class SignJob:
    KIND: ClassVar[int] = 6
    frame_type: str
    sender: str
    ts: int
    payload: dict[str, Any]
    deliveries: list[tuple[ConnId, int, str]]   # (conn, out seq, `to` on that copy)


@dataclass(frozen=True, slots=True)
class Deliver:
    KIND: ClassVar[int] = 7
    items: list[tuple[ConnId, int, str]]        # (conn, out seq, frame text)


@dataclass(frozen=True, slots=True)
class CloseLink:
    KIND: ClassVar[int] = 8
    conn: ConnId
    seq: int                  # out seq: closes after every earlier frame is written
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class DialLink:
    KIND: ClassVar[int] = 9
    conn: ConnId
    host: str
    port: int
    verify_key: str           # the peer's pinned key, for its frames on this link


@dataclass(frozen=True, slots=True)
class GatewayHello:
    KIND: ClassVar[int] = 10
    boot_id: str


Message = VerifyJob | Verified | Rejected | LinkClosed | LinkOpened | SignJob | Deliver | CloseLink | DialLink | GatewayHello

_BY_KIND: dict[int, type] = {
    cls.KIND: cls
    for cls in (VerifyJob, Verified, Rejected, LinkClosed, LinkOpened, SignJob, Deliver, CloseLink, DialLink, GatewayHello)
}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in _BY_KIND.values()}


def pack(message: Message) -> bytes:
    values = [getattr(message, name) for name in _FIELD_NAMES[type(message)]]
    return msgpack.packb([WIRE_VERSION, message.KIND, *values], use_bin_type=True)


def unpack(data: bytes) -> Message:
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedFrame("actor message too large")
    try:
        items = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise MalformedFrame("actor message is not msgpack") from exc
    if not isinstance(items, list) or len(items) < 2 or items[0] != WIRE_VERSION:
        raise MalformedFrame("actor message has an unknown version")
    cls = _BY_KIND.get(items[1])
    if cls is None:
        raise MalformedFrame(f"unknown actor message kind {items[1]!r}")
    values = items[2:]
    if len(values) != len(_FIELD_NAMES[cls]):
        raise MalformedFrame(f"{cls.__name__} has {len(values)} fields, expected {len(_FIELD_NAMES[cls])}")
    return cls(*values)
