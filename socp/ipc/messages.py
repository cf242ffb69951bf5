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
  gateway  → router    GatewayHello    the gateway (re)started, or finished a replay (below)
  router   → gateway   RouterHello     the router (re)started: replay the live links to it
  gateway  → router    LinkReplay      one live connection, for a router that just started
  router   → gateway   InboundDone     frames below these seqs took effect: stop keeping them
  gateway  → router    OutboundDone    items below these out seqs were released in order

Recovery (README "Acknowledgements and recovery"): the gateway keeps each connection's
inbound frames until InboundDone covers them. A verify job with no result in time is
submitted again with the same seq (the reorder buffer drops duplicates), and at last
answered Rejected(TIMEOUT). On RouterHello the gateway sends LinkReplay for every live
link, submits its kept frames again (same seqs), then GatewayHello. The router
re-sends a SignJob whose items OutboundDone has not covered in time.

Ordering: each inbound event of a connection carries `seq` (0, 1, 2, ...) assigned by
the gateway; the router applies them in that order whatever path they took. Each
outbound item carries `seq` assigned by the router per connection; the gateway writes
them in that order.

Out seqs carry the router's epoch: `out_seq(epoch, n) = epoch << OUT_SEQ_BITS | n`.
A new router has a larger epoch, so the gateway knows which items are from before
the restart (written at once, in no particular order) and restarts its reordering.
Inbound seqs simply continue: LinkReplay names the seq of the oldest frame the
gateway still keeps for the link; a new router starts the link there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from socp.protocol.errors import MalformedFrame  # noqa: F401  (re-exported: callers catch it from here)

from .codec import WIRE_VERSION, Codec  # noqa: F401
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

ConnId = int

OUT_SEQ_BITS = 31
OUT_SEQ_MASK = (1 << OUT_SEQ_BITS) - 1

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


@dataclass(frozen=True, slots=True)
class RouterHello:
    KIND: ClassVar[int] = 11
    epoch: int                # grows with every router start (out_seq high bits)


@dataclass(frozen=True, slots=True)
class LinkReplay:
    KIND: ClassVar[int] = 12
    conn: ConnId
    seq: int                  # the oldest inbound seq the gateway still keeps (out of band)
    role: int                 # ROLE_*
    opening: str              # a user connection's first frame text; "" for servers
    verify_key: str           # a server link's key; "" for users


@dataclass(frozen=True, slots=True)
class InboundDone:
    KIND: ClassVar[int] = 13
    marks: list[tuple[ConnId, int]]   # (conn, first seq not yet applied)


@dataclass(frozen=True, slots=True)
class OutboundDone:
    KIND: ClassVar[int] = 14
    marks: list[tuple[ConnId, int]]   # (conn, first out seq not yet released)


def out_seq(epoch: int, n: int) -> int:
    return epoch << OUT_SEQ_BITS | n


def split_out_seq(seq: int) -> tuple[int, int]:
    """(epoch, n) of an out seq."""
    return seq >> OUT_SEQ_BITS, seq & OUT_SEQ_MASK


Message = (VerifyJob | Verified | Rejected | LinkClosed | LinkOpened | SignJob | Deliver | CloseLink | DialLink | GatewayHello
           | RouterHello | LinkReplay | InboundDone | OutboundDone)

_CODEC = Codec("actor", (VerifyJob, Verified, Rejected, LinkClosed, LinkOpened, SignJob, Deliver, CloseLink,
                         DialLink, GatewayHello, RouterHello, LinkReplay, InboundDone, OutboundDone),
               MAX_MESSAGE_BYTES, globals())


def pack(message: Message) -> bytes:
    return _CODEC.pack(message)


def unpack(data: bytes) -> Message:
    return _CODEC.unpack(data)
