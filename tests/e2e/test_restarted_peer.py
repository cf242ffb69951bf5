"""A G17 server restarted at the same address is a new server (issue #14, note c16).

G17 makes a new key at every start and joins as "auto": we give it a new id. Live, our
node went on re-dialling the old id at that address for up to an hour, refused every
answer (the old pin holds), and the link book showed that refused old id instead of
the live link. Here a G17 double joins a real node, goes, and joins again from the
same address with a new key; a listener at that address counts the node's dials.
"""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.server import ServerConnection, serve

from support.dialect_doubles import G17, DialectDouble
from support.http import aget_json
from support.nodes import start_node

pytestmark = pytest.mark.e2e


async def link_rows(port: int) -> list[dict]:
    return (await aget_json(f"http://127.0.0.1:{port}/healthz")).body["server_links"]


async def test_a_restarted_g17_is_linked_under_its_new_id_and_the_old_one_is_no_longer_dialled(keys, tmp_path):
    node = start_node(tmp_path / "data", keys[0], verifiers=1)
    dials = 0

    async def count_dial(ws: ServerConnection) -> None:
        nonlocal dials
        dials += 1
        await ws.close()   # nobody answers as the old server: its key is gone with the restart

    listener = await serve(count_dial, "127.0.0.1", 0, compression=None)
    port = listener.sockets[0].getsockname()[1]
    address = f"127.0.0.1:{port}"
    try:
        first = DialectDouble(G17, keys[6], port=port)
        await first.join("127.0.0.1", node.port)
        old_id = first.server_id
        await first.send({"type": "HEARTBEAT", "from": old_id, "to": "*", "ts": 1, "payload": {"now": 1}})
        await first.close()                                    # G17 stopped...
        for _ in range(40):                                    # ...and the node dials it again, as any peer
            if dials:
                break
            await asyncio.sleep(0.25)
        assert dials, "the node never dialled the lost server"
        second = DialectDouble(G17, keys[7], port=port)        # ...started again: new key, new id
        await second.join("127.0.0.1", node.port)
        assert second.server_id != old_id
        await second.send({"type": "HEARTBEAT", "from": second.server_id, "to": "*", "ts": 2, "payload": {"now": 2}})
        for _ in range(40):
            rows = [r for r in await link_rows(node.port) if r["address"] == address]
            if rows and (rows[0]["state"], rows[0]["peer_id"]) == ("joined", second.server_id):
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)                               # a dial already under way may still land
        dials_then = dials
        await asyncio.sleep(6.0)                               # the re-dial backoff starts at 0.5 s
        assert dials == dials_then, "the old id is still dialled at the new server's address"
        [row] = [r for r in await link_rows(node.port) if r["address"] == address]
        assert (row["state"], row["peer_id"]) == ("joined", second.server_id)
        await second.close()
    finally:
        listener.close()
        node.stop()
