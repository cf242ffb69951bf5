"""`socp bench presence`: N simulated servers x M users against one real node.

Each simulated server joins the node (SERVER_HELLO_JOIN, then the node's
SERVER_WELCOME) and sends the snapshot any server sends a newly linked one: one
signed USER_ADVERTISE per user, with the user's key in `meta` (the same frames the
node's own federation sends, marked `snapshot` so the node keeps them to itself).
A bench user on the node asks LIST_REQUEST until the answer counts every advertised
user: that is the join time of a table of N x M users. A node that could not take an
advert in time says so (ERROR TIMEOUT on the server link, naming no frame): when the
table stops growing short of complete, the bench pages through the list and each
server sends again the adverts the node does not know (at most MAX_RESEND_ROUNDS
times), as a real server would resync. Then the list answer's size and time, and the
node's RSS per known user
(growth of the node processes' RSS from /proc, divided by N x M).

Every advert is signed before the timed phase, on every core (RSA-4096, ~1.3 ms
each): the node must verify each with the simulated server's pinned key, so none
can be reused. Each is stamped 90 s ahead of when it is signed (the node accepts
2 min ahead and 10 min of age), so preparing 100,000 of them (minutes on a busy
machine) leaves the window open for the first.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import websockets

from socp.protocol import crypto, frames, signing
from socp.protocol.ids import new_id
from socp.router.federation import SNAPSHOT_MARK
from socp.runtime import fast_runner

from .drive import Progress
from .keys import KeyPool
from .phase import cores
from .prepare import now_ms
from .procstats import NodeMeter
from .report import BenchResult
from .simulated_users import MAX_MESSAGE_BYTES, BenchUser, signed_hellos
from .targets import POOL_START_METHOD, Target

MAX_SERVERS = 50
MAX_USERS_PER_SERVER = 20_000       # the node's users_per_server cap (router/abuse_rules.py)
AHEAD_MS = 90_000
CHUNK = 256
STALL_S = 3.0              # the table has not grown for this long: find what is missing
MAX_RESEND_ROUNDS = 3
MAX_LIST_PAGES = 1000      # a page holds up to 3,000 users (router/users.py)

_server_keys: tuple[crypto.PrivateKey, ...] = ()


@dataclass(frozen=True, slots=True)
class PresenceOptions:
    servers: int = 10
    users: int = 1000                  # per simulated server
    user_keys: int = 4                 # distinct user keys, shared round-robin
    timeout_s: float = 120.0           # for the table to fill after the last join
    progress: bool = True


def _init_signer(ders: tuple[bytes, ...]) -> None:
    global _server_keys
    _server_keys = tuple(crypto.load_private_key_der(der) for der in ders)


def _sign_adverts(job: tuple[int, str, list[tuple[str, str]]]) -> list[str]:
    """Wire texts of one server's adverts for (user_id, pubkey) pairs, stamped when
    signed: each is as fresh as it can be however long the whole preparation takes."""
    server_index, server_id, users = job
    key = _server_keys[server_index]
    ts = now_ms() + AHEAD_MS
    texts = []
    for user_id, pubkey in users:
        advert = frames.user_advertise(server_id, ts, user_id, {"pubkey": pubkey, SNAPSHOT_MARK: True})
        texts.append(advert.with_sig(signing.transport_signature(key, advert.payload)).to_wire())
    return texts


@dataclass
class SimServer:
    index: int
    key: crypto.PrivateKey
    server_id: str
    adverts: list[str]
    user_ids: list[str] = field(default_factory=list)      # adverts[i] advertises user_ids[i]
    welcomed_s: float = 0.0
    sent_s: float = 0.0
    refused: str = ""
    errors: Counter[str] = field(default_factory=Counter)  # ERROR codes the node sent us
    largest_frame_bytes: int = 0
    resent: int = 0
    # Adverts to send again; None: stop.
    resend: asyncio.Queue[list[str] | None] = field(default_factory=asyncio.Queue)

    def missing_from(self, known: set[str]) -> list[str]:
        return [text for user_id, text in zip(self.user_ids, self.adverts, strict=True) if user_id not in known]


def _prepare(options: PresenceOptions, progress: Progress, server_keys: KeyPool | None,
             user_keys: KeyPool | None) -> tuple[list[SimServer], int]:
    """Server keys, user keys, and every advert signed; returns the servers and the
    count of adverts."""
    processes = cores()
    server_keys = server_keys or KeyPool.generate(options.servers, processes)
    user_keys = user_keys or KeyPool.generate(options.user_keys, processes)
    servers = [SimServer(index, key, new_id(), []) for index, key in enumerate(server_keys.keys[:options.servers])]
    jobs: list[tuple[int, str, list[tuple[str, str]]]] = []
    for server in servers:
        users = [(new_id(), user_keys.public_texts[n % len(user_keys.keys)]) for n in range(options.users)]
        jobs += [(server.index, server.server_id, users[i:i + CHUNK]) for i in range(0, len(users), CHUNK)]
    total = options.servers * options.users
    done = 0
    with multiprocessing.get_context(POOL_START_METHOD).Pool(processes, _init_signer, (server_keys.ders,)) as pool:
        for (server_index, _, users), texts in zip(jobs, pool.imap(_sign_adverts, jobs), strict=True):
            servers[server_index].adverts += texts
            servers[server_index].user_ids += [user_id for user_id, _ in users]
            done += len(texts)
            progress.show(f"signed {done}/{total} adverts")
    return servers, total


async def _join_and_advertise(url: str, server: SimServer, started: float) -> None:
    """Join the node, then send every advert, and again what `server.resend` hands
    over; stay linked until it hands over None."""
    host_port = urlsplit(url).netloc
    public = crypto.encode_public_key(server.key)
    # Port 9 (discard): the node never needs to dial a simulated server back.
    hello = frames.server_hello_join(server.server_id, host_port, now_ms(), "127.0.0.1", 9, public)
    hello = hello.with_sig(signing.transport_signature(server.key, hello.payload))
    async with websockets.connect(url, compression=None, max_size=MAX_MESSAGE_BYTES, ping_interval=None,
                                  close_timeout=1.0) as socket:
        await socket.send(hello.to_wire())
        while True:
            frame = orjson.loads(await socket.recv())
            if frame.get("type") == "SERVER_WELCOME":
                break
            if frame.get("type") == "ERROR":
                server.refused = str(frame.get("payload"))
                return
        assigned = (frame.get("payload") or {}).get("assigned_id")
        if assigned not in (None, server.server_id):
            server.refused = f"the node assigned another id ({assigned}); the signed adverts name ours"
            return
        server.welcomed_s = time.perf_counter() - started

        async def drain() -> None:
            # Heartbeats, announcements of the other servers, refusals: read at once, or
            # the node closes us as a slow consumer (1013).
            async for text in socket:
                server.largest_frame_bytes = max(server.largest_frame_bytes, len(text))
                if '"ERROR"' in text:
                    payload = orjson.loads(text).get("payload") or {}
                    server.errors[str(payload.get("code"))] += 1

        async with asyncio.TaskGroup() as group:
            reader = group.create_task(drain())
            for text in server.adverts:
                await socket.send(text)
            server.sent_s = time.perf_counter() - started
            while (again := await server.resend.get()) is not None:
                for text in again:
                    await socket.send(text)
                server.resent += len(again)
            reader.cancel()


async def _known_users(user: BenchUser) -> set[str]:
    """Every user id the node lists, page by page."""
    known: set[str] = set()
    after = ""
    for _ in range(MAX_LIST_PAGES):
        answer = await user.list_users(timeout=30.0, after=after)
        known.update(answer.get("users") or ())
        after = str(answer.get("next") or "")
        if not after:
            break
    return known


async def _fill_table(user: BenchUser, servers: list[SimServer], expected: int,
                      timeout_s: float) -> tuple[int, int]:
    """Ask the list until it counts `expected` users (or the time is up); when it stops
    growing after every server has sent its adverts, hand each server what the node
    lacks. Returns the users counted and the rounds of re-sending."""
    deadline = time.perf_counter() + timeout_s
    counted, rounds = 0, 0
    grew_at = time.perf_counter()
    while time.perf_counter() < deadline:
        answer = await user.list_users(timeout=30.0)
        now = time.perf_counter()
        total = int(answer.get("total") or len(answer.get("users") or ()))
        if total > counted:
            counted, grew_at = total, now
        if counted >= expected:
            break
        all_sent = all(server.sent_s or server.refused for server in servers)
        if all_sent and now - grew_at >= STALL_S and rounds < MAX_RESEND_ROUNDS:
            known = await _known_users(user)
            for server in servers:
                missing = server.missing_from(known)
                if missing:
                    server.resend.put_nowait(missing)
            rounds += 1
            grew_at = time.perf_counter()
        await asyncio.sleep(0.2)
    return counted, rounds


async def _run(url: str, servers: list[SimServer], total: int, options: PresenceOptions,
               meter: NodeMeter, progress: Progress) -> dict[str, Any]:
    keys = KeyPool.generate(1, 1)
    user = BenchUser(0, url, 0, keys.public_texts[0], hello_sig=signed_hellos(keys.keys, keys.public_texts)[0])
    await user.connect()
    async with asyncio.TaskGroup() as group:
        group.create_task(user.receive(lambda *_: None))
        await user.send_hello()
        await user.admitted(10.0)
        before = (await user.list_users()).get("total") or 0
        rss_before = meter.rss_kib()
        expected = total + int(before or 1)
        started = time.perf_counter()
        joins = [group.create_task(_join_and_advertise(url, server, started)) for server in servers]
        progress.show(f"{len(servers)} servers joining, {total} adverts")
        counted, rounds = await _fill_table(user, servers, expected, options.timeout_s)
        join_s = time.perf_counter() - started
        rss_after = meter.rss_kib()
        asked = time.perf_counter()
        answer = await user.list_users(timeout=30.0)
        list_ms = (time.perf_counter() - asked) * 1000
        list_bytes = len(orjson.dumps(answer))
        for server in servers:
            server.resend.put_nowait(None)
        await asyncio.gather(*joins, return_exceptions=True)
        if user.socket is not None:
            await user.socket.close()
    return {"join_s": join_s, "counted": counted, "expected": expected, "list_ms": list_ms, "resend_rounds": rounds,
            "list_payload_bytes": list_bytes, "list_shown": len(answer.get("users") or ()),
            "truncated": bool(answer.get("truncated")), "rss_before_kib": rss_before, "rss_after_kib": rss_after}


def run_presence(target: Target, options: PresenceOptions, server_keys: KeyPool | None = None,
                 user_keys: KeyPool | None = None) -> BenchResult:
    """`server_keys` (one per server) and `user_keys`: made here when not given."""
    if server_keys is not None:
        options = PresenceOptions(servers=len(server_keys.keys), users=options.users, user_keys=options.user_keys,
                                  timeout_s=options.timeout_s, progress=options.progress)
    options = PresenceOptions(servers=max(1, min(options.servers, MAX_SERVERS)),
                              users=max(1, min(options.users, MAX_USERS_PER_SERVER)),
                              user_keys=max(1, options.user_keys), timeout_s=options.timeout_s,
                              progress=options.progress)
    progress = Progress("bench presence", options.progress)
    meter = NodeMeter(target.data_dirs)
    with progress:
        prepared_at = time.perf_counter()
        servers, total = _prepare(options, progress, server_keys, user_keys)
        prepare_s = time.perf_counter() - prepared_at
        meter.start()
        with fast_runner() as runner:
            measured = runner.run(_run(target.urls[0], servers, total, options, meter, progress))
    result = BenchResult(scenario="presence", urls=list(target.urls),
                         mode=f"{options.servers} simulated servers x {options.users} users",
                         users=total, duration_s=round(measured["join_s"], 2))
    result.fill_processes(meter.stop())
    result.extra["adverts_signed_in_s"] = round(prepare_s, 1)
    result.extra["join_to_complete_table_s"] = round(measured["join_s"], 2)
    result.extra["users_counted_by_list"] = measured["counted"]
    result.extra["users_expected"] = measured["expected"]
    result.extra["welcomed_s"] = [round(s.welcomed_s, 2) for s in servers]
    result.extra["all_adverts_written_s"] = round(max(s.sent_s for s in servers), 2)
    result.extra["resend_rounds"] = measured["resend_rounds"]
    result.extra["adverts_resent"] = sum(s.resent for s in servers)
    result.extra["errors_from_node"] = dict(sum((s.errors for s in servers), Counter()))
    result.extra["largest_frame_to_servers_bytes"] = max(s.largest_frame_bytes for s in servers)
    result.extra["list_answer_ms"] = round(measured["list_ms"], 1)
    result.extra["list_answer_payload_bytes"] = measured["list_payload_bytes"]
    result.extra["list_users_shown"] = measured["list_shown"]
    result.extra["list_truncated"] = measured["truncated"]
    refused = [s.refused for s in servers if s.refused]
    if refused:
        result.notes.append(f"{len(refused)} servers refused: {refused[0]}")
    if measured["counted"] < measured["expected"]:
        result.notes.append(f"the table did not fill within {options.timeout_s:g} s")
    if target.data_dirs:
        grown = measured["rss_after_kib"] - measured["rss_before_kib"]
        result.extra["node_rss_before_MiB"] = round(measured["rss_before_kib"] / 1024, 1)
        result.extra["node_rss_after_MiB"] = round(measured["rss_after_kib"] / 1024, 1)
        result.extra["node_bytes_per_known_user"] = round(grown * 1024 / total)
    else:
        result.notes.append("no --data-dir: node memory is not measured")
    return result
