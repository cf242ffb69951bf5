"""Attack: make the node drop frames without a word (issue #15, weakness 7).

A client that sends a burst past a rate limit must learn the fate of every frame:
each acknowledged frame (DM, public message, file frame) ends in an ACK that covers it
or an ERROR that names it (`msg_ref`, or the list `msg_refs`). Otherwise the client
cannot tell a frame to re-send from one that was delivered, and a flood makes
honest users lose messages without knowing it.

Two bursts of DMs are sent: one past the gateway's limit per connection (after
filler frames empty that bucket), one past the router's limit per user (after filler
frames on earlier connections of the same user empty the user's bucket, which
outlives a connection). An idle node lends a lone sender a spare shared by all
(issue #18), so each try sends more (filler, then burst) until the node refuses some.
Blocked when every DM is acknowledged or named by an ERROR, and the recipient got
exactly the acknowledged ones. With `--mesh-url`, the recipient
is a user of that other node, so every DM also crosses a server link: an ACK must
still mean delivered, and a refusal must still name its frame.

    python poc/silent_drops.py --url ws://127.0.0.1:8765 [--mesh-url ws://127.0.0.1:8766]
"""

from __future__ import annotations

import argparse
import asyncio

from websockets.exceptions import ConnectionClosed

from _common import Keys, Peer, Verdict, main, now_ms, show, user, wait_listed
from socp.protocol import frames
from socp.protocol.acks import msg_ref, refs_named
from socp.protocol.envelope import Envelope, parse

BURST_DMS = 32
FILLER = 480             # frames that empty most of a bucket (the node's connection burst is 500)
# Heartbeats before a burst on one connection: its own burst (500) and what it refilled
# meanwhile (200/s), then also the spare every user connection shares (2,000).
CONNECTION_FILLERS = (700, 3000, 6000)
# DMs in a burst past the user's limit: past the user's own bucket a DM may take from a
# spare that holds about one second of the node's signatures.
USER_BURSTS = (BURST_DMS, 600, 2400)
ANSWER_WAIT = 10.0       # seconds for the answers of a burst (more for a bigger one)


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    home = args.mesh_url[0] if args.mesh_url else args.url
    bob = await user(home, keys, args.timeout)
    alice_key, carol_key = keys.take(), keys.take()
    if home != args.url:
        verdict.note(f"the recipient is a user of {home}: every DM crosses a server link")
        watcher = await reconnect(args, alice_key, "")
        if not await wait_listed(watcher, bob.peer_id, args.timeout):
            raise TimeoutError(f"{args.url} never listed the recipient at {home}: is the mesh linked?")
        await watcher.close()

    verdict.tried(f"{BURST_DMS} DMs in one burst past the limit of a connection")
    for attempt, fillers in enumerate(CONNECTION_FILLERS):
        alice = await reconnect(args, alice_key, "")
        # Filler and burst back to back: waiting for an answer would let the bucket refill.
        await filler(alice, fillers)
        done = await burst_answered(alice, bob, verdict, BURST_DMS,
                                    last_try=attempt == len(CONNECTION_FILLERS) - 1)
        await alice.close()
        if done:
            break

    verdict.tried("a burst of DMs past the limit of a user (kept across connections)")
    for attempt, burst in enumerate(USER_BURSTS):
        carol = await reconnect(args, carol_key, "")      # a new user id each attempt: a full bucket
        carol_id = carol.peer_id
        await filler(carol, FILLER)
        await carol.close()
        carol = await reconnect(args, carol_key, carol_id)
        await filler(carol, FILLER)
        await carol.close()
        carol = await reconnect(args, carol_key, carol_id)
        await filler(carol, FILLER - 30)   # the connection's own bucket keeps room for the burst
        done = await burst_answered(carol, bob, verdict, burst, last_try=attempt == len(USER_BURSTS) - 1)
        await carol.close()
        if done:
            break


