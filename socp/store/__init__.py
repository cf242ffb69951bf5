"""The store actor: the node's persistent state (SOCP §10) behind ZeroMQ.

    database.py    Database.create(url): the async interface, dialects
    sqlite.py      sqlite:///path   (aiosqlite, WAL)      mysql.py   mysql://...  (aiomysql pool)
    migrations.py  numbered migrations, recorded in schema_version
    operations.py  Store: the operations, written once for both backends
    records.py     StoreSnapshot, UserRecord, BindResult, PinResult, ...
    actor.py       the actor: ROUTER socket, ordered writes, outage handling
    client.py      StoreClient: what the router uses (DEALER)
    availability.py  whether the database answers (one small state table)
    remote_bindings.py  what a batch of remote users' bindings does to the users table (pure)
    errors.py      StoreError and friends

Run it with `run(config)` or `python -m socp.store DATA_DIR`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from socp.config import NodeConfig


def run(config: NodeConfig) -> None:
    """Run the store actor in the foreground until SIGTERM/SIGINT (see `actor.run`)."""
    # Imported here so that `socp.store.client` does not pull in the database drivers.
    from socp.store.actor import run as run_actor

    run_actor(config)
