"""Issue #16 item 1 against REAL nodes: a file cut by a lost connection goes on after
the reconnect and arrives byte for byte (file_resume.py).

alice on node A sends ~600 KiB to carol on node B; node A stops at about half and
starts again. That cuts alice's connection (and the link A-B, so the parts node A
had taken but not yet handed to node B are lost); alice's `socp chat --reconnect`
connects again, waits for carol to be listed, and sends the rest under a new file
id naming the first; carol's client joins it to the download it has. The unit tests
of the decisions are test_file_resume.py.
"""

from __future__ import annotations

import time

import pytest

from support.nodes import start_node

from .test_real_node import FAST_LINKS, NODE_A, NODE_B, make_home, sha256_of, start_chat, wait_listed, write_random

pytestmark = pytest.mark.e2e
RECONNECT = ("--reconnect", "--connect-attempts", "30")
# Slow enough that the cut comes while alice is still sending: 600 KiB is 1,378 parts,
# about 12 s at 120 a second.
STILL_SENDING = ("--file-rate", "120")
SIZE = 600 * 1024


async def test_a_file_cut_by_a_restart_of_the_senders_node_goes_on_and_arrives_whole(keys, tmp_path, chats):
    node_a = start_node(tmp_path / "a", keys[NODE_A], verifiers=1, extra_args=FAST_LINKS)
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(node_a.bootstrap_yaml())
    node_b = start_node(tmp_path / "b", keys[NODE_B], verifiers=1,
                        extra_args=(*FAST_LINKS, "--bootstrap", str(bootstrap)))
    try:
        alice_home, alice_id = make_home(keys, tmp_path, "alice")
        carol_home, carol_id = make_home(keys, tmp_path, "carol")
        alice = await start_chat(chats, alice_home, node_a, *STILL_SENDING, *RECONNECT)
        carol = await start_chat(chats, carol_home, node_b)
        await wait_listed(alice, {alice_id, carol_id})
        digest = write_random(tmp_path / "half.bin", SIZE)
        await alice.send(f"/file carol {tmp_path / 'half.bin'}")
        await carol.until("progress", lambda e: e["total"] and e["done"] >= SIZE // 2, timeout=60)
        node_a.stop()
        cut_at = time.monotonic()
        cut = await alice.until("info", lambda e: "goes on after the reconnect" in e["text"], timeout=30)
        assert "half.bin to carol" in cut["text"]
        node_a = start_node(tmp_path / "a", keys[NODE_A], verifiers=1, port=node_a.port, extra_args=FAST_LINKS)
        resumed = await alice.until("info", lambda e: "goes on after the lost connection" in e["text"], timeout=60)
        joined = await carol.until("info", lambda e: "goes on after alice's connection was lost" in e["text"],
                                   timeout=30)
        received = await carol.until("file", timeout=60)
        arrived_after = time.monotonic() - cut_at
        assert received["name"] == "half.bin" and received["from"] == alice_id
        assert sha256_of(received["path"]) == digest
        sent = await alice.until("file_sent", timeout=30)
        assert sent["name"] == "half.bin" and sent["resumes"] == 1
        assert not alice.of("file_failed") and not carol.of("file_failed")
        assert [p.name for p in (carol_home / "downloads").iterdir()] == ["half.bin"]
        print(f"\n{resumed['text']}\ncarol: {joined['text']}\nthe whole file arrived {arrived_after:.1f} s "
              "after node A stopped")
        assert await alice.finish() == 0
        assert await carol.finish() == 0
    finally:
        node_a.stop()
        node_b.stop()
