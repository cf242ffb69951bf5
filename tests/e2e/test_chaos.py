"""Chaos: a steady DM stream between users on two nodes while each actor type is
killed with SIGKILL in turn (supervisord restarts it). Every acknowledged message
must reach its recipient; service must resume within RECOVERY_BOUND seconds.

The users behave as the README asks of a client (support/reliable.py): keep frames
until an ACK covers them, re-send them after a reconnect or a long silence, and
de-duplicate deliveries by msg_ref (here: by ciphertext, which is unique per message).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from support.nodes import processes_mentioning, start_node
from support.reliable import ReliableUser
from support.wsclient import RawUser

pytestmark = pytest.mark.e2e

LINKS = ("--heartbeat-interval", "1", "--link-timeout", "10")
SEND_INTERVAL = 0.1          # each user sends a DM this often
RECOVERY_BOUND = 15.0        # seconds from a kill until a new DM is acknowledged again
SETTLE = 1.5                 # seconds of steady traffic between kills
PHASES = [tuple(p.split('@')) for p in os.environ.get('CHAOS_PHASES', '').split(',') if p] or None


def actor_pid(data_dir, actor: str) -> int | None:
    for line in sorted(processes_mentioning(str(data_dir))):
        if f" actor {actor} " in line:
            return int(line.split(":")[0])
    return None


async def wait_restarted(data_dir, actor: str, old_pid: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = actor_pid(data_dir, actor)
        if pid is not None and pid != old_pid:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{actor} was not restarted")


async def stream(user: ReliableUser, stop: asyncio.Event) -> None:
    counter = 0
    while not stop.is_set():
        if user.connected.is_set():
            counter += 1
            await user.transmit(user.send_dm(counter))
        await asyncio.sleep(SEND_INTERVAL)


def resumed_after(users: list[ReliableUser], killed_at: float) -> float | None:
    """Seconds from the kill until, for every user, a DM sent after it was acknowledged."""
    worst = 0.0
    for user in users:
        times = [e.acked_at for e in user.sent.values() if e.sent_at >= killed_at and e.acked_at]
        if not times:
            return None
        worst = max(worst, min(times) - killed_at)
    return worst


async def test_every_acknowledged_message_survives_killed_actors(keys, tmp_path) -> None:
    a = start_node(tmp_path / "a", keys[0], verifiers=2, extra_args=LINKS)
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(a.bootstrap_yaml())
    b = start_node(tmp_path / "b", keys[5], verifiers=2, extra_args=(*LINKS, "--bootstrap", str(bootstrap)))
    stop = asyncio.Event()
    alice = ReliableUser(RawUser(a.url, keys[1]))
    bob = ReliableUser(RawUser(b.url, keys[2]))
    users = [alice, bob]
    tasks: list[asyncio.Task] = []
    try:
        for user in users:
            await user.start()
        alice.peer_id, alice.peer_pub = bob.raw.user_id, bob.raw.pubkey
        bob.peer_id, bob.peer_pub = alice.raw.user_id, alice.raw.pubkey
        for user in users:   # presence has crossed the link when /list shows the other
            deadline = time.monotonic() + 15
            while user.peer_id not in (await user.raw.list_users()).payload["users"]:
                assert time.monotonic() < deadline, "presence did not converge"
                await asyncio.sleep(0.2)
        for user in users:
            tasks += [asyncio.create_task(user.read_forever()), asyncio.create_task(user.keep_connected(stop)),
                      asyncio.create_task(stream(user, stop))]
        await asyncio.sleep(SETTLE)

        recovery: list[tuple[str, str, float]] = []
        kills: list[tuple[str, str, float]] = []
        phases = (
            [(n, {"a": a, "b": b}[w]) for n, w in PHASES]
            if PHASES
            else [
                ("gateway", b),
                ("verifier", a),
                ("router", b),
                ("store", a),
                ("router", a),
                ("gateway", a),
                ("verifier", b),
                ("store", b),
            ]
        )
        for actor, node in phases:
            pid = actor_pid(node.data_dir, actor)
            assert pid is not None, f"no {actor} on {node.data_dir.name}"
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            await wait_restarted(node.data_dir, actor, pid)
            while (took := resumed_after(users, killed_at)) is None:
                assert time.monotonic() - killed_at < RECOVERY_BOUND, f"{actor} on {node.data_dir.name}: no recovery"
                await asyncio.sleep(0.1)
            recovery.append((actor, node.data_dir.name, took))
            kills.append((actor, node.data_dir.name, killed_at))
            await asyncio.sleep(SETTLE)

        stop.set()
        deadline = time.monotonic() + 20  # the last frames: acknowledged, or refused
        while any(user.unacked() for user in users) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # the last deliveries
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node in (b, a):
            node.stop()
        if os.environ.get("CHAOS_LOGS"):
            for node in (a, b):
                (tmp_path / f"{node.data_dir.name}.log").write_text("".join(node.output))
                print("LOG", tmp_path / f"{node.data_dir.name}.log")

    report = []
    for user, other in ((alice, bob), (bob, alice)):
        acked = [e for e in user.sent.values() if e.acked_at is not None]
        refused = [e for e in user.sent.values() if e.refused]
        lost = [e.ref for e in acked if other.delivered[e.ciphertext] == 0]
        duplicates = sum(n - 1 for n in other.delivered.values() if n > 1)
        report.append(
            f"{user is alice and 'alice(a)->bob(b)' or 'bob(b)->alice(a)'}: sent {len(user.sent)}, "
            f"acknowledged {len(acked)}, refused {len(refused)}, delivered {len(other.delivered)} "
            f"distinct ({duplicates} duplicate copies dropped by the client), reconnects "
            f"{user.reconnects}"
        )
        if lost:
            for e in user.sent.values():
                if e.ref in lost:
                    near = [(k[0], k[1], round(e.sent_at - k[2], 2)) for k in kills if -3 < e.sent_at - k[2] < 10]
                    print("LOST", user is alice, round(e.acked_at - e.sent_at, 2), near)
        assert not lost, f"{len(lost)} acknowledged messages never delivered"
        assert len(acked) > 100
    print("\n" + "\n".join(report))
    print(
        "recovery (kill -> a new DM acknowledged both ways): "
        + ", ".join(f"{actor}@{node} {took:.1f}s" for actor, node, took in recovery)
    )
