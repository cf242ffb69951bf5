"""Attack: make the node drop frames without a word (issue #15, weakness 7).

A client that sends a burst past a rate limit must learn the fate of every frame:
each acknowledged frame (DM, public message, file frame) ends in an ACK that covers it
or an ERROR that names it (`msg_ref`, or the list `msg_refs`). Otherwise the client
cannot tell a frame to re-send from one that was delivered, and a flood makes
honest users lose messages without knowing it.

Two bursts are sent: 32 DMs past the gateway's limit per connection, and 450 file
chunks past the router's limit per user (after filler on two earlier connections of the
same user empties the user's bucket, which outlives a connection; file frames, unlike
DMs, may not borrow from the spare of signatures).

The connection's limit is reached with binary frames: each costs a token of the
connection's bucket and of the spare every connection shares (issue #18), but, being
refused at once, no place in the queue to the verifiers. Filler the node must check
(heartbeats) is no good: the gateway stops reading a connection while 1,024 of its
frames wait for the router, the buckets refill meanwhile, and the limit is never met.

Frames may wait behind others, so "without an answer" is judged only once the node has
worked through the burst: a LIST_REQUEST sent after it is answered after every frame
before it (a connection's frames take effect in order), and the last coalesced ACK
follows within the ACK interval. Blocked when every frame is acknowledged or named by
an ERROR, and the recipient got exactly the acknowledged ones. With `--mesh-url`, the recipient is a user
of that other node, so every frame also crosses a server link: an ACK must still mean
handed on, and a refusal must still name its frame.

    python poc/silent_drops.py --url ws://127.0.0.1:8765 [--mesh-url ws://127.0.0.1:8766]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable

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
BINARY_BATCH = 50
DRAIN = 20_000           # binary frames that empty a connection's bucket (500, refilled at 200/s) and the
                         # spare all connections share (2,000, refilled at 2,000/s) if sent faster than
                         # about 2,500/s; doubled on each retry
CHUNK_BYTES = 64
ANSWER_WAIT = 60.0       # seconds at most for the node to work through a burst
ACK_GRACE = 2.0          # after that, seconds for the last coalesced ACK (the node's interval is 0.5 s)
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
        async with Collector(alice) as heard:
            await drain_connection(alice, DRAIN * 2**attempt)
            done = await burst_answered(alice, bob, dms, verdict, heard, last_try=attempt == ATTEMPTS - 1)
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
        async with Collector(carol) as heard:
            done = await burst_answered(carol, bob, chunks[1:], verdict, heard, last_try=attempt == ATTEMPTS - 1)
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


class Collector:
    """Reads everything the node sends on one connection while a burst is under way,
    so the sender can look at the answers without stopping to wait for them."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.heard: list[Envelope] = []
        self.closed = False
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        self._task = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        assert self.peer.socket is not None
        try:
            async for text in self.peer.socket:
                self.heard.append(parse(text))
                self.changed.set()
        except ConnectionClosed:
            pass
        self.closed = True
        self.changed.set()

    async def until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until `done()` holds (checked at each frame heard) or `timeout` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done() and not self.closed:
            self.changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return done()


async def drain_connection(peer: Peer, count: int) -> None:
    """Binary frames, as fast as the socket takes them: each costs the connection a token
    (and the spare one, once its own are gone) and is refused without a place in any
    queue. Their answers are not read: the node's error budget keeps most of them back."""
    for sent in range(0, count, BINARY_BATCH):
        for _ in range(BINARY_BATCH):
            await peer.send(b"\x00")
        if sent % 1000 == 0:
            await asyncio.sleep(0)      # let the collector read what came meanwhile


async def burst_answered(sender: Peer, recipient: Peer, dms: list[Envelope], verdict: Verdict,
                         heard: Collector, last_try: bool) -> bool:
    """Send the burst and judge the answers; False (nothing judged) if no frame of it
    was refused, so the limit was not reached, unless this is the last try."""
    refs = [msg_ref(dm) for dm in dms]
    for dm in dms:
        await sender.send(dm)
    worked_through = await probe_answered(sender, heard)
    told = answers(heard.heard, refs)
    if worked_through:
        await heard.until(lambda: len(answers(heard.heard, refs)) == len(refs), ACK_GRACE)
        told = answers(heard.heard, refs)
    delivered = await deliveries(recipient, {dm.payload["ciphertext"] for dm in dms})
    acked = sum(1 for outcome in told.values() if outcome == "acked")
    refused = {outcome for outcome in told.values() if outcome != "acked"}
    silent = len(refs) - len(told)
    verdict.note(f"{acked} acknowledged, {len(told) - acked} refused ({', '.join(sorted(refused)) or '-'}), "
                 f"{silent} without an answer; the recipient got {delivered}"
                 f"{'; connection closed' if heard.closed else ''}"
                 f"{'' if worked_through else f'; the node did not work through the burst in {ANSWER_WAIT:g} s'}")
    if not refused and not silent and not last_try:
        verdict.note("the burst met no limit (a bucket refilled meanwhile): again")
        return False
    verdict.check(silent == 0 and delivered == acked and len(told) > acked,
                  f"every frame of the burst answered: {len(told)} of {len(refs)}; "
                  f"deliveries {delivered} = acknowledged {acked}")
    return True


async def probe_answered(sender: Peer, heard: Collector) -> bool:
    """Whether the node worked through everything sent before: a LIST_REQUEST sent now
    is answered after it. A probe refused for the rate is sent again a moment later."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ANSWER_WAIT
    while loop.time() < deadline and not heard.closed:
        await asyncio.sleep(0.5)                 # the buckets refill a little for the probe
        probe = frames.list_request(sender.peer_id, "*", now_ms())
        ref = msg_ref(probe)
        await sender.send(probe)
        await heard.until(lambda: probe_outcome(heard.heard, ref) != "", deadline - loop.time())  # noqa: B023 - awaited here
        if probe_outcome(heard.heard, ref) == "answered":
            return True
    return False


def probe_outcome(heard: list[Envelope], ref: str) -> str:
    for frame in heard:
        if frame.type == "LIST_RESPONSE":
            return "answered"
        if frame.type == "ERROR" and ref in refs_named(frame.payload):
            return "refused"
    return ""


def answers(heard: list[Envelope], refs: list[str]) -> dict[str, str]:
    """What the sender may conclude about each ref: "acked" (a cumulative ACK covers it
    and no ERROR named it before) or "refused:CODE"."""
    told: dict[str, str] = {}
    for frame in heard:
        if frame.type == "ERROR":
            code = frame.payload.get("code", "?")
            for ref in refs_named(frame.payload):
                if ref in refs:
                    told.setdefault(ref, f"refused:{show(code)}")
        elif frame.type == "ACK" and frame.payload.get("msg_ref") in refs:
            for ref in refs[: refs.index(frame.payload["msg_ref"]) + 1]:
                told.setdefault(ref, "acked")
    return told


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
