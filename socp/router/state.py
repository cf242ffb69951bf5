"""The router's tables (SOCP §3 and what the node adds). Only the router writes them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from socp.bootstrap_file import Introducer
from socp.ipc.messages import FIRST_DIALLED_CONN
from socp.protocol.envelope import Envelope
from socp.protocol.ids import PUBLIC_CHANNEL
from socp.protocol.key_forms import KeyForm

from .abuse_rules import Guard
from .accounts import Accounts
from .core_io import Send
from .fairshare import FairShare
from .linkbook import LinkBook
from .locations import Locations
from .peer_channel import PeerChannel
from .peer_links import PeerLink
from .replay_log import ReplayLog
from .seen import SeenCache

if TYPE_CHECKING:
    from .offline import HeldMessages

LOCAL = "local"
PEER_BACKLOG_LIMIT = 1000      # frames kept for one unreachable server
PARKED_LIMIT = 1000            # frames kept for one user lost with the gateway
RESEND_LIMIT = 512             # recent frames per server kept for a re-send on re-link
# Frames handed to the gateway for one server link and not yet written to its socket,
# past which senders are refused OVERLOADED (recovery.py, credit). Half the gateway's outbox
# (NodeConfig.send_queue_frames, 4096), so the frames that pass regardless (presence,
# heartbeats, re-sends) still fit: the gateway never closes a slow peer's link.
UNWRITTEN_LIMIT = 2048
NO_ORIGIN = -1   # a frame re-sent by the router itself: nobody to tell if it fails


RecentFrames = dict[str, deque[tuple[int, Envelope]]]   # key -> (ms, frame), oldest first


def forget_older(recent: RecentFrames, horizon_ms: int) -> None:
    """Drop every frame sent before `horizon_ms`, and keys left with none."""
    for key, frames in list(recent.items()):
        while frames and frames[0][0] < horizon_ms:
            frames.popleft()
        if not frames:
            del recent[key]


@dataclass(slots=True)
class UserRecord:
    pubkey: str
    display_name: str = ""
    home_server: str = ""          # "" for users registered on this node


@dataclass(slots=True)
class ServerRecord:
    pubkey: str                    # pinned key (SOCP §5: verify every frame with it)
    host: str
    port: int


@dataclass(slots=True)
class PendingShare:
    payload: dict[str, Any]
    ts: int


@dataclass(slots=True)
class NodeSelf:
    server_id: str
    pubkey: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Timing:
    """Federation timing (SOCP §6.4); tests shorten it."""

    heartbeat_ms: int = 15_000
    link_timeout_ms: int = 45_000
    min_backoff_ms: int = 500
    max_backoff_ms: int = 30_000
    give_up_ms: int = 3_600_000    # a server not reached for this long is no longer dialled
    ack_interval_ms: int = 500     # at most one ACK per connection this often (user_acks.py)
    ack_max_delay_ms: int = 30_000  # ...and while the signing pool is backlogged, at least this often
    park_ms: int = 15_000          # frames for users lost with a gateway wait this long
    resend_window_ms: int = 3_000  # content sent to a server is re-sent on re-link this far back
    redeliver_window_ms: int = 6_000  # content sent to a local user is parked again this far back when
                                      # the gateway restarts (the router hears of it ~1-3 s late)


@dataclass(slots=True)
class Redial:
    """When to try a lost server again; the wait doubles up to a cap, and after
    `Timing.give_up_ms` without reaching it the node stops (issue #15 weakness 6: a
    server that joined with an address where nothing listens was dialled for ever)."""

    next_attempt_ms: int
    backoff_ms: int
    since_ms: int | None = None   # the first attempt's time (set by federation.tick)
    attempts: int = 0


@dataclass(slots=True)
class PeerBacklog:
    """Frames for a server whose link just dropped, kept (bounded) until it is back
    or until `give_up_at_ms`; each remembers who sent it, to tell them if it fails."""

    give_up_at_ms: int
    frames: list[tuple[int, Envelope]] = field(default_factory=list)   # (origin conn, frame)


@dataclass(slots=True)
class Parked:
    """Frames for a user whose connection was lost with the gateway (not closed by the
    user), kept (bounded) until it says hello again or `give_up_at_ms` passes."""

    give_up_at_ms: int
    frames: list[Envelope] = field(default_factory=list)


@dataclass(slots=True)
class DialPurpose:
    kind: str                      # "join" (to an introducer), "link" (to a known server), or
                                   # "rejoin" (a known server that refused our SERVER_HELLO_LINK)
    server_id: str = ""            # for "link" and "rejoin"
    introducer: int = -1           # index into introducers, for "join"


@dataclass(slots=True)
class Outflow:
    """One server link's frames: handed to the gateway, and of those written to the
    socket (cumulative, as the gateway reports them: ipc FramesWritten)."""

    sent: int = 0
    written: int = 0

    @property
    def unwritten(self) -> int:
        return self.sent - self.written


@dataclass(slots=True)
class HeldRefusals:
    """Frames of one connection refused with one code, to be named by one ERROR."""

    detail: str
    refs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Refusals:
    """refusals.py: refused frames not yet answered."""

    held: dict[int, dict[str, HeldRefusals]] = field(default_factory=dict)   # conn -> code -> frames
    answered: int = 0          # ERRORs naming refused frames (counters you can read)
    held_refs: int = 0         # refused frames named later, together with others


@dataclass(slots=True)
class RouterState:
    me: NodeSelf
    links: dict[int, PeerLink] = field(default_factory=dict)
    # SOCP §3
    servers: dict[str, int] = field(default_factory=dict)            # server_id -> conn
    server_addrs: dict[str, tuple[str, int]] = field(default_factory=dict)
    local_users: dict[str, int] = field(default_factory=dict)        # user_id -> conn
    user_locations: Locations = field(default_factory=Locations)     # user_id -> LOCAL | server_id
    hello_proofs: dict[str, dict[str, Any]] = field(default_factory=dict)  # local user -> its signed hello
    # What the node adds
    users: dict[str, UserRecord] = field(default_factory=dict)       # bound keys, local and remote
    pinned_servers: dict[str, ServerRecord] = field(default_factory=dict)
    channel_id: str = PUBLIC_CHANNEL
    channel_members: set[str] = field(default_factory=set)
    channel_version: int = 1
    pending_shares: dict[str, dict[str, PendingShare]] = field(default_factory=dict)  # member -> sender -> share
    seen: SeenCache = field(default_factory=SeenCache)
    replay_log: ReplayLog = field(default_factory=ReplayLog)        # seen keys across restarts (replay_log.py)
    now_ms: int = 0
    next_dial_conn: int = FIRST_DIALLED_CONN
    # Federation
    timing: Timing = field(default_factory=Timing)
    introducers: list[Introducer] = field(default_factory=list)
    joined: bool = True            # False while we still look for an introducer
    join_retry_at_ms: int = 0
    dialing: dict[int, DialPurpose] = field(default_factory=dict)     # conn -> why we dialled it
    redials: dict[str, Redial] = field(default_factory=dict)          # server_id -> next try
    backlogs: dict[str, PeerBacklog] = field(default_factory=dict)    # server_id -> frames waiting
    outflows: dict[int, Outflow] = field(default_factory=dict)        # server link conn -> (recovery.py, credit)
    unwritten_limit: int = UNWRITTEN_LIMIT
    guard: Guard = field(default_factory=Guard.without_rate_limits)  # abuse rules (abuse_rules.py)
    # Signing jobs queued per sender; the driver fills and drains it, admission reads it.
    fair_share: FairShare[Send] = field(default_factory=FairShare)
    accounts: Accounts = field(default_factory=Accounts)             # directory and logins (accounts.py)
    # Recovery (user_acks.py)
    pending_acks: dict[int, str] = field(default_factory=dict)       # conn -> latest handed-on msg_ref
    next_ack_ms: dict[int, int] = field(default_factory=dict)         # conn -> when it may next get an ACK
    ack_pending_since: dict[int, int] = field(default_factory=dict)   # conn -> when its oldest unacked frame was noted
    acks_waiting: dict[int, None] = field(default_factory=dict)       # due ACKs waiting for the pool, oldest first
    refusals: Refusals = field(default_factory=Refusals)             # refused frames to name (refusals.py)
    # Public channel joins not yet announced (users.announce_joins). The process driver
    # sets `batch_joins` and announces once per batch of events; alone, every event does.
    joins_waiting: list[str] = field(default_factory=list)
    batch_joins: bool = False
    parked: dict[str, Parked] = field(default_factory=dict)          # user_id -> frames waiting
    held: HeldMessages = field(default_factory=lambda: _held_messages())   # DMs for offline accounts (offline.py)
    # Other teams' clients (client_dialects.py, user_presence.py): the key encoding of each
    # user connection whose hello did not use ours; the connections presence is
    # pushed to; users whose presence changed, and newcomers owed the catch-up, since
    # the last flush (insertion-ordered sets).
    key_forms: dict[int, KeyForm] = field(default_factory=dict)      # conn -> form
    presence_listeners: set[int] = field(default_factory=set)        # conns that get presence pushes
    sender_in_payload: set[int] = field(default_factory=set)         # conns told DMs' from/to/ts in the payload (G101)
    peer_channel: PeerChannel = field(default_factory=PeerChannel)   # G17's group key (peer_channel.py)
    presence_changed: dict[str, None] = field(default_factory=dict)
    presence_newcomers: dict[str, None] = field(default_factory=dict)
    sent_recently: RecentFrames = field(default_factory=dict)        # server_id -> (ms, frame)
    delivered_recently: RecentFrames = field(default_factory=dict)   # user_id -> (ms, frame)
    # Server links as the operator sees them, and peers' habits (linkbook.py, link_dialects.py)
    linkbook: LinkBook = field(default_factory=LinkBook)
    unsigned_servers: set[str] = field(default_factory=set)          # consent carried over from the bootstrap
    server_key_forms: dict[str, KeyForm] = field(default_factory=dict)   # server_id -> how to write our key to it
    rejoin: set[str] = field(default_factory=set)                    # server ids to dial with a join, not a link
    key_lookups: dict[str, str] = field(default_factory=dict)        # user_id -> server asked for its key
    held_key_lookups: dict[str, list[tuple[int, Envelope]]] = field(default_factory=dict)  # key_waits.py
    relayed_file_senders: dict[tuple[str, str], str] = field(default_factory=dict)  # (server, file_id) -> user


def _held_messages() -> HeldMessages:
    from .offline import HeldMessages  # offline.py builds on this module

    return HeldMessages()
