"""What goes into the router's core (events) and comes out of it (actions).

The router's core is a pure function of its tables and one event, returning a
list of actions; the process driver turns actions into ZeroMQ messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from socp.protocol.envelope import Envelope

ConnId = int

# --- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameIn:
    """A frame the verifier parsed, validated and (for servers) verified.

    `link_signed` is False only for a presence frame (USER_ADVERTISE, USER_REMOVE) on
    a server link whose signature is not by that link's server: a relayed original,
    which federation checks with the key pinned for the server it names (SOCP §6.2)."""

    conn: ConnId
    frame: Envelope
    payload_digest: bytes
    link_signed: bool = True


@dataclass(frozen=True, slots=True)
class FrameRejected:
    conn: ConnId
    code: str
    detail: str
    frame_type: str
    msg_ref: str = ""         # the refused frame's, when it is of an acknowledged type
    earlier_refs: tuple[str, ...] = ()   # frames refused with it, before it (ipc Rejected)


@dataclass(frozen=True, slots=True)
class LinkUp:
    """An outbound link the router asked for is connected; or, with `address`, an
    accepted connection that opens with a login, and the host it comes from."""

    conn: ConnId
    address: str = ""


@dataclass(frozen=True, slots=True)
class LinkDown:
    conn: ConnId
    reason: str


# LinkDown.reason when the gateway restarted: the user did not leave, its socket was lost.
GATEWAY_RESTARTED = "gateway restarted"


@dataclass(frozen=True, slots=True)
class LinkRestored:
    """A new router learns a live connection from the gateway (ipc LinkReplay).

    `opening` is the first frame text of a user connection ("" for servers);
    `verify_key` the key a server link's frames are verified with."""

    conn: ConnId
    role: int
    opening: str
    verify_key: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passes (heartbeats, link timeouts, redials, cache expiry)."""


@dataclass(frozen=True, slots=True)
class BatchEnd:
    """The driver applied every event it had waiting: announce what was batched."""


@dataclass(frozen=True, slots=True)
class DirectoryQueried:
    """`GET /directory/<user_id>` on the gateway (ipc DirectoryQuery); no connection."""

    query: ConnId             # the gateway's (negative) id for this look-up
    user_id: str


@dataclass(frozen=True, slots=True)
class FramesWritten:
    """The gateway's report (ipc FramesWritten): per server link, how many frames it
    has written to the socket since the link opened (recovery.py, credit)."""

    counts: tuple[tuple[ConnId, int], ...]


Event = (FrameIn | FrameRejected | LinkUp | LinkDown | LinkRestored | Tick | BatchEnd | DirectoryQueried
         | FramesWritten)

# --- actions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Sign `frame`'s payload once and write it to every target.

    Each target is (conn, `to` for that copy); the transport signature covers the
    payload only (SOCP §5), so one signature serves every copy.

    `charged_to`: the fair-share sender (fairshare.py) whose queue this frame waits
    in, an answer the node owes that sender (refusals.py): its signature comes out of
    the sender's own share, not out of everyone's.
    """

    targets: tuple[tuple[ConnId, str], ...]
    frame: Envelope
    # A G101 peer's link opening (bootstrap `g101_link`): signed per copy over the
    # whole envelope, the one form G101 checks (protocol/g101_link.py).
    whole_envelope: bool = False
    charged_to: str = ""


@dataclass(frozen=True, slots=True)
class Relay:
    """Write an already signed frame unchanged (e.g. gossip, SERVER_DELIVER)."""

    conns: tuple[ConnId, ...]
    frame: Envelope


@dataclass(frozen=True, slots=True)
class Close:
    conn: ConnId
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Dial:
    conn: ConnId
    host: str
    port: int
    verify_key: str
    unsigned_ok: bool = False   # operator consent: this peer's frames may come unsigned


# The writes the core may decide; persistence.py applies each through the store's
# typed interface (RouterStore).
WriteOperation = Literal[
    "bind_user", "bind_remote_user", "set_login", "save_key_share", "mark_share_delivered", "pin_server",
    "update_server_addr", "note_signed_hello", "note_replay_keys", "set_replay_state", "add_channel_member",
    "hold_message", "drop_held",
]


@dataclass(frozen=True, slots=True)
class StoreWrite:
    """A write for the store actor: the arguments of the RouterStore call `operation`."""

    operation: WriteOperation
    arguments: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class AdoptServerId:
    """SOCP §6.1: the introducer assigned us a different id; persist it."""

    server_id: str


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    """The answer to one DirectoryQueried: `frame` to sign and hand to the query, or
    None and why (nothing is signed for a miss)."""

    query: ConnId
    frame: Envelope | None
    detail: str = ""


Action = Send | Relay | Close | Dial | StoreWrite | AdoptServerId | QueryAnswer


def send_one(conn: ConnId, frame: Envelope) -> Send:
    return Send(targets=((conn, frame.to),), frame=frame)
