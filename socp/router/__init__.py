"""The router actor: single writer of the presence tables and routing (SOCP §3, §8).

`run(config)` is its one entry point; the decisions live in `core` (pure), the
process plumbing in `process`. Modules, each with one job:

  process          the driver: sockets, timers, the event loop (the only impure module
                   with persistence and snapshot)
  core             one event in, actions out: dispatches to the module for its concern
  core_io          the events the core takes and the actions it returns
  state            the router's tables (RouterState); only the router writes them
  peer_links       the router's half of each link: who is on it, when we last heard it
  linkbook         what the operator sees of each server link (/healthz, socp status)
  users            local users: hello, DMs, public messages, files, presence
  user_acks        acknowledgements to users, cumulative and coalesced
  user_presence    presence pushed to local users
  offline          DMs held for users with an account here who are away
  federation       server links: hellos, gossip, relays, heartbeats
  link_dialects    other teams' server-link habits
  client_dialects  answers to other teams' clients, in the shape each reads
  peer_channel     public channel keys other teams' clients need
  peer_login       G17's register-then-login
  roaming_login    our password login that roams
  directory        key look-ups and login records; accounts: what the router mirrors
  key_waits        look-ups of users whose server advertises no key: ask it, then answer
  stale_pins       a pinned server whose address another server now holds
  abuse_rules      rate limits, error budgets, freshness, proof of possession (pure)
  defences         where core consults abuse_rules and turns problems into actions
  refusals         refused acknowledged frames, named in one ERROR
  fairshare        the node's signatures shared fairly across senders
  seen, replay_log the duplicate cache, and the replay keys that survive a restart
  locations        where each known user is
  recovery         the router's side of recovery (docs/recovery.md)
  persistence      the router's side of the store; snapshot: the store's snapshot as tables
  store_watch      the database's health, passed to the gateway
  replies          errors and closes the router sends on its own behalf
"""

from __future__ import annotations

from socp.config import NodeConfig


def run(config: NodeConfig) -> int:
    from socp.identity import load_identity
    from socp.runtime import run_async_actor
    from socp.store.client import StoreClient

    identity = load_identity(config.data_dir)

    async def main() -> None:
        from .process import serve

        async with StoreClient(config.endpoints.store_requests) as store:
            await serve(config, identity, store)

    return run_async_actor("router", main)
