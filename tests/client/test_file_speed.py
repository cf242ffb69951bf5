"""How long 1 MiB takes to a user on the same node, from `/file` to the receiver's
`file` event, with the client's defaults (printed; docs/chat.md has the numbers).

Issue #16 asks for 10 s. Spec-form chunks (one 446-byte OAEP block each) are 2351
frames; our node guarantees a connection 200 frames/s (after 500) and lends an
idle node's spare beyond, and the client's pacer uses it (240/s after a burst of
450: 8.4 s) until the node refuses a frame. That the pacer follows those grants is
asserted without a clock by test_connection.py's pacer tests. Here the whole path runs for real and the time is
printed, not asserted (timings on a shared machine belong in notes and `socp bench`,
not in a test that fails when a neighbour is busy)."""

from __future__ import annotations

import os
import time

import pytest

from .test_real_node import MEGABYTE, make_home, node_a, sha256_of, start_chat, wait_listed, write_random  # noqa: F401 - node_a: a pytest fixture, used by name

# A measurement, not a check (its assertions repeat test_real_node's file tests): it
# runs when asked, so the suite's own time stays in budget.
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not os.environ.get("SOCP_MEASURE"),
                                 reason="a measurement of 1 MiB to a local user: run with SOCP_MEASURE=1 -s")]

async def test_one_mebibyte_to_a_local_user_is_paced_by_the_node_not_the_client(node_a, keys, tmp_path, chats):  # noqa: F811 - the fixture imported above
    alice_home, alice_id = make_home(keys, tmp_path, "alice")
    bob_home, bob_id = make_home(keys, tmp_path, "bob")
    extra = tuple(os.environ.get("SOCP_SPEED_ARGS", "").split())
    bob = await start_chat(chats, bob_home, node_a)
    alice = await start_chat(chats, alice_home, node_a, *extra)
    await wait_listed(alice, {alice_id, bob_id})
    digest = write_random(tmp_path / "one.bin", MEGABYTE)
    started = time.monotonic()
    await alice.send(f"/file bob {tmp_path / 'one.bin'}")
    received = await bob.until("file", timeout=120)
    elapsed = time.monotonic() - started
    print(f"\n1 MiB alice -> bob on one idle node: {elapsed:.1f} s")
    assert sha256_of(received["path"]) == digest
    assert not bob.of("file_failed") and not alice.of("file_failed")
