"""The fair share of signatures (router/fairshare.py) as a pure unit: a simulated
verifier pool on a deterministic clock, no sockets, no sleeping."""

from __future__ import annotations

import heapq
from collections import Counter

from socp.router.fairshare import FairShare

SIGN_MS = 4


def simulate(shares: FairShare, arrivals: dict[int, list[str]], until_ms: int) -> dict[str, list[tuple[int, int]]]:
    """Run a pool of `shares.verifiers` verifiers, each signing one job in SIGN_MS.

    `arrivals`: ms -> senders whose frame arrives then (admitted or refused).
    Returns sender -> [(arrival ms, signed ms)] of its admitted jobs; refused frames
    are listed with signed ms -1."""
    done: dict[str, list[tuple[int, int]]] = {}
    free_at = [0] * shares.verifiers                     # when each verifier is next free
    signing: list[tuple[int, int, tuple[str, int]]] = []  # heap of (finishes at, order, job)
    order = 0
    for now in range(until_ms):
        while signing and signing[0][0] <= now:
            _, _, (sender, arrived) = heapq.heappop(signing)
            done.setdefault(sender, []).append((arrived, now))
            shares.signed_jobs(1, SIGN_MS, now)
        for sender in arrivals.get(now, ()):
            if shares.admission_problem(sender) is None:
                shares.push(sender, (sender, now))
            else:
                done.setdefault(sender, []).append((now, -1))
        for job in shares.ready(now):
            # Each job goes to the verifier that frees up first, and waits for it there.
            slot = min(range(len(free_at)), key=free_at.__getitem__)
            free_at[slot] = max(now, free_at[slot]) + SIGN_MS
            heapq.heappush(signing, (free_at[slot], order, job))
            order += 1
    return done


def flood(senders: list[str], every_ms: int, start: int, stop: int) -> dict[int, list[str]]:
    return {t: list(senders) for t in range(start, stop, every_ms)}


def merge(*schedules: dict[int, list[str]]) -> dict[int, list[str]]:
    merged: dict[int, list[str]] = {}
    for schedule in schedules:
        for t, senders in schedule.items():
            merged.setdefault(t, []).extend(senders)
    return merged


def latencies(results: list[tuple[int, int]]) -> list[int]:
    return sorted(signed - arrived for arrived, signed in results if signed >= 0)


def test_a_lone_sender_on_an_idle_node_gets_the_whole_capacity() -> None:
    shares: FairShare = FairShare(verifiers=1, sign_ms=SIGN_MS)
    # 500 jobs at once: 2 s of signing, more than its 1 s of queue; what it may queue, it gets at full speed.
    done = simulate(shares, {0: ["user:bot"] * 500}, until_ms=3000)
    signed = [s for _, s in done["user:bot"] if s >= 0]
    assert len(signed) == shares.share_limit("user:other") == 250
    assert max(signed) <= 250 * SIGN_MS + SIGN_MS     # back to back: nothing left idle


def test_under_contention_nobody_gets_more_than_a_fair_share() -> None:
    """Three flooders at ~4x the capacity each, for 2 s: each gets a third."""
    shares: FairShare = FairShare(verifiers=2, sign_ms=SIGN_MS)
    done = simulate(shares, flood(["user:a", "user:b", "user:c"], 1, 0, 2000), until_ms=4000)
    counts = Counter({sender: len([1 for _, s in results if 0 <= s <= 2000]) for sender, results in done.items()})
    total = sum(counts.values())
    assert total >= 0.95 * 2000 * 2 / SIGN_MS                     # the pool never idles
    assert all(abs(count - total / 3) <= 3 for count in counts.values()), counts


def test_an_honest_sender_waits_for_a_few_signatures_however_many_flood() -> None:
    """30 flooders keep the pool saturated; a DM every 100 ms from an honest user is
    signed within a few signatures' time (fresh senders go first), never refused."""
    flooders = [f"user:flood{i}" for i in range(30)]
    shares: FairShare = FairShare(verifiers=2, sign_ms=SIGN_MS)
    # (The flood is under way when the honest user starts: flooders that arrive in the
    # same instant as it are as fresh as it is, and go first once.)
    schedule = merge(flood(flooders, 10, 0, 3000), {t: ["user:honest"] for t in range(205, 3000, 100)})
    done = simulate(shares, schedule, until_ms=6000)
    honest = done["user:honest"]
    assert all(signed >= 0 for _, signed in honest)                 # never refused
    assert len(honest) == 28
    # A free place in the window, the jobs ahead of it at the pool (2 per verifier), its own.
    assert max(latencies(honest)) <= 4 * SIGN_MS
    refused = sum(1 for sender in flooders for _, s in done[sender] if s < 0)
    assert refused > 0                                                # the flood is refused early


def test_queues_are_bounded_by_time_and_every_admitted_job_is_signed() -> None:
    flooders = [f"user:flood{i}" for i in range(30)]
    shares: FairShare = FairShare(verifiers=2, sign_ms=SIGN_MS, max_wait_ms=500)
    done = simulate(shares, flood(flooders, 5, 0, 2000), until_ms=5000)
    admitted = [lat for sender in flooders for lat in latencies(done[sender])]
    arrived = sum(len(done[sender]) for sender in flooders)
    # Every admitted job was signed (simulate stops long after the flood) ...
    assert len(admitted) == sum(1 for sender in flooders for _, s in done[sender] if s >= 0)
    assert len(shares) == 0 and shares.out == 0
    # ... and none waited much past the bound: work that could not be done in time was refused.
    assert max(admitted) <= 500 + 2 * 30 * SIGN_MS
    assert len(admitted) < arrived


