"""Attack: starve honest users with a flood that costs the attacker nothing (issue #15,
weakness 4).

Many unsigned users sharing one key each send DMs at their own rate limit: one
precomputed ciphertext under a fresh ts, with a garbage `content_sig`. Before the
fix the node signed every delivery (RSA-4096, milliseconds each): honest DMs waited
seconds, some were lost, and a backlog of thousands of frames outlived the flood.

Meanwhile an honest pair exchanges DMs, and the script measures their latency before,
during and after; with `--mesh-url`, honest DMs also cross a link, from a user of that
node to a user of the node flooded and back. Then a second flood whose frames are correctly signed (the attacker
pays a signature per frame, precomputed) is sent in bursts, so the node's signatures
really run short. Blocked when:

- every honest DM is delivered, and the honest p99 during each flood stays under
  BOUND_SIGNATURES times one signature (measured here, on the same machine);
- no garbage DM is delivered, and the flooders are told INVALID_SIG naming their frames
  (then RATE_LIMITED, unchecked, once a connection has failed too many checks);
- every signed flood frame ends acknowledged or named by an ERROR, and the sink
  receives exactly the acknowledged ones (nothing acknowledged is lost);
- after the floods a DM is delivered promptly (no backlog).

    python poc/cheap_flood.py --url ws://127.0.0.1:8765 [--mesh-url ws://127.0.0.1:8766] \\
        [--senders 30 --rate 100 --seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from websockets.exceptions import ConnectionClosed

from _common import Keys, Peer, UsageError, Verdict, healthz, main, now_ms, show, user, wait_listed
from _node_memory import describe_node_rss, node_rss_bytes, port_of
from socp.protocol import crypto, frames, signing
from socp.protocol.acks import msg_ref, refs_named
from socp.protocol.encoding import b64url_encode
from socp.protocol.envelope import parse

BOUND_SIGNATURES = 100     # honest p99 under a flood (and a DM right after), in signatures of this machine
                           # (generous: CI machines are shared; before the fix it was seconds)
HONEST_EVERY_S = 0.1       # the honest pair: one DM every 100 ms
SAMPLE_DMS = 15            # honest DMs before and after the flood
GARBAGE_SIG = b64url_encode(b"\x00" * 512)
TICK_S = 0.05              # the flood is sent in ticks of 50 ms
ANSWER_WAIT_S = 2.0        # for the node's last answers to a flood
DELIVERY_QUIET_S = 3.0    # no new delivery to the sink nor answer to a payer for this long: the rest are lost
DELIVERY_WAIT_S = 20.0    # ...or at most this long after ANSWER_WAIT_S
PAID_SECONDS = 3.0         # the honest pair's DMs while the signed bursts are worked through
T = TypeVar("T")


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--senders", type=int, default=10, help="flooding users (default 10)")
    parser.add_argument("--rate", type=float, default=100.0, help="DMs per second per flooder (default 100)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the cheap flood (default 5)")
    parser.add_argument("--signed-senders", type=int, default=4, help="flooders that sign (default 4)")
    parser.add_argument("--signed-burst", type=int, default=150, help="signed DMs per signed flooder (default 150)")


def median_sign_ms(key: crypto.PrivateKey) -> float:
    times = []
    for n in range(9):
        started = time.perf_counter()
        crypto.sign_pss(key, b"measure %d" % n)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class HonestTraffic:
    """Honest DMs on a few routes (name, sender, recipient), each timed from its send
    to its delivery: alice → bob on the node flooded and, in a mesh, across a link."""

    def __init__(self, routes: list[tuple[str, Peer, Peer]]) -> None:
        self.routes = routes
        self.sent: dict[str, float] = {}             # ciphertext -> when sent
        self.latency_ms: dict[str, float] = {}       # ciphertext -> delivery latency
        self.label: dict[str, tuple[str, str]] = {}  # ciphertext -> (route, phase: before / cheap / paid / after)
        self.garbage_delivered = 0

    def readers(self) -> list[Coroutine[Any, Any, None]]:
        """One loop per socket: recipients note deliveries, senders' ACKs are read so no
        socket backs up (each runs until cancelled)."""
        recipients = {id(r): r for _, _, r in self.routes}
        senders = {id(s): s for _, s, _ in self.routes if id(s) not in recipients}
        return [*(self.receive(peer) for peer in recipients.values()), *(self.drain(peer) for peer in senders.values())]

    async def receive(self, peer: Peer) -> None:
        assert peer.socket is not None
        while True:
            frame = parse(await peer.socket.recv())
            if frame.type == "USER_DELIVER":
                ciphertext = frame.payload.get("ciphertext")
                if ciphertext in self.sent and ciphertext not in self.latency_ms:
                    self.latency_ms[ciphertext] = (time.perf_counter() - self.sent[ciphertext]) * 1000
                elif frame.payload.get("content_sig") == GARBAGE_SIG:
                    self.garbage_delivered += 1

    @staticmethod
    async def drain(peer: Peer) -> None:
        assert peer.socket is not None
        while True:
            await peer.socket.recv()

    async def sample(self, phase: str, count: int) -> None:
        """`count` rounds, one DM on every route each HONEST_EVERY_S."""
        for n in range(count):
            for route, sender, recipient in self.routes:
                dm = sender.dm(recipient.peer_id, recipient.pubkey, f"{route} {phase} {n}".encode())
                ciphertext = dm.payload["ciphertext"]
                self.label[ciphertext] = (route, phase)
                self.sent[ciphertext] = time.perf_counter()
                await sender.send(dm)
            await asyncio.sleep(HONEST_EVERY_S)

    def latencies(self, phase: str, route: str | None = None) -> list[float]:
        return [ms for ct, ms in self.latency_ms.items()
                if self.label[ct][1] == phase and route in (None, self.label[ct][0])]

    def sent_in(self, phase: str, route: str) -> int:
        return sum(1 for label in self.label.values() if label == (route, phase))

    def missing(self) -> int:
        return len(self.sent) - len(self.latency_ms)

    def summary(self, phase: str) -> list[str]:
        lines = []
        for route, _, _ in self.routes:
            values = self.latencies(phase, route)
            lines.append(f"{phase}, {route}: {len(values)}/{self.sent_in(phase, route)} delivered, "
                         f"p50 {p(values, 0.5):.1f} ms, p90 {p(values, 0.9):.1f} ms, p99 {p(values, 0.99):.1f} ms, "
                         f"max {max(values, default=float('nan')):.1f} ms")
        return lines


class Flooder:
    """One connection sending prepared frames at a fixed rate, reading what comes back."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.refs: list[str] = []
        self.told: dict[str, str] = {}        # ref -> "acked" / "refused:CODE"
        self.codes: dict[str, int] = {}

    async def read(self) -> None:
        assert self.peer.socket is not None
        try:
            while True:
                frame = parse(await self.peer.socket.recv())
                if frame.type == "ERROR":
                    code = show(frame.payload.get("code", "?"))
                    for ref in refs_named(frame.payload):
                        self.told.setdefault(ref, "refused:" + code)
                        self.codes[code] = self.codes.get(code, 0) + 1
                elif frame.type == "ACK":
                    ref = frame.payload.get("msg_ref")
                    if ref in self.refs:
                        for earlier in self.refs[: self.refs.index(ref) + 1]:
                            self.told.setdefault(earlier, "acked")
        except ConnectionClosed:
            return


