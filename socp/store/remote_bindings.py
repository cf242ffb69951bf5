"""What a batch of remote users' bindings does to the users table: a pure plan.

A joining server's snapshot reaches the store as batches of hundreds of bindings
(router/persistence.py). Read and written one at a time, each binding cost a SELECT
and an INSERT, five hops to SQLite's thread, ~80 us of the store's CPU per user:
the store was the node's second-largest cost of a join after the signature checks.
`plan` takes the rows the batch names, read with one query, and decides every
binding in order, exactly as `Store.bind_remote_user` would one after the other
(a later binding of the same user sees what an earlier one wrote); the store then
writes the plan's new rows a chunk per statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from socp.store.records import BindResult, RemoteBinding

# A row of users as the plan needs it: (pubkey, meta as JSON text, home_server or None
# for a user registered here).
StoredUser = tuple[str, str | None, str | None]


@dataclass(frozen=True, slots=True)
class Insert:
    user_id: str
    pubkey: str
    meta_text: str
    home_server: str


@dataclass(frozen=True, slots=True)
class Rotate:
    """The remote user's home server gossiped a new key."""
    user_id: str
    pubkey: str
    meta_text: str
    home_server: str


@dataclass(frozen=True, slots=True)
class UpdateMeta:
    user_id: str
    meta_text: str
    home_server: str


Step = Insert | Rotate | UpdateMeta


@dataclass
class Plan:
    results: list[BindResult] = field(default_factory=list)   # one per binding, in order
    steps: list[Step] = field(default_factory=list)           # the writes, in order


def plan(stored: dict[str, StoredUser], bindings: list[tuple[RemoteBinding, str]]) -> Plan:
    """Each (binding, its meta as JSON text) decided in order against `stored`, the
    users table's rows for the batch's ids (absent: not in the table). `stored` is
    not changed."""
    rows = dict(stored)
    decided = Plan()
    for (user_id, pubkey, home_server, meta), meta_text in bindings:
        row = rows.get(user_id)
        if row is None:
            decided.steps.append(Insert(user_id, pubkey, meta_text, home_server))
            rows[user_id] = (pubkey, meta_text, home_server)
            decided.results.append(BindResult.BOUND)
            continue
        bound_key, stored_meta, stored_home = row
        if stored_home is None:   # registered here: the local binding wins
            decided.results.append(BindResult.SAME if bound_key == pubkey else BindResult.CONFLICT)
            continue
        if bound_key != pubkey:
            decided.steps.append(Rotate(user_id, pubkey, meta_text, home_server))
            rows[user_id] = (pubkey, meta_text, home_server)
            decided.results.append(BindResult.ROTATED)
            continue
        if stored_home != home_server or _meta(stored_meta) != meta:
            decided.steps.append(UpdateMeta(user_id, meta_text, home_server))
            rows[user_id] = (pubkey, meta_text, home_server)
        decided.results.append(BindResult.SAME)
    return decided


def _meta(text: str | None) -> Any:
    return json.loads(text) if text else {}
