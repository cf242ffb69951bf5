"""Attack: hold the node's sockets and memory from many addresses (issue #15 item 6).

Opens a crowd of WebSocket connections that never say hello, spread over many
loopback addresses so no per-address limit applies, and sends first frames of a
megabyte. Blocked when the node keeps at most its cap of silent connections (closing
the ones that waited longest), an honest user still connects and is listed while the
crowd is there, an oversized first frame is cut off, and /healthz shows what the
crowd cost per connection and that memory came back once it left. With `--mesh-url`,
the mesh must still carry a DM from a user of that node to a user of the node flooded.

    python poc/connection_flood.py --url ws://127.0.0.1:8765 [--mesh-url ws://127.0.0.1:8766] [--connections 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

import websockets
from websockets.exceptions import ConnectionClosed

from _common import Keys, Peer, Verdict, healthz, main, show, user, wait_listed
from _node_memory import node_rss_bytes, port_of

PER_ADDRESS = 8          # connections from each loopback address: far under any per-address cap
CLOSE_MESSAGE_TOO_BIG = 1009


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=int, default=1500,
                        help="silent sockets to open (more than the node's --max-waiting-for-hello)")
    parser.add_argument("--max-waiting", type=int, default=1024,
                        help="the node's cap on connections yet to say hello (NodeConfig.max_waiting_for_hello)")
    parser.add_argument("--big-senders", type=int, default=40,
                        help="users that each send frames of --big-frame-bytes (over the frame limit)")
    parser.add_argument("--big-frame-bytes", type=int, default=4_000_000, help="size of those frames")
    parser.add_argument("--settle", type=float, default=12.0,
                        help="seconds to wait after the crowd left for the node to hand memory back")


def _source(index: int) -> str:
    slot = index // PER_ADDRESS
    return f"127.1.{slot // 250}.{slot % 250 + 1}"


async def _open_silent(url: str, index: int, timeout: float) -> websockets.ClientConnection | None:
    try:
        return await websockets.connect(url, compression=None, open_timeout=timeout, proxy=None,
                                        close_timeout=0.5, local_addr=(_source(index), 0))
    except (OSError, TimeoutError, websockets.InvalidHandshake):
        return None


async def _open_crowd(url: str, count: int, timeout: float) -> list[websockets.ClientConnection]:
    gate = asyncio.Semaphore(100)

    async def one(index: int) -> websockets.ClientConnection | None:
        async with gate:
            return await _open_silent(url, index, timeout)

    opened = await asyncio.gather(*(one(i) for i in range(count)))
    return [ws for ws in opened if ws is not None]


def _mib(value: object) -> str:
    return f"{value / 2**20:.1f} MiB" if isinstance(value, int) else "unknown"


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 1000), hard))
    before = healthz(args.url)
    node_before = node_rss_bytes(port_of(args.url))
    keys = Keys(args.keys)

    verdict.tried(f"{args.connections} silent sockets from {args.connections // PER_ADDRESS} loopback addresses")
    started = time.monotonic()
    crowd = await _open_crowd(args.url, args.connections, args.timeout)
    await asyncio.sleep(1.0)   # closes of the evicted ones arrive
    during = healthz(args.url)
    node_during = node_rss_bytes(port_of(args.url))
    still_open = sum(1 for ws in crowd if ws.close_code is None)
    verdict.note(f"opened {len(crowd)} in {time.monotonic() - started:.1f} s; {still_open} still open; "
                 f"node: {during['open_connections']} open, {during['waiting_for_hello']} waiting for a hello, "
                 f"{during['silent_connections_evicted'] - before['silent_connections_evicted']} evicted")
    verdict.check(during["waiting_for_hello"] <= args.max_waiting and still_open <= args.max_waiting,
                  f"the node holds {during['waiting_for_hello']} silent connections (cap {args.max_waiting})")
    held = max(during["open_connections"] - before["open_connections"], 1)
    rss_before, rss_during = before.get("memory_rss_bytes"), during.get("memory_rss_bytes")
    if isinstance(rss_before, int) and isinstance(rss_during, int):
        verdict.note(f"gateway RSS {_mib(rss_before)} -> {_mib(rss_during)} with the crowd: "
                     f"{(rss_during - rss_before) / held / 1024:.1f} KiB per held connection")
    if node_before is not None and node_during is not None:
        verdict.note(f"node RSS (all its actors) {_mib(node_before)} -> {_mib(node_during)} with the crowd: "
                     f"{(node_during - node_before) / held / 1024:.1f} KiB per held connection")

    verdict.tried("an honest user connects while the crowd is there")
    honest = await user(args.url, keys, args.timeout)
    listed = await honest.list_users()
    verdict.check(honest.peer_id in listed, "accepted and listed: the crowd does not lock newcomers out")
    await honest.close()

    verdict.tried("a first frame of 1 MiB, before any hello")
    big = await _open_silent(args.url, args.connections + PER_ADDRESS, args.timeout)
    if big is None:
        verdict.check(False, "could not connect to send it")
    else:
        await big.send("{" + " " * (1024 * 1024) + "}")
        try:
            async with asyncio.timeout(args.timeout):
                await big.recv()
            verdict.check(False, "the node answered instead of cutting the connection")
        except ConnectionClosed:
            verdict.check(big.close_code == CLOSE_MESSAGE_TOO_BIG,
                          f"cut off with close code {big.close_code} {show(big.close_reason)}")

    verdict.tried(f"the crowd leaves, then comes again ({args.settle:g} s apart)")
    await asyncio.gather(*(ws.close() for ws in crowd), return_exceptions=True)
    await asyncio.sleep(args.settle)
    after = healthz(args.url)
    verdict.check(after["waiting_for_hello"] == 0, f"{after['open_connections']} connections open afterwards")
    again = await _open_crowd(args.url, args.connections, args.timeout)
    await asyncio.sleep(1.0)
    during_again = healthz(args.url)
    await asyncio.gather(*(ws.close() for ws in again), return_exceptions=True)
    await asyncio.sleep(args.settle)
    rss = [h.get("memory_rss_bytes") for h in (before, during, after, during_again, healthz(args.url))]
    if all(isinstance(value, int) for value in rss):
        verdict.note("gateway RSS before, with the crowd, after, with it again, after: "
                     + ", ".join(_mib(value) for value in rss) + f" ({after['heap_trims']} heap trims)")
        first_cost = max(rss[1] - rss[0], 1)
        # What the first crowd left is reused, not added to: a second crowd costs little more.
        verdict.check(rss[3] - rss[1] <= first_cost // 4,
                      f"the second crowd grew the gateway by {_mib(max(rss[3] - rss[1], 0))} "
                      f"beyond the first ({_mib(first_cost)})")
    else:
        verdict.note("the node does not report its memory (/healthz memory_rss_bytes): not checked")
    await big_frames(args, keys, verdict)
    for url in args.mesh_url:
        await dm_across(url, args, keys, verdict)


async def dm_across(url: str, args: argparse.Namespace, keys: Keys, verdict: Verdict) -> None:
    """After the floods: a user of another node writes to a user of the node flooded."""
    verdict.tried(f"after the floods, a user at {url} DMs a user at the node flooded")
    recipient = await user(args.url, keys, args.timeout)
    sender = await user(url, keys, args.timeout)
    if not await wait_listed(sender, recipient.peer_id, args.timeout):
        verdict.check(False, f"{url} never listed the user of the node flooded: the link is gone")
        return
    await sender.send(sender.dm(recipient.peer_id, recipient.pubkey, b"still linked"))
    try:
        deliver = await recipient.receive("USER_DELIVER", timeout=args.timeout)
        verdict.check(recipient.open_dm(deliver) == b"still linked", "the DM crossed the mesh and arrived")
    except TimeoutError:
        verdict.check(False, "the DM from the other node never arrived")
    await sender.close()
    await recipient.close()


async def big_frames(args: argparse.Namespace, keys: Keys, verdict: Verdict) -> None:
    """Many users each send frames just under the WebSocket limit, then leave."""
    verdict.tried(f"{args.big_senders} users each send 3 frames of {args.big_frame_bytes} bytes")
    key = keys.take()   # unsigned hellos may share a key; the frames are what costs
    before = healthz(args.url)
    senders = [await Peer(args.url, key, timeout=args.timeout).open() for _ in range(args.big_senders)]
    for sender in senders:
        await sender.hello(signed=False)
        await sender.list_users()   # accepted: past its first frame, so full-size frames now
    big = "A" * args.big_frame_bytes
    for _ in range(3):
        for sender in senders:
            await sender.socket.send(big)
    answers = [await sender.error() for sender in senders]
    refused = sum(1 for code, _ in answers if code == "MALFORMED")
    verdict.check(refused == len(senders), f"{refused} of {len(senders)} answered MALFORMED {show(answers[0][1])}")
    during = healthz(args.url)
    await asyncio.gather(*(sender.close() for sender in senders), return_exceptions=True)
    await asyncio.sleep(args.settle)
    after = healthz(args.url)
    rss = [h.get("memory_rss_bytes") for h in (before, during, after)]
    if all(isinstance(value, int) for value in rss):
        verdict.note("gateway RSS before, with the senders, after they left: " + ", ".join(_mib(v) for v in rss))
        verdict.check(rss[2] - rss[0] <= max(rss[1] - rss[0], 0) // 4 + 8 * 2**20,
                      f"{_mib(max(rss[2] - rss[0], 0))} still held after they left")


if __name__ == "__main__":
    raise SystemExit(main(run, "connection flood: silent crowds and big first frames", options))