def test_refusal_gives_a_retry_hint_that_grows_with_contention() -> None:
    shares: FairShare = FairShare(verifiers=1, sign_ms=SIGN_MS, max_wait_ms=100, min_queue=1)
    for _ in range(25):
        assert shares.admission_problem("user:a") is None
        shares.push("user:a", "job")
    retry_alone = shares.admission_problem("user:a")
    assert retry_alone is not None and retry_alone > 0
    shares.push("user:b", "job")
    shares.push("user:c", "job")
    retry_shared = shares.admission_problem("user:a")
    assert retry_shared is not None and retry_shared > retry_alone


def test_capacity_is_measured_from_the_verifiers_reports() -> None:
    shares: FairShare = FairShare(verifiers=2, sign_ms=6.0)
    before = shares.capacity_per_s
    for t in range(200):
        shares.signed_jobs(0, 1.5, t)
    assert before < 400 < shares.capacity_per_s <= 2 * 1000 / 1.5 + 1


def test_jobs_lost_with_a_verifier_do_not_close_the_window_for_ever() -> None:
    shares: FairShare = FairShare(verifiers=1, jobs_per_verifier=2, stall_ms=1000)
    for n in range(5):
        shares.push("user:a", n)
    assert shares.ready(0) == [0, 1]
    assert shares.ready(500) == []              # the window is full, no result yet
    assert shares.ready(1001) == [2, 3]         # presumed lost: the queue moves on
    assert shares.presumed_lost == 2


def test_node_frames_sent_directly_take_room_in_the_window() -> None:
    shares: FairShare = FairShare(verifiers=1, jobs_per_verifier=2)
    shares.push("user:a", "dm")
    shares.sent_directly(2)
    assert shares.ready(0) == []
    shares.signed_jobs(1, SIGN_MS, 1)
    assert shares.ready(1) == ["dm"]


# --- admission in the router's core ------------------------------------------------------


def test_a_dm_past_the_senders_share_is_refused_overloaded_naming_it_and_others_still_pass(keys) -> None:
    """The core asks the fair share before it acknowledges a DM: a sender whose queue
    holds its share is refused OVERLOADED (with a retry hint, naming the frame), never
    acknowledged; another sender is admitted meanwhile."""
    from socp.protocol import frames
    from socp.protocol.acks import msg_ref, refs_named
    from socp.router import core
    from socp.router.core_io import Tick

    from .harness import NOW, Harness, sends, sent_to

    node = Harness(server_key=keys[0])
    node.state.fair_share = FairShare(verifiers=1, sign_ms=SIGN_MS, max_wait_ms=20, min_queue=2)
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])

    def send(conn: int, sender: str, to: str, n: int) -> tuple[str, list]:
        frame = frames.msg_direct(sender, to, NOW + n, "Y2lwaGVy", "a2V5", f"c2ln{n}")
        actions = node.feed(conn, frame)
        for send in sends(actions):
            # As the driver does: what the frame makes the node sign for others queues under its sender.
            if all(target != conn for target, _ in send.targets):
                node.state.fair_share.push("user:" + sender, send)
        return msg_ref(frame), actions

    limit = node.state.fair_share.share_limit("user:" + alice)
    assert limit == 5                                     # 20 ms of 250 signatures per second
    answers, delivered = [], 0
    refs = []
    for n in range(limit + 3):
        ref, actions = send(a_conn, alice, bob, n)
        refs.append(ref)
        answers += sent_to(actions, a_conn)
        delivered += len(sent_to(actions, b_conn, "USER_DELIVER"))
    assert delivered == limit
    _, actions = send(b_conn, bob, alice, 100)
    assert len(sent_to(actions, a_conn, "USER_DELIVER")) == 1          # bob's own share is untouched
    node.state.now_ms += 1000
    answers += sent_to(core.handle(node.state, Tick()), a_conn)
    errors = [f for f in answers if f.type == "ERROR"]
    assert {f.payload["code"] for f in errors} == {"OVERLOADED"}
    assert "retry_after_ms=" in errors[0].payload["detail"]
    named = [ref for f in errors for ref in refs_named(f.payload)]
    assert sorted(named) == sorted(refs[limit:])
    acked = [f.payload["msg_ref"] for f in answers if f.type == "ACK"]
    assert acked and all(refs.index(ref) < limit for ref in acked)


# --- answers the node owes a sender, charged to its share (refusals.py) ------------------------


def test_answers_charged_to_many_senders_go_after_a_fresh_senders_frame() -> None:
    """30 flooders' refusal answers fell due at once (issue #15 item 4): charged to
    their senders, they do not go before an honest sender's frame that arrives next."""
    shares: FairShare = FairShare(verifiers=1, jobs_per_verifier=1)
    for n in range(30):
        shares.charge(f"user:flooder{n}", f"answer to flooder {n}")
    shares.push("user:alice", "alice's DM")
    assert shares.ready(0) == ["alice's DM"]
    assert shares.spare_room == 0                  # ACKs wait while answers are queued
    taken = []
    while shares.queued:
        shares.signed_jobs(1, SIGN_MS, 1)
        taken += shares.ready(1)
    assert taken == [f"answer to flooder {n}" for n in range(30)]   # every one, in turn


def test_a_charged_answer_waits_behind_its_senders_own_jobs() -> None:
    shares: FairShare = FairShare(verifiers=1, jobs_per_verifier=4)
    shares.push("user:f", "DM 1")
    shares.charge("user:f", "answer")
    shares.push("user:f", "DM 2")
    assert shares.waiting("user:f") == 3 and shares.waiting("user:g") == 0
    assert shares.ready(0) == ["DM 1", "answer", "DM 2"]
    assert shares.waiting("user:f") == 0
