"""Attack: make the node drop frames without a word (issue #15, weakness 7).

A client that sends a burst past a rate limit must learn the fate of every frame:
each acknowledged frame (DM, public message, file frame) ends in an ACK that covers it
or an ERROR that names it (`msg_ref`, or the list `msg_refs`). Otherwise the client
cannot tell a frame to re-send from one that was delivered, and a flood makes
honest users lose messages without knowing it.

Two bursts are sent: 32 DMs past the gateway's limit per connection (after filler
heartbeats, a few thousand and more on each retry, empty that bucket and the spare all
connections share, issue #18), and 450 file chunks past the router's limit per user
(after filler on two earlier connections of the same user empties the user's bucket,
which outlives a connection; file frames, unlike DMs, may not borrow from the spare of
signatures). Blocked when every frame is acknowledged or named by an ERROR, and the
recipient got exactly the acknowledged ones. With `--mesh-url`, the recipient is a user
of that other node, so every frame also crosses a server link: an ACK must still mean
handed on, and a refusal must still name its frame.

    python poc/silent_drops.py --url ws://127.0.0.1:8765 [--mesh-url ws://127.0.0.1:8766]
"""

from __future__ import annotations

import argparse
import asyncio

from websockets.exceptions import ConnectionClosed

from _common import Keys, Peer, Verdict, main, now_ms, show, user, wait_listed
from socp.protocol import crypto, frames
from socp.protocol.acks import msg_ref, refs_named
from socp.protocol.encoding import b64url_encode
from socp.protocol.envelope import Envelope, parse
from socp.protocol.ids import new_id

BURST_DMS = 32
BURST_CHUNKS = 450       # past the 40 tokens two connections of filler leave in the user's bucket, and
                         # what it refills (250/s) while the sender connects again; within a connection's 500
FILLER = 480             # frames that empty most of a bucket (the node's connection burst is 500)
DRAIN = 5_000            # heartbeats that empty a connection's bucket (500) and the spare all connections
                         # share (2,000, refilled at 2,000/s), doubled on each retry (a slow sender drains less)
CHUNK_BYTES = 64
ANSWER_WAIT = 10.0       # seconds for the answers of a burst
ATTEMPTS = 3             # a busy machine may refill a bucket before the burst: try again


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    home = args.mesh_url[0] if args.mesh_url else args.url
    bob = await user(home, keys, args.timeout)
    alice_key, carol_key = keys.take(), keys.take()
    if home != args.url:
        verdict.note(f"the recipient is a user of {home}: every frame crosses a server link")
        watcher = await reconnect(args, alice_key, "")
        if not await wait_listed(watcher, bob.peer_id, args.timeout):
            raise TimeoutError(f"{args.url} never listed the recipient at {home}: is the mesh linked?")
        await watcher.close()

    verdict.tried(f"{BURST_DMS} DMs in one burst past the limit of a connection")
    for attempt in range(ATTEMPTS):
        alice = await reconnect(args, alice_key, "")
        # Made first (RSA takes a while), then filler and burst back to back: any pause
        # would let the buckets refill.
        dms = [alice.dm(bob.peer_id, bob.pubkey, b"burst %d" % n) for n in range(BURST_DMS)]
        await filler(alice, DRAIN * 2**attempt)
        done = await burst_answered(alice, bob, dms, verdict, last_try=attempt == ATTEMPTS - 1)
        await alice.close()
        if done:
            break

    verdict.tried(f"{BURST_CHUNKS} file chunks in one burst past the limit of a user (kept across connections)")
    for attempt in range(ATTEMPTS):
        carol = await reconnect(args, carol_key, "")      # a new user id each attempt: a full bucket
        carol_id = carol.peer_id
        await filler(carol, FILLER)
        await carol.close()
        carol = await reconnect(args, carol_key, carol_id)
        await filler(carol, FILLER)
        await carol.close()
        carol = await reconnect(args, carol_key, carol_id)
        chunks = file_frames(carol, bob)    # FILE_START first: a transfer lives on its connection
        await carol.send(chunks[0])
        done = await burst_answered(carol, bob, chunks[1:], verdict, last_try=attempt == ATTEMPTS - 1)
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


def file_frames(sender: Peer, recipient: Peer) -> list[Envelope]:
    """FILE_START and BURST_CHUNKS chunks of one file (each chunk its own ciphertext)."""
    file_id = new_id()
    key = crypto.decode_public_key(recipient.pubkey)
    start = frames.file_start(sender.peer_id, recipient.peer_id, now_ms(), file_id, "burst.bin",
                              CHUNK_BYTES * BURST_CHUNKS, "0" * 64, "dm")
    chunks = [frames.file_chunk(sender.peer_id, recipient.peer_id, now_ms() + n, file_id, n,
                                b64url_encode(crypto.oaep_encrypt(key, b"%d" % n))) for n in range(BURST_CHUNKS)]
    return [start, *chunks]


async def filler(peer: Peer, count: int) -> None:
    """Frames that cost the node nothing but a token: heartbeats."""
    beat = frames.heartbeat(peer.peer_id, "*", now_ms()).to_wire()
    for _ in range(count):
        await peer.send(beat)


async def burst_answered(sender: Peer, recipient: Peer, dms: list[Envelope], verdict: Verdict,
                         last_try: bool) -> bool:
    """Send the burst and judge the answers; False (nothing judged) if no frame of it
    was refused, so the limit was not reached, unless this is the last try."""
    refs = [msg_ref(dm) for dm in dms]
    for dm in dms:
        await sender.send(dm)
    told, closed = await answers(sender, refs)
    delivered = await deliveries(recipient, {dm.payload["ciphertext"] for dm in dms})
    acked = sum(1 for outcome in told.values() if outcome == "acked")
    refused = {outcome for outcome in told.values() if outcome != "acked"}
    silent = len(refs) - len(told)
    verdict.note(f"{acked} acknowledged, {len(told) - acked} refused ({', '.join(sorted(refused)) or '-'}), "
                 f"{silent} without an answer; the recipient got {delivered}{'; connection closed' if closed else ''}")
    if not refused and not silent and not last_try:
        verdict.note("the burst met no limit (a bucket refilled meanwhile): again")
        return False
    verdict.check(silent == 0 and delivered == acked and len(told) > acked,
                  f"every frame of the burst answered: {len(told)} of {len(refs)}; "
                  f"deliveries {delivered} = acknowledged {acked}")
    return True


async def answers(peer: Peer, refs: list[str]) -> tuple[dict[str, str], bool]:
    """What the sender may conclude about each ref: "acked" (a cumulative ACK covers it
    and no ERROR named it before) or "refused:CODE"."""
    told: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ANSWER_WAIT
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
    """Deliveries (USER_DELIVER, FILE_CHUNK) of these ciphertexts that reach `peer` until
    it has been quiet a while."""
    count = 0
    assert peer.socket is not None
    while True:
        try:
            text = await asyncio.wait_for(peer.socket.recv(), quiet)
        except TimeoutError:
            return count
        frame: Envelope = parse(text)
        if frame.type in ("USER_DELIVER", "FILE_CHUNK") and frame.payload.get("ciphertext") in ciphertexts:
            count += 1


if __name__ == "__main__":
    raise SystemExit(main(run, "silent drops: every frame of a refused burst is answered"))