def prepared_garbage(flooders: list[Flooder], target_id: str, target_pub: str, rate: float,
                     seconds: float) -> list[list[str]]:
    """The frames of each 50 ms tick: every flooder's share of one ciphertext with a
    garbage content_sig, each under its own ts (so no frame is a duplicate). Made
    before the flood, as an attacker would: sending them costs nothing."""
    ciphertext = b64url_encode(crypto.oaep_encrypt(crypto.decode_public_key(target_pub), b"flood"))
    per_tick = max(1, round(rate * TICK_S))
    base = now_ms()
    ticks: list[list[tuple[Flooder, str]]] = []
    for step in range(int(seconds / TICK_S)):
        texts = []
        for flooder in flooders:
            peer = flooder.peer
            for n in range(per_tick):
                frame = frames.msg_direct(peer.peer_id, target_id, base + step * per_tick + n, ciphertext,
                                          peer.pubkey, GARBAGE_SIG)
                flooder.refs.append(msg_ref(frame))
                texts.append((flooder, frame.to_wire()))
        ticks.append(texts)
    return ticks


async def send_in_ticks(ticks: list[list[tuple[Flooder, str]]]) -> int:
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    for step, texts in enumerate(ticks):
        for flooder, text in texts:
            await flooder.peer.send(text)
            sent += 1
        await asyncio.sleep(max(0.0, started + (step + 1) * TICK_S - loop.time()))
    return sent


