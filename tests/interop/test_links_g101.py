"""G101's server links, replayed from the wire (tests/interop/recorded/g101-link.jsonl).

G101 does not link with us in either direction (docs/interop.md "Server links"): its
SERVER_HELLO_JOIN has an ISO-string `ts`, an extra top-level `id` and no host or port,
and it accepts only hellos and welcomes signed over the whole envelope by a server its
config.yaml pins by id. What this file holds: the refusal is visible, with its reason.
"""

from __future__ import annotations

import json

from interop.links_replay import first
from router.harness import Harness, closes
from socp.ipc.link_state import LinkState
from socp.ipc.messages import ROLE_UNKNOWN, Rejected, VerifyJob
from socp.router import core
from socp.router.core_io import FrameRejected
from socp.verifier.checks import check_job


def test_its_hello_is_refused_with_a_reason_the_operator_can_read(keys) -> None:
    hello = first("g101", "SERVER_HELLO_JOIN", dialled_by="peer")
    assert isinstance(hello["ts"], str)                  # "2026-12-05T22:06:22Z"
    rejected = check_job(VerifyJob(5, 0, json.dumps(hello), ROLE_UNKNOWN, ""))
    assert isinstance(rejected, Rejected) and rejected.code == "MALFORMED" and "'ts'" in rejected.detail
    assert rejected.frame_type == "SERVER_HELLO_JOIN"
    node = Harness(server_key=keys[0])
    actions = core.handle(node.state, FrameRejected(5, rejected.code, rejected.detail, rejected.frame_type))
    assert 5 in closes(actions)
    row = node.state.linkbook.entries["incoming"]
    assert row.state is LinkState.REFUSED and "SERVER_HELLO_JOIN" in row.reason and "'ts'" in row.reason
