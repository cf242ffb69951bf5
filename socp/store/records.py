"""What the store hands out: results and the start-up snapshot, as plain immutable values.

These carry no database types, so the router (through `StoreClient`) and the store
actor share them without importing a driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from socp.protocol.ids import ServerId, UserId


class BindResult(str, Enum):
    BOUND = "BOUND"          # a new user id, now bound to this key
    SAME = "SAME"            # already bound to this key; meta updated
    CONFLICT = "CONFLICT"    # bound to another key; nothing changed (first come, first bound)
    ROTATED = "ROTATED"      # a remote user's home server gossiped a new key; version bumped


class RemoteBinding(NamedTuple):
    """A user of another server, as its gossip names it (Store.bind_remote_users)."""
    user_id: UserId
    pubkey: str
    home_server: ServerId
    meta: dict[str, Any]


class PinResult(str, Enum):
    PINNED = "PINNED"        # a new server id, its key now pinned
    SAME = "SAME"            # already pinned to this key; address updated
    CONFLICT = "CONFLICT"    # pinned to another key; refused, nothing changed


class UserRecord(NamedTuple):
    pubkey: str
    meta: dict[str, Any]
    version: int                   # bumps on key, login record or display changes
    revoked: bool
    home_server: str | None = None  # None: registered here; else the server it lives on
    privkey_store: str = ""         # the encrypted private key blob ("" until registered)
    pake_password: str = ""         # the password verifier ("" until registered)

    @property
    def is_remote(self) -> bool:
        return self.home_server is not None


class PinnedServer(NamedTuple):
    pubkey: str
    host: str | None
    port: int | None


class PendingKeyShare(NamedTuple):
    sender: UserId
    member: UserId
    payload: dict[str, Any]   # the PUBLIC_CHANNEL_KEY_SHARE payload as received (SOCP §7.3)
    ts: int


class HeldMessage(NamedTuple):
    recipient: UserId
    held_id: int              # the router's order of holding (router/offline.py)
    held_at: int              # ms
    message: dict[str, Any]   # what the router needs to deliver it (router/offline.py)


class HelloSignature(NamedTuple):
    user_id: UserId
    sig_digest: str           # hex digest of a signed USER_HELLO's signature (router/abuse_rules.py)
    seen_at: int              # ms


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """Everything the router mirrors in memory, read once at its start."""

    users: dict[UserId, UserRecord]
    pinned_servers: dict[ServerId, PinnedServer]
    pending_key_shares: tuple[PendingKeyShare, ...]   # undelivered, oldest first
    public_channel_version: int
    public_channel_members: tuple[UserId, ...]         # in join order
    hello_signers: tuple[UserId, ...] = ()             # ids that sign their hellos
    hello_signatures: tuple[HelloSignature, ...] = ()  # signed hellos already used
    # Replay protection across restarts (router/replay_log.py): (msg_ref, ts) of user
    # frames seen within the window, oldest ts first, and the router's stop marks.
    replay_keys: tuple[tuple[str, int], ...] = ()
    replay_state: dict[str, int] = field(default_factory=dict)
    held_messages: tuple[HeldMessage, ...] = ()        # for offline users, oldest first


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    """The store's view of its database (socp.store.availability), for `/healthz`."""

    state: str                # "opening", "available" or "unavailable"
    detail: str               # the latest error while unavailable
    since_ms: int             # wall-clock ms of the last change of state
    writes_waiting: int       # writes the store holds, not yet applied
