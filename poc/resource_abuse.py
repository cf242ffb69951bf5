"""Attack: exhaust the node (SOCP §4, §13): big or deep frames, silent sockets,
connection and frame floods, a sustained rate just under the per-connection limit
(which the per-user limit must stop), file transfers that never end.

Blocked when each abuse is refused or cut off (MALFORMED, RATE_LIMITED with a
retry hint, a close) and, afterwards, /healthz answers and a DM between two fresh
users still arrives.

    python poc/resource_abuse.py --url ws://127.0.0.1:8765 [--hello-timeout 10]
"""

from __future__ import annotations

import argparse
import asyncio
import re

from websockets.exceptions import ConnectionClosed

from _common import Keys, Peer, Verdict, healthz, main, now_ms, show, user
from socp.protocol import frames
from socp.protocol.ids import new_id

SERVER_FLOOD_STEP = 500   # frames sent on the server link between looks for the node's answer


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hello-timeout", type=float, default=10.0,
                        help="the node's hello timeout (socp up --hello-timeout), to wait for the slowloris cut")
    parser.add_argument("--max-frame-bytes", type=int, default=1024 * 1024, help="the node's frame size limit")
    parser.add_argument("--connections", type=int, default=80,
                        help="sockets to open at once from this address (more than the node allows)")
    parser.add_argument("--flood-frames", type=int, default=2500, help="frames to send as fast as possible")
    parser.add_argument("--server-flood-frames", type=int, default=30_000,
                        help="frames at most to send as fast as possible on a server link, until the node "
                             "answers (server links have their own, higher limits: a burst of 5,000, then "
                             "1,000/s, which a slow sender on a busy machine takes long to outrun)")
    parser.add_argument("--frame-rate", type=float, default=200.0, help="the node's per-connection frame rate")
    parser.add_argument("--frame-burst", type=int, default=500, help="the node's per-connection burst")
    parser.add_argument("--user-rate", type=float, default=250.0, help="the node's per-user frame rate")
    parser.add_argument("--user-burst", type=int, default=1000, help="the node's per-user burst")


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    alice = await user(args.url, keys, args.timeout)

    verdict.tried(f"a frame of {args.max_frame_bytes + 1000} bytes")
    big = frames.msg_direct(
        alice.peer_id, alice.peer_id, now_ms(), "A" * (args.max_frame_bytes + 1000), alice.pubkey, "c2ln"
    )
    await alice.send(big)
    code, detail = await alice.error()
    verdict.check(code == "MALFORMED", f"answer {code or 'none'} {show(detail)}")

    for depth in (64, 100_000):
        verdict.tried(f"JSON nested {depth} levels deep")
        nested = '{"type":"LIST_REQUEST","from":"%s","to":"*","ts":%d,"payload":{"x":%s}}' % (
            alice.peer_id,
            now_ms(),
            "[" * depth + "]" * depth,
        )
        await alice.send(nested)
        code, detail = await alice.error()
        verdict.check(code == "MALFORMED", f"answer {code or 'none'} {show(detail)}")
    listed = await alice.list_users()
    verdict.check(alice.peer_id in listed, "the connection survived and still answers /list")

    verdict.tried(f"slowloris: a socket that never says hello (node's hello timeout {args.hello_timeout:g} s)")
    silent = await Peer(args.url, keys.take(), timeout=args.timeout).open()
    code = await silent.closed(args.hello_timeout + 5)
    verdict.check(code is not None, f"closed by the node with code {code}" if code else "still open")

    verdict.tried(f"{args.connections} connections at once from one address")
    before = healthz(args.url).get("connections_refused", 0)
    crowd: list[Peer] = []
    try:
        for _ in range(args.connections):
            crowd.append(await Peer(args.url, alice.key, timeout=args.timeout).open())
        codes = await asyncio.gather(*(peer.closed(0.5) for peer in crowd))
        refused = sum(1 for c in codes if c == 1013)
        counted = healthz(args.url).get("connections_refused", 0) - before
        verdict.check(refused > 0, f"{refused} refused at once with close code 1013 (healthz counts {counted})")
    finally:
        for peer in crowd:
            await peer.close()
    await asyncio.sleep(0.3)

    verdict.tried(f"{args.flood_frames} frames from one user as fast as the socket takes them")
    flooder = await user(args.url, keys, args.timeout)
    beat = frames.heartbeat(flooder.peer_id, "*", now_ms()).to_wire()
    closed_early = False
    try:
        for _ in range(args.flood_frames):
            await flooder.send(beat)
    except Exception:  # noqa: BLE001 - the node may cut the flooder off mid-flood
        closed_early = True
    code, detail = await flooder.error(timeout=5)
    hint = re.search(r"retry_after_ms=(\d+)", detail)
    cut_off = code == "CLOSED" and "rate limit" in detail
    verdict.check(
        (code == "RATE_LIMITED" and hint is not None) or cut_off,
        f"answer {code or 'none'} {show(detail)}" + ("; node closed the flooder" if closed_early else ""),
    )
    await flooder.close()

    await sustained_past_the_user_limit(args, keys, verdict)

    verdict.tried(f"{args.server_flood_frames} frames from one server link")
    server = await Peer(args.url, keys.take(), timeout=args.timeout).open()
    await server.join_as_server()
    beat = server.signed(frames.heartbeat(server.peer_id, "*", now_ms())).to_wire()
    code, detail, sent = "", "", 0
    try:
        while sent < args.server_flood_frames and not code:
            for _ in range(SERVER_FLOOD_STEP):
                await server.send(beat)
            sent += SERVER_FLOOD_STEP
            code, detail = await server.error(timeout=0.001)   # an answer already there, if any
    except ConnectionClosed:
        pass
    if not code:
        code, detail = await server.error(timeout=5)
    verdict.note(f"{sent} frames sent ({SERVER_FLOOD_STEP} at a time, until an answer had come)")
    verdict.check(
        code == "RATE_LIMITED" or (code == "CLOSED" and "rate limit" in detail),
        f"answer {code or 'none'} {show(detail)}",
    )
    await server.close()

    verdict.tried("file transfers that never end: FILE_START after FILE_START, no FILE_END")
    bob = await user(args.url, keys, args.timeout)
    refused_at = None
    for n in range(1, 21):
        await alice.send(
            frames.file_start(alice.peer_id, bob.peer_id, now_ms(), new_id(), f"f{n}.bin", 10, "0" * 64, "dm")
        )
        code, detail = await alice.error(timeout=0.3)
        if code:
            refused_at = n
            break
    verdict.check(
        refused_at is not None,
        f"transfer #{refused_at} refused: {code} {show(detail)}" if refused_at else "20 unfinished transfers accepted",
    )
    await alice.send(frames.file_chunk(alice.peer_id, bob.peer_id, now_ms(), new_id(), 0, "AAAA"))
    code, detail = await alice.error()
    verdict.check(code == "FORBIDDEN", f"a chunk for no open transfer: {code or 'none'} {show(detail)}")

    verdict.tried("is the node still serving?")
    verdict.check(healthz(args.url).get("status") == "ok", "/healthz answers ok")
    carol = await user(args.url, keys, args.timeout)
    dave = await user(args.url, keys, args.timeout)
    await carol.send(carol.dm(dave.peer_id, dave.pubkey, b"still here"))
    verdict.check(dave.open_dm(await dave.receive("USER_DELIVER")) == b"still here", "a DM between fresh users arrives")
    for peer in (alice, bob, carol, dave):
        await peer.close()