def outcomes(flooders: list[Flooder]) -> Counter[str]:
    """How each frame sent ended, as its sender can tell: acked, refused:CODE, or unanswered."""
    ended: Counter[str] = Counter()
    for flooder in flooders:
        for ref in flooder.refs:
            ended[flooder.told.get(ref, "unanswered")] += 1
    return ended


def pem(key: crypto.PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def unpem(data: bytes) -> crypto.PrivateKey:
    return serialization.load_pem_private_key(data, password=None)  # type: ignore[return-value] - our own RSA keys


def _session(name: str, arguments: tuple, started: Any, results: Any) -> None:
    """In the flood's own process: run one flood, hand back what its senders were told."""
    flood = {"cheap": cheap_flood, "paid": paid_flood}[name]
    results.put(asyncio.run(flood(*arguments, started)))


async def in_own_process(name: str, arguments: tuple, started: Any) -> Any:
    """Run a flood in a process of its own: the honest pair's timings, here, must not
    wait behind the script's own sending (one interpreter sends ~3,000 frames a second)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_session, args=(name, arguments, started, results), daemon=True)
    process.start()
    try:
        return await asyncio.to_thread(results.get, True, 600)
    finally:
        await asyncio.to_thread(process.join, 10)


async def cheap_flood(args: argparse.Namespace, shared_key_pem: bytes, target_id: str, target_pub: str,
                      started: Any) -> tuple[int, Counter[str]]:
    shared_key = unpem(shared_key_pem)
    flooders = []
    for _ in range(args.senders):
        peer = await Peer(args.url, shared_key, timeout=args.timeout).open()
        await peer.hello(signed=False)
        await peer.list_users()
        flooders.append(Flooder(peer))
    ticks = prepared_garbage(flooders, target_id, target_pub, args.rate, args.seconds)
    readers = [asyncio.create_task(f.read()) for f in flooders]
    started.set()
    sent = await send_in_ticks(ticks)
    await asyncio.sleep(ANSWER_WAIT_S)
    for task in readers:
        task.cancel()
    for flooder in flooders:
        await flooder.peer.close()
    return sent, outcomes(flooders)


async def paid_flood(args: argparse.Namespace, key_pems: list[bytes], sink_key_pem: bytes,
                     started: Any) -> tuple[int, Counter[str], int, float]:
    """Signed DMs, precomputed (the attacker pays a signature for each), sent in one
    burst per sender to a sink that counts what it receives."""
    keys, sink_key = [unpem(data) for data in key_pems], unpem(sink_key_pem)
    sink = Peer(args.url, sink_key, timeout=args.timeout)
    await sink.open()
    await sink.hello()
    await sink.list_users()
    payers = []
    for key in keys:
        peer = await Peer(args.url, key, timeout=args.timeout).open()
        await peer.hello()
        await peer.list_users()
        payers.append(Flooder(peer))
    ciphertext = b64url_encode(crypto.oaep_encrypt(crypto.decode_public_key(sink.pubkey), b"paid"))
    bursts = []
    base = now_ms()
    for flooder in payers:
        peer = flooder.peer
        burst = []
        for n in range(args.signed_burst):
            sig = signing.sign_dm(peer.key, ciphertext, peer.peer_id, sink.peer_id, base + n)
            frame = frames.msg_direct(peer.peer_id, sink.peer_id, base + n, ciphertext, peer.pubkey, sig)
            flooder.refs.append(msg_ref(frame))
            burst.append(frame.to_wire())
        bursts.append(burst)
    got: list[int] = [0]
    counting = asyncio.create_task(count_deliveries(sink, got))
    readers = [asyncio.create_task(f.read()) for f in payers]
    started.set()
    for flooder, burst in zip(payers, bursts, strict=False):
        for text in burst:
            await flooder.peer.send(text)
    await asyncio.sleep(ANSWER_WAIT_S)
    sent_at = time.monotonic() - ANSWER_WAIT_S

    def done() -> bool:
        ended = outcomes(payers)
        return ended["unanswered"] == 0 and got[0] >= ended["acked"]

    await settled(lambda: (got[0], sum(len(f.told) for f in payers)), done)
    settle_s = time.monotonic() - sent_at
    for task in (*readers, counting):
        task.cancel()
    for flooder in payers:
        await flooder.peer.close()
    await sink.close()
    return sum(len(b) for b in bursts), outcomes(payers), got[0], settle_s


async def settled(progress: Callable[[], object], done: Callable[[], bool], *, quiet_s: float = DELIVERY_QUIET_S,
                  wait_s: float = DELIVERY_WAIT_S, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Until `done()`, or `progress()` (what has come so far) did not change for `quiet_s`
    (at most `wait_s`): on a busy machine the last acknowledged frames may still be on
    their way, and a flooder's last answers wait behind its own queued frames (they are
    paid from its share, router/refusals.py); late is not lost. What never comes is
    still counted: unanswered, or acknowledged and not delivered."""
    deadline = clock() + wait_s
    last, quiet_since = progress(), clock()
    while not done() and clock() < deadline and clock() - quiet_since < quiet_s:
        await sleep(0.25)
        if progress() != last:
            last, quiet_since = progress(), clock()


async def during(pair: HonestTraffic, phase: str, flood: Awaitable[T], started: Any, seconds: float) -> T:
    """Run `flood` (in its own process) and the honest pair's DMs while it floods."""
    running = asyncio.ensure_future(flood)
    while not started.is_set() and not running.done():
        await asyncio.sleep(0.01)
    await pair.sample(phase, int(seconds / HONEST_EVERY_S))
    return await running


async def honest_routes(args: argparse.Namespace, keys: Keys) -> list[tuple[str, Peer, Peer]]:
    """alice → bob on the node flooded; with --mesh-url also carol (at the first other
    node) → bob and alice → dave (at that node): honest DMs across a link."""
    alice = await user(args.url, keys, args.timeout)
    bob = await user(args.url, keys, args.timeout)
    routes = [("on the node", alice, bob)]
    if args.mesh_url:
        other = args.mesh_url[0]
        carol = await user(other, keys, args.timeout)
        dave = await user(other, keys, args.timeout)
        if not (await wait_listed(carol, bob.peer_id, args.timeout)
                and await wait_listed(alice, dave.peer_id, args.timeout)):
            raise UsageError(f"{args.url} and {other} do not list each other's users: is the mesh linked?")
        routes += [("from the other node", carol, bob), ("to the other node", alice, dave)]
    return routes


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    routes = await honest_routes(args, keys)
    alice, bob = routes[0][1], routes[0][2]
    sig_ms = median_sign_ms(alice.key)
    verdict.note(f"one RSA-4096 signature here: {sig_ms:.2f} ms; bound on the honest p99: "
                 f"{BOUND_SIGNATURES} signatures = {BOUND_SIGNATURES * sig_ms:.0f} ms (timed again after each "
                 f"flood: the machine may be shared)")
    if len(routes) > 1:
        verdict.note(f"honest routes: {', '.join(name for name, _, _ in routes)} ({args.mesh_url[0]})")
    pair = HonestTraffic(routes)
    readers = [asyncio.create_task(reader) for reader in pair.readers()]
    rss_before = healthz(args.url).get("memory_rss_bytes", 0)
    node_before = node_rss_bytes(port_of(args.url))
    try:
        await pair.sample("before", SAMPLE_DMS)
        await asyncio.sleep(0.5)
        for line in pair.summary("before"):
            verdict.note(line)

        # --- the cheap flood: unsigned users sharing one key, garbage content_sig ---------
        verdict.tried(f"{args.senders} unsigned users sharing one key, {args.rate:g} DMs/s each of one "
                      f"ciphertext with a garbage content_sig, for {args.seconds:g} s, while honest users DM")
        started = multiprocessing.get_context("spawn").Event()
        flood = in_own_process("cheap", (args, pem(keys.take()), bob.peer_id, bob.pubkey), started)
        sent, ended = await during(pair, "cheap", flood, started, args.seconds)
        await asyncio.sleep(1.0)
        bound_ms = bound_after(verdict, alice.key, sig_ms)
        verdict.note(f"{sent} garbage DMs sent: {dict(ended)}; bob got {pair.garbage_delivered} of them")
        for line in pair.summary("cheap"):
            verdict.note(line)
        verdict.check(pair.garbage_delivered == 0 and ended["acked"] == 0 and ended["unanswered"] == 0
                      and ended["refused:INVALID_SIG"] > 0
                      and set(ended) <= {"refused:INVALID_SIG", "refused:RATE_LIMITED"},
                      f"no garbage DM delivered or acknowledged, each named in an ERROR "
                      f"({ended['refused:INVALID_SIG']} INVALID_SIG, then {ended['refused:RATE_LIMITED']} "
                      f"RATE_LIMITED unchecked)")
        check_honest(verdict, pair, "cheap", bound_ms)

        # --- a flood that pays: correctly signed DMs, in bursts --------------------------
        verdict.tried(f"{args.signed_senders} users each sending {args.signed_burst} correctly signed DMs "
                      f"at once (the node's signatures run short), while honest users DM")
        payer_keys = [pem(keys.take()) for _ in range(args.signed_senders)]
        started = multiprocessing.get_context("spawn").Event()
        flood = in_own_process("paid", (args, payer_keys, pem(keys.take())), started)
        sent, ended, delivered, settle_s = await during(pair, "paid", flood, started, PAID_SECONDS)
        await asyncio.sleep(1.0)
        bound_ms = bound_after(verdict, alice.key, sig_ms)
        verdict.note(f"{sent} signed DMs: {dict(ended)}; the sink got {delivered} (answers and deliveries "
                     f"looked for until {settle_s:.1f} s after the burst)")
        for line in pair.summary("paid"):
            verdict.note(line)
        verdict.check(ended["unanswered"] == 0 and delivered == ended["acked"],
                      f"every signed DM answered, and the sink got exactly the acknowledged ones "
                      f"({delivered} = {ended['acked']})")
        check_honest(verdict, pair, "paid", bound_ms)

        # --- after: no backlog ---------------------------------------------------------------
        await pair.sample("after", SAMPLE_DMS)
        await asyncio.sleep(1.0)
        for line in pair.summary("after"):
            verdict.note(line)
        for route, _, _ in routes:
            after = pair.latencies("after", route)
            verdict.check(len(after) == SAMPLE_DMS and max(after) <= bound_ms,
                          f"no backlog ({route}): DMs right after the floods delivered within "
                          f"{max(after, default=0):.1f} ms (<= {bound_ms:.0f} ms)")
        verdict.note(f"honest DMs lost overall: {pair.missing()}")
        rss_after = healthz(args.url).get("memory_rss_bytes", 0)
        verdict.note(f"gateway RSS {rss_before / 2**20:.0f} MiB before, {rss_after / 2**20:.0f} MiB after")
        verdict.note(describe_node_rss(node_before, node_rss_bytes(port_of(args.url))))
    finally:
        for task in readers:
            task.cancel()


def bound_after(verdict: Verdict, key: crypto.PrivateKey, sig_before_ms: float) -> float:
    """The bound for the phase just over: BOUND_SIGNATURES signatures, each the slower of
    the one timed before the run and one timed now, once the flood has stopped (other
    jobs on a shared machine may have slowed it since; the flood itself must not)."""
    sig_now_ms = median_sign_ms(key)
    bound_ms = BOUND_SIGNATURES * max(sig_before_ms, sig_now_ms)
    verdict.note(f"one signature after the flood: {sig_now_ms:.2f} ms; bound for it: {bound_ms:.0f} ms")
    return bound_ms


def check_honest(verdict: Verdict, pair: HonestTraffic, phase: str, bound_ms: float) -> None:
    for route, _, _ in pair.routes:
        values = pair.latencies(phase, route)
        sent = pair.sent_in(phase, route)
        verdict.check(len(values) == sent and p(values, 0.99) <= bound_ms,
                      f"every honest DM delivered ({route}: {len(values)}/{sent}), p99 "
                      f"{p(values, 0.99):.1f} ms <= {bound_ms:.0f} ms")


async def count_deliveries(peer: Peer, got: list[int]) -> None:
    assert peer.socket is not None
    while True:
        frame = parse(await peer.socket.recv())
        if frame.type == "USER_DELIVER":
            got[0] += 1


if __name__ == "__main__":
    raise SystemExit(main(run, "cheap flood: honest users keep their share of the node's signatures",
                          extra=options))
