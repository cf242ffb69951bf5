"""The store's snapshot, read once at the router's start, turned into the router's
tables (state.py), with the node's configuration: who we are, the timing, the
introducers of the bootstrap file."""

from __future__ import annotations

import time

from socp.bootstrap_file import load_bootstrap
from socp.config import NodeConfig
from socp.identity import NodeIdentity
from socp.store.records import StoreSnapshot

from . import abuse_rules, directory, offline
from .abuse_rules import Guard
from .state import NodeSelf, PendingShare, RouterState, ServerRecord, Timing, UserRecord


def state_from_snapshot(identity: NodeIdentity, config: NodeConfig, snapshot: StoreSnapshot) -> RouterState:
    me = NodeSelf(server_id=identity.server_id, pubkey=identity.public_key_text,
                  host=config.public_host, port=config.public_port)
    timing = Timing(heartbeat_ms=int(config.heartbeat_interval * 1000), link_timeout_ms=int(config.link_timeout * 1000),
                    min_backoff_ms=int(config.redial_min_backoff * 1000),
                    max_backoff_ms=int(config.redial_max_backoff * 1000),
                    give_up_ms=int(config.redial_give_up * 1000),
                    ack_interval_ms=max(0, int(config.ack_interval * 1000)),
                    ack_max_delay_ms=max(0, int(config.ack_max_delay * 1000)))
    # Rate limits on (abuse_rules.py).
    state = RouterState(me=me, now_ms=int(time.time() * 1000), timing=timing, guard=Guard())
    if config.bootstrap:
        state.introducers = load_bootstrap(config.bootstrap)
    for user_id, user in snapshot.users.items():
        meta = user.meta or {}
        state.users[user_id] = UserRecord(pubkey=user.pubkey, display_name=str(meta.get("display_name", ""))[:64],
                                          home_server=user.home_server or "")
        directory.load_user(state, user_id, user)
    for server_id, server in snapshot.pinned_servers.items():
        if server_id != me.server_id and server.pubkey != me.pubkey:   # never ourselves under another name
            # The router pins a server with the address it dialled or was told: never without one.
            host, port = server.host or "", server.port or 0
            state.pinned_servers[server_id] = ServerRecord(pubkey=server.pubkey, host=host, port=port)
            state.server_addrs[server_id] = (host, port)
    for share in snapshot.pending_key_shares:
        state.pending_shares.setdefault(share.member, {})[share.sender] = PendingShare(share.payload, share.ts)
    state.channel_version = max(snapshot.public_channel_version, 1)
    state.channel_members = set(snapshot.public_channel_members)
    state.guard.now_ms = state.now_ms
    abuse_rules.load_hello_proofs(state.guard, snapshot.hello_signers,
                             ((sig.user_id, bytes.fromhex(sig.sig_digest), sig.seen_at)
                              for sig in snapshot.hello_signatures))
    state.replay_log.load(snapshot.replay_keys, snapshot.replay_state, state.now_ms)
    offline.load(state, snapshot.held_messages)
    return state
