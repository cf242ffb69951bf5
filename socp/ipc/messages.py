"""The closed set of messages between actors, and their msgpack wire form.

Every message is a frozen dataclass; on the wire it is a msgpack array
`[WIRE_VERSION, kind, field1, field2, ...]` in field order. No pickle: unpacking
has size limits and `strict_map_key`, and an unknown kind or version is refused.

Who sends what to whom, and why: docs/architecture.md ("Messages between actors").
Sequence numbers, conn ids, keeping and replay, re-sends and credit: docs/recovery.md,
the contract these messages carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from socp.protocol.errors import MalformedFrame  # noqa: F401 - re-exported: callers catch it from here

from .codec import Codec

MAX_MESSAGE_BYTES = 8 * 1024 * 1024

ConnId = int

# Conn ids: the router picks the ids of the links it dials from FIRST_DIALLED_CONN up;
# the gateway numbers the links it accepts below that (gateway/socket_links.first_accepted_conn);
# an HTTP look-up is a negative query id (is_query).
FIRST_DIALLED_CONN = 2**40

# WebSocket close codes in CloseLink and on the gateway's own closes (RFC 6455 §7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013

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
    unsigned_ok: bool = False  # operator consent: this server link's frames may be unsigned
    # Operator opt-in (bootstrap `g101_link`): "host:port" of the entry pinning this
    # link's key; its frames are read in G101's form (protocol/g101_link.py). "" = no.
    g101_address: str = ""


@dataclass(frozen=True, slots=True)
class Verified:
    KIND: ClassVar[int] = 2
    conn: ConnId
    seq: int
    frame: dict[str, Any]     # {"type","from","to","ts","payload","sig"}, validated
    payload_digest: bytes     # sha256 of the canonical payload (replay cache key)
    link_signed: bool = True  # False: a relayed presence frame the router must verify (checks.py)


@dataclass(frozen=True, slots=True)
class Rejected:
    KIND: ClassVar[int] = 3
    conn: ConnId
    seq: int
    code: str                 # ErrorCode value
    detail: str
    frame_type: str           # "" when the frame was not readable
    # Added later: the refused frame's msg_ref (protocol/acks.py) when it is of an
    # acknowledged type, so its ERROR can name it; "" otherwise.
    msg_ref: str = ""
    # Added later: frames refused with it, before it, for the same reason (the
    # gateway's check throttle reports a batch at once, gateway/throttle_reports.py).
    earlier_refs: list[str] = field(default_factory=list)


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
    address: str = ""         # an accepted login connection's remote host; "" for a dialled link


@dataclass(frozen=True, slots=True)
class SignJob:
    KIND: ClassVar[int] = 6
    frame_type: str
    sender: str
    ts: int
    payload: dict[str, Any]
    deliveries: list[tuple[ConnId, int, str]]   # (conn, out seq, `to` on that copy)
    # A G101 peer's link opening (bootstrap `g101_link`): each copy signed over its
    # whole envelope, as G101 checks it (protocol/g101_link.py), not over the payload.
    whole_envelope: bool = False


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
    unsigned_ok: bool = False  # operator consent (bootstrap `unsigned_link`): unsigned frames pass


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


@dataclass(frozen=True, slots=True)
class DirectoryQuery:
    KIND: ClassVar[int] = 15
    query: ConnId             # negative: the gateway's id for one HTTP look-up
    user_id: str


@dataclass(frozen=True, slots=True)
class DirectoryMiss:
    KIND: ClassVar[int] = 16
    query: ConnId
    detail: str


@dataclass(frozen=True, slots=True)
class StoreStatus:
    KIND: ClassVar[int] = 17
    state: str                # "available", "unavailable", "opening", or "unknown" (the store does not answer)
    detail: str               # why, while not available
    since_ms: int             # wall-clock ms of the last change of state; 0 if never known
    writes_waiting: int       # writes the store holds for the database


@dataclass(frozen=True, slots=True)
class FramesWritten:
    KIND: ClassVar[int] = 18
    counts: list[tuple[ConnId, int]]  # (server link conn, frames written to its socket since it opened)


@dataclass(frozen=True, slots=True)
class ServerLinks:
    KIND: ClassVar[int] = 19
    # (peer id, address, state, reason, dropped, dialect, the id we go by on it if not ours,
    # the bootstrap opt-in it runs under)
    rows: list[tuple[str, str, str, str, int, str, str, str]]


@dataclass(frozen=True, slots=True)
class Signed:
    """verifier → router: `count` sign jobs done, the last in `sign_us` microseconds
    (router/fairshare.py measures the pool's capacity from these). The bridge to
    verifiers on other hosts (verifier/bridge.py) also says how many it has now in
    `remote_verifiers` (-1 from everyone else), with `count` 0, or with the jobs a
    remote that vanished took with it (their window places are free; sign_us 0)."""
    KIND: ClassVar[int] = 20
    count: int
    sign_us: int
    remote_verifiers: int = -1


@dataclass(frozen=True, slots=True)
class ChecksFailed:
    """verifier → gateway: for each user connection, how many of its content
    signatures failed since the last report, or were refused unchecked because
    earlier ones failed (verifier/budget.py); the gateway throttles a connection
    whose failures keep coming (gateway/check_throttle.py). Sent once per round of
    checks that had any; never for server links."""
    KIND: ClassVar[int] = 21
    counts: list[tuple[ConnId, int]]   # (conn, failures)


def out_seq(epoch: int, n: int) -> int:
    return epoch << OUT_SEQ_BITS | n


def split_out_seq(seq: int) -> tuple[int, int]:
    """(epoch, n) of an out seq."""
    return seq >> OUT_SEQ_BITS, seq & OUT_SEQ_MASK


def is_query(conn: ConnId) -> bool:
    """Does this id name an HTTP directory look-up rather than a connection?"""
    return conn < 0


Message = (
    VerifyJob
    | Verified
    | Rejected
    | LinkClosed
    | LinkOpened
    | SignJob
    | Deliver
    | CloseLink
    | DialLink
    | GatewayHello
    | RouterHello
    | LinkReplay
    | InboundDone
    | OutboundDone
    | DirectoryQuery
    | DirectoryMiss
    | StoreStatus
    | FramesWritten
    | ServerLinks
    | Signed
    | ChecksFailed
)

_CODEC: Codec[Message] = Codec(
    "actor",
    (
        VerifyJob,
        Verified,
        Rejected,
        LinkClosed,
        LinkOpened,
        SignJob,
        Deliver,
        CloseLink,
        DialLink,
        GatewayHello,
        RouterHello,
        LinkReplay,
        InboundDone,
        OutboundDone,
        DirectoryQuery,
        DirectoryMiss,
        StoreStatus,
        FramesWritten,
        ServerLinks,
        Signed,
        ChecksFailed,
    ),
    MAX_MESSAGE_BYTES,
    globals(),
)


def pack(message: Message) -> bytes:
    return _CODEC.pack(message)


def unpack(data: bytes) -> Message:
    return _CODEC.unpack(data)
