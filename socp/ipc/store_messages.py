"""The closed set of messages between the store actor and its clients, and their wire form.

On the wire each message is a msgpack array `[WIRE_VERSION, kind, request_id, field, ...]`
in field order. A client (ZeroMQ DEALER) sends a request with a `request_id` of its
choosing; the store (ROUTER) answers with exactly one reply carrying the same id.
No pickle: unpacking has size limits and `strict_map_key`, refuses an unknown kind or
version, and checks each field's type.

Requests (client → store)              Replies (store → client)
  Ping                                   Done
  LoadSnapshot                           SnapshotReply
  GetUser                                UserReply
  BindUser                               BindReply      (BindResult value)
  SaveKeyShare                           Applied        (whether it changed anything)
  MarkShareDelivered                     Applied
  PinServer                              PinReply       (PinResult value)
  UpdateServerAddr                       Applied
  AddChannelMember                       Done
  SetLogin                               Applied        (False: not a user registered here)
  BindRemoteUser                         BindReply      (BindResult value)
  Status                                 StatusReply    (the database's state, at once)
  NoteSignedHello                        Done
  NoteReplayKeys                         Done
  SetReplayState                         Done
  HoldMessage                            Done
  DropHeld                               Done
  BindRemoteUsers                        BindReplies    (a BindResult value per binding)
  any of them                            Failed         (reason, detail)

Reads are answered as soon as every write that arrived before them is applied; writes
are applied one at a time in arrival order. Ping and Status are answered at once,
whatever the database is doing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from .codec import WIRE_VERSION as WIRE_VERSION  # re-exported: the version every store message starts with
from .codec import Codec

# A key-share payload for a big channel carries one wrapped key per member (~3.5 KB each).
MAX_REQUEST_BYTES = 16 * 1024 * 1024
# The start-up snapshot holds every user key and pending share of the node.
MAX_REPLY_BYTES = 256 * 1024 * 1024

RequestId = int

# Failed.reason values: the closed set of ways a request can fail.
REASON_UNAVAILABLE = "unavailable"      # the database cannot be reached now
REASON_OVERLOADED = "overloaded"        # the write queue is full
REASON_BAD_REQUEST = "bad_request"      # fields the store refuses
REASON_QUERY_FAILED = "query_failed"    # the statement failed; retrying will not help
FAILURE_REASONS = frozenset({REASON_UNAVAILABLE, REASON_OVERLOADED, REASON_BAD_REQUEST, REASON_QUERY_FAILED})


# -- requests --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Ping:
    KIND: ClassVar[int] = 1
    request_id: RequestId


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    KIND: ClassVar[int] = 2
    request_id: RequestId


@dataclass(frozen=True, slots=True)
class GetUser:
    KIND: ClassVar[int] = 3
    request_id: RequestId
    user_id: str


@dataclass(frozen=True, slots=True)
class BindUser:
    KIND: ClassVar[int] = 4
    request_id: RequestId
    user_id: str
    pubkey: str
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SaveKeyShare:
    KIND: ClassVar[int] = 5
    request_id: RequestId
    sender: str
    member: str
    wrapped_key: str
    payload: dict[str, Any]
    ts: int


@dataclass(frozen=True, slots=True)
class MarkShareDelivered:
    KIND: ClassVar[int] = 6
    request_id: RequestId
    sender: str
    member: str
    ts: int | None            # only mark if the stored share has this ts; None: whatever is stored


@dataclass(frozen=True, slots=True)
class PinServer:
    KIND: ClassVar[int] = 7
    request_id: RequestId
    server_id: str
    pubkey: str
    host: str | None
    port: int | None


@dataclass(frozen=True, slots=True)
class UpdateServerAddr:
    KIND: ClassVar[int] = 8
    request_id: RequestId
    server_id: str
    host: str | None
    port: int | None


@dataclass(frozen=True, slots=True)
class AddChannelMember:
    KIND: ClassVar[int] = 9
    request_id: RequestId
    member_id: str
    version: int


@dataclass(frozen=True, slots=True)
class SetLogin:
    KIND: ClassVar[int] = 10
    request_id: RequestId
    user_id: str
    privkey_store: str        # the client-encrypted private key (the server cannot open it)
    pake_password: str        # the password verifier


@dataclass(frozen=True, slots=True)
class BindRemoteUser:
    KIND: ClassVar[int] = 11
    request_id: RequestId
    user_id: str
    pubkey: str
    home_server: str
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Status:
    KIND: ClassVar[int] = 12
    request_id: RequestId


@dataclass(frozen=True, slots=True)
class NoteSignedHello:
    KIND: ClassVar[int] = 13
    request_id: RequestId
    user_id: str
    sig_digest: str           # hex digest of the hello's signature (router/abuse_rules.py)
    seen_at: int              # ms
    forget_before: int        # ms: the user's older signatures are forgotten
    keep: int                 # at most this many of the user's newest signatures are kept


@dataclass(frozen=True, slots=True)
class NoteReplayKeys:
    KIND: ClassVar[int] = 14
    request_id: RequestId
    keys: list[list[Any]]     # [msg_ref, ts, seen_at] of user frames seen (router/replay_log.py)
    forget_before: int        # ms: keys whose ts is older are deleted


@dataclass(frozen=True, slots=True)
class SetReplayState:
    KIND: ClassVar[int] = 15
    request_id: RequestId
    name: str                 # e.g. "stopped_cleanly_at"
    value: int


@dataclass(frozen=True, slots=True)
class HoldMessage:
    KIND: ClassVar[int] = 16
    request_id: RequestId
    recipient: str
    held_id: int
    held_at: int
    message: dict[str, Any]   # router/offline.py


@dataclass(frozen=True, slots=True)
class DropHeld:
    KIND: ClassVar[int] = 17
    request_id: RequestId
    recipient: str
    held_ids: list[int]       # delivered or expired


@dataclass(frozen=True, slots=True)
class BindRemoteUsers:
    """Many BindRemoteUser in one transaction (a joining server's snapshot)."""
    KIND: ClassVar[int] = 18
    request_id: RequestId
    bindings: list[list[Any]]   # [user_id, pubkey, home_server, meta], applied in order


# -- replies ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Done:
    KIND: ClassVar[int] = 64
    request_id: RequestId


@dataclass(frozen=True, slots=True)
class Applied:
    KIND: ClassVar[int] = 65
    request_id: RequestId
    changed: bool


@dataclass(frozen=True, slots=True)
class SnapshotReply:
    KIND: ClassVar[int] = 66
    request_id: RequestId
    # user_id -> [pubkey, meta, version, revoked, home_server, privkey_store, pake_password]
    users: dict[str, list[Any]]
    pinned_servers: dict[str, list[Any]]      # server_id -> [pubkey, host, port]
    pending_key_shares: list[list[Any]]       # [sender, member, payload, ts]
    public_channel_version: int
    public_channel_members: list[str]
    # Added later (defaults: a store of the previous release sends none).
    hello_signers: list[str] = field(default_factory=list)
    hello_signatures: list[list[Any]] = field(default_factory=list)   # [user_id, sig_digest, seen_at]
    replay_keys: list[list[Any]] = field(default_factory=list)        # [msg_ref, ts], oldest ts first
    replay_state: dict[str, int] = field(default_factory=dict)
    held_messages: list[list[Any]] = field(default_factory=list)   # [recipient, held_id, held_at, message]


@dataclass(frozen=True, slots=True)
class UserReply:
    KIND: ClassVar[int] = 67
    request_id: RequestId
    found: bool
    pubkey: str
    meta: dict[str, Any]
    version: int
    revoked: bool
    home_server: str | None   # None: registered here
    privkey_store: str
    pake_password: str


@dataclass(frozen=True, slots=True)
class BindReply:
    KIND: ClassVar[int] = 68
    request_id: RequestId
    result: str               # a BindResult value


@dataclass(frozen=True, slots=True)
class BindReplies:
    KIND: ClassVar[int] = 72
    request_id: RequestId
    results: list[str]        # a BindResult value per binding, in order


@dataclass(frozen=True, slots=True)
class PinReply:
    KIND: ClassVar[int] = 69
    request_id: RequestId
    result: str               # a PinResult value


@dataclass(frozen=True, slots=True)
class Failed:
    KIND: ClassVar[int] = 70
    request_id: RequestId
    reason: str               # one of FAILURE_REASONS
    detail: str               # one line, for logs and the operator


@dataclass(frozen=True, slots=True)
class StatusReply:
    KIND: ClassVar[int] = 71
    request_id: RequestId
    state: str                # "opening", "available" or "unavailable" (socp.store.availability)
    detail: str               # the last error while not available; "" otherwise
    since_ms: int             # wall-clock ms of the last change of state
    writes_waiting: int       # writes queued, not yet applied


StoreRequest = (Ping | LoadSnapshot | GetUser | BindUser | SaveKeyShare | MarkShareDelivered | PinServer
                | UpdateServerAddr | AddChannelMember | SetLogin | BindRemoteUser | Status | NoteSignedHello
                | NoteReplayKeys | SetReplayState | HoldMessage | DropHeld | BindRemoteUsers)
StoreReply = BindReplies | Done | Applied | SnapshotReply | UserReply | BindReply | PinReply | Failed | StatusReply
StoreMessage = StoreRequest | StoreReply

REQUEST_TYPES: tuple[type[StoreRequest], ...] = (
    Ping, LoadSnapshot, GetUser, BindUser, SaveKeyShare, MarkShareDelivered, PinServer, UpdateServerAddr,
    AddChannelMember, SetLogin, BindRemoteUser, Status, NoteSignedHello, NoteReplayKeys, SetReplayState,
    HoldMessage, DropHeld, BindRemoteUsers)
REPLY_TYPES: tuple[type[StoreReply], ...] = (
    BindReplies, Done, Applied, SnapshotReply, UserReply, BindReply, PinReply, Failed, StatusReply)
# Requests that change the database: applied one at a time, in arrival order.
WRITE_TYPES: tuple[type, ...] = (BindUser, SaveKeyShare, MarkShareDelivered, PinServer, UpdateServerAddr,
                                 AddChannelMember, SetLogin, BindRemoteUser, NoteSignedHello, NoteReplayKeys,
                                 SetReplayState, HoldMessage, DropHeld, BindRemoteUsers)

_CODEC: Codec[StoreMessage] = Codec("store", REQUEST_TYPES + REPLY_TYPES, MAX_REQUEST_BYTES, globals())


def pack(message: StoreMessage) -> bytes:
    return _CODEC.pack(message)


def peek_request_id(data: bytes) -> RequestId | None:
    """The request id of a message `unpack` refused, so the store can still answer it."""
    try:
        items = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None
    if isinstance(items, list) and len(items) >= 3 and type(items[2]) is int:
        return items[2]
    return None


def unpack(data: bytes, max_bytes: int = MAX_REQUEST_BYTES) -> StoreMessage:
    return _CODEC.unpack(data, max_bytes)