async def sustained_past_the_user_limit(args: argparse.Namespace, keys: Keys, verdict: Verdict) -> None:
    """Most of a connection's burst at once, then a steady rate that a lone connection
    may reach, but its user may not keep up: whichever is faster of 90 % of the
    connection's own rate (where that is above the user's) and 1.5 times the user's
    (which an idle node lends a connection from its spare, issue #18). Some limit must
    stop the user once its burst is spent."""
    burst = int(args.frame_burst * 0.8)
    rate = max(args.frame_rate * 0.9, args.user_rate * 1.5)
    needed_s = max(0.0, (args.user_burst - burst) / (rate - args.user_rate))
    verdict.tried(
        f"{burst} frames at once, then {rate:g} frames/s (a connection's own limit {args.frame_rate:g}/s, "
        f"a user's {args.user_rate:g}/s) for up to {needed_s + 3:.0f} s"
    )
    pacer = await user(args.url, keys, args.timeout)
    beat = frames.heartbeat(pacer.peer_id, "*", now_ms()).to_wire()
    answer = asyncio.ensure_future(pacer.error(timeout=needed_s + 3))
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    try:
        for _ in range(burst):
            await pacer.send(beat)
        sent = burst
        tick = 0.05
        while not answer.done() and loop.time() - started < needed_s + 3:
            due = burst + int((loop.time() - started) * rate)
            while sent < due:
                await pacer.send(beat)
                sent += 1
            await asyncio.sleep(tick)
    except Exception:  # noqa: BLE001 - the node may close the connection
        pass
    code, detail = await answer
    elapsed = loop.time() - started
    verdict.check(code == "RATE_LIMITED",
                  f"after {sent} frames in {elapsed:.1f} s: answer {code or 'none'} {show(detail)}")
    await pacer.close()


if __name__ == "__main__":
    raise SystemExit(main(run, "resource abuse: size, depth, slowloris, floods, endless transfers", options))