async def reconnect(args: argparse.Namespace, key, user_id: str) -> Peer:
    """Connect as `user_id` again; the node may take a moment to see the last
    connection go (NAME_IN_USE meanwhile)."""
    for _ in range(20):
        peer = Peer(args.url, key, timeout=args.timeout)
        if user_id:
            peer.peer_id = user_id
        await peer.open()
        await peer.hello()            # signed afresh each time (a signature is used once)
        try:
            await peer.list_users()
            return peer
        except ConnectionClosed:
            await asyncio.sleep(0.25)
    raise TimeoutError("could not connect as the same user again")


async def filler(peer: Peer, count: int) -> None:
    """Frames that cost the node nothing but a token: heartbeats."""
    beat = frames.heartbeat(peer.peer_id, "*", now_ms()).to_wire()
    for _ in range(count):
        await peer.send(beat)


async def burst_answered(sender: Peer, recipient: Peer, verdict: Verdict, size: int, last_try: bool) -> bool:
    """Send a burst of `size` DMs and judge the answers; False (nothing judged) if no
    frame of it was refused, so the limit was not reached, unless this is the last try."""
    dms = [sender.dm(recipient.peer_id, recipient.pubkey, b"burst %d" % n) for n in range(size)]
    refs = [msg_ref(dm) for dm in dms]
    for dm in dms:
        await sender.send(dm)
    told, closed = await answers(sender, refs, ANSWER_WAIT + size / 100)
    delivered = await deliveries(recipient, {dm.payload["ciphertext"] for dm in dms})
    acked = sum(1 for outcome in told.values() if outcome == "acked")
    refused = {outcome for outcome in told.values() if outcome != "acked"}
    silent = len(refs) - len(told)
    verdict.note(f"{acked} acknowledged, {len(told) - acked} refused ({', '.join(sorted(refused)) or '-'}), "
                 f"{silent} without an answer; the recipient got {delivered}{'; connection closed' if closed else ''}")
    if not refused and not silent and not last_try:
        verdict.note(f"the burst of {size} met no limit (a spare lent, or a bucket refilled meanwhile): more")
        return False
    verdict.check(silent == 0 and delivered == acked and len(told) > acked,
                  f"every DM of the burst answered: {len(told)} of {len(refs)}; "
                  f"deliveries {delivered} = acknowledged {acked}")
    return True


async def answers(peer: Peer, refs: list[str], wait: float) -> tuple[dict[str, str], bool]:
    """What the sender may conclude about each ref: "acked" (a cumulative ACK covers it
    and no ERROR named it before) or "refused:CODE"."""
    told: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    assert peer.socket is not None
    while len(told) < len(refs) and loop.time() < deadline:
        try:
            text = await asyncio.wait_for(peer.socket.recv(), deadline - loop.time())
        except TimeoutError:
            break
        except ConnectionClosed:
            return told, True
        frame = parse(text)
        if frame.type == "ERROR":
            code = frame.payload.get("code", "?")
            for ref in refs_named(frame.payload):
                if ref in refs:
                    told.setdefault(ref, f"refused:{show(code)}")
        elif frame.type == "ACK" and frame.payload.get("msg_ref") in refs:
            for ref in refs[: refs.index(frame.payload["msg_ref"]) + 1]:
                told.setdefault(ref, "acked")
    return told, False


async def deliveries(peer: Peer, ciphertexts: set[str], quiet: float = 2.0) -> int:
    """USER_DELIVERs of these ciphertexts that reach `peer` until it has been quiet a while."""
    count = 0
    assert peer.socket is not None
    while True:
        try:
            text = await asyncio.wait_for(peer.socket.recv(), quiet)
        except TimeoutError:
            return count
        frame: Envelope = parse(text)
        if frame.type == "USER_DELIVER" and frame.payload.get("ciphertext") in ciphertexts:
            count += 1


if __name__ == "__main__":
    raise SystemExit(main(run, "silent drops: every frame of a refused burst is answered"))
