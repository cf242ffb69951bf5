"""Refused frames do not buy signatures (router/abuse_rules.py, user_acks.py): the rate limits
are charged before the replay checks, and the same refusal is answered at most once
per interval per connection, however many stale or copied frames arrive."""

from __future__ import annotations

import pytest

from socp.ipc.link_state import LinkState
from socp.protocol import frames
from socp.protocol.acks import MAX_MSG_REFS
from socp.protocol.ids import new_id
from socp.router import abuse_rules, core
from socp.router.abuse_rules import Guard, LimitSettings
from socp.router.core_io import FrameRejected, Tick
from socp.router.peer_links import PeerLink
from socp.router.seen import SeenCache

from .harness import NOW, Harness, sends, sent_to

INTERVAL_MS = 1000


@pytest.fixture
def node(keys) -> Harness:
    harness = Harness(server_key=keys[0])
    # The user's own rate alone, without the spare of idle signatures (issue #18).
    harness.state.guard = Guard(LimitSettings(user_rate=100.0, user_burst=300, repeat_answer_ms=INTERVAL_MS,
                                               user_spare=False))
    harness.state.guard.now_ms = NOW
    return harness


def cheap_dm(sender: str, recipient: str, ts: int, n: int = 0):
    """A DM whose content the router never checks (it does not decrypt nor verify it)."""
    return frames.msg_direct(sender, recipient, ts, "Y2lwaGVy", "a2V5", f"c2ln{n}")


def signed_frames(actions) -> int:
    """What the node must sign for these actions: every frame it sends is signed."""
    return len(sends(actions))


def test_a_flood_of_stale_frames_gets_a_few_errors_and_empties_the_bucket(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    _, bob, _ = node.connect_user(keys[2])
    stale_ts = NOW - abuse_rules.MAX_AGE_MS - 1
    answers = []
    for n in range(1000):
        answers += node.feed(a_conn, cheap_dm(alice, bob, stale_ts - n, n))
    codes = [f.payload["code"] for f in sent_to(answers, a_conn, "ERROR")]
    assert codes == ["REPLAY", "RATE_LIMITED"]          # one of each kind, not 1000
    assert signed_frames(answers) == 2
    # Not answered at once: the stale frames past the first, and the refused ones past the first.
    assert node.state.guard.unanswered_refusals == (300 - 1) + (700 - 1)
    # The stale frames were charged: a fresh one now waits for the bucket too.
    assert sent_to(node.feed(a_conn, cheap_dm(alice, bob, NOW, 5000)), a_conn, "USER_DELIVER") == []
    # Once the interval has passed, the next stale frame is answered again, and that
    # ERROR names every stale frame not answered yet (no silent drops).
    node.state.now_ms += INTERVAL_MS
    again = node.feed(a_conn, cheap_dm(alice, bob, node.state.now_ms - abuse_rules.MAX_AGE_MS - 1, 6000))
    (replay,) = sent_to(again, a_conn, "ERROR")
    assert replay.payload["code"] == "REPLAY" and len(replay.payload["msg_refs"]) == 300
    # The next Tick names the rate-limited ones, in one more ERROR.
    (limited,) = sent_to(core.handle(node.state, Tick()), a_conn, "ERROR")
    assert limited.payload["code"] == "RATE_LIMITED" and len(limited.payload["msg_refs"]) == 700


def test_copies_of_a_handed_on_frame_are_answered_once_then_by_the_next_ack(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    frame = cheap_dm(alice, bob, NOW)
    first = node.feed(a_conn, frame)
    assert sent_to(first, b_conn, "USER_DELIVER") and sent_to(first, a_conn, "ACK")
    answers = []
    for _ in range(200):
        answers += node.feed(a_conn, frame)
    assert [f.payload["code"] for f in sent_to(answers, a_conn, "ERROR")] == ["REPLAY"]
    assert sent_to(answers, b_conn) == []                # never delivered twice
    assert signed_frames(answers) == 1
    # The rest are said by the connection's next ACK (it names the copy: handed on).
    node.state.now_ms += node.state.timing.ack_interval_ms
    (ack,) = sent_to(core.handle(node.state, Tick()), a_conn, "ACK")
    assert ack.payload["msg_ref"] == sent_to(answers, a_conn, "ERROR")[0].payload["msg_ref"]


def test_stale_frames_of_a_type_without_acks_are_answered_once_per_interval(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    answers = []
    for n in range(50):
        answers += node.feed(
            a_conn, frames.directory_get(alice, node.server_id, NOW - abuse_rules.MAX_AGE_MS - 1 - n, alice)
        )
    assert [f.payload["code"] for f in sent_to(answers, a_conn, "ERROR")] == ["REPLAY"]
    assert node.state.guard.unanswered_refusals == 49
    assert abuse_rules.STALE in {refusal for _, refusal in node.state.guard.answered}


# --- the duplicate cache's watermark (router/seen.py) ----------------------------------------


def test_seen_cache_refuses_what_it_had_to_evict() -> None:
    seen = SeenCache(max_entries=3)
    assert seen.check_and_add((NOW, "a"), NOW, ts=NOW)
    for n in range(1, 4):  # a flood pushes the first entry out...
        assert seen.check_and_add((NOW + n, "b"), NOW + n, ts=NOW + n)
    assert seen.evicted == 1 and seen.watermark_ms == NOW
    assert not seen.check_and_add((NOW, "a"), NOW + 10, ts=NOW)  # ...its copy is still refused
    assert not seen.check_and_add((NOW - 5, "c"), NOW + 10, ts=NOW - 5)  # so is anything older
    assert seen.check_and_add((NOW + 1, "c"), NOW + 10, ts=NOW + 1)  # newer frames go on
    # A ts ahead of our clock counts as when we saw it: it cannot lock out the present.
    ahead = SeenCache(max_entries=1)
    ahead.check_and_add((NOW + 100_000, "x"), NOW, ts=NOW + 100_000)
    ahead.check_and_add((NOW + 1, "y"), NOW + 1, ts=NOW + 1)
    assert ahead.watermark_ms == NOW and ahead.check_and_add((NOW + 2, "z"), NOW + 2, ts=NOW + 2)


def test_a_copy_of_an_evicted_frame_is_not_delivered_again(node, keys) -> None:
    node.state.seen = SeenCache(max_entries=5)
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    original = cheap_dm(alice, bob, NOW)
    assert sent_to(node.feed(a_conn, original), b_conn, "USER_DELIVER")
    for n in range(1, 6):
        node.feed(a_conn, cheap_dm(alice, bob, NOW + n, n))
    node.state.now_ms += 2 * INTERVAL_MS
    copy = node.feed(a_conn, original)
    assert sent_to(copy, b_conn) == []
    (error,) = sent_to(copy, a_conn, "ERROR")
    assert error.payload["code"] == "REPLAY" and "window" in error.payload["detail"]


# --- file transfers relayed by a server (abuse_rules.file_problem) --------------------------------


def test_relayed_file_transfers_are_bounded_like_local_ones(node, keys) -> None:
    node.state.guard = Guard(LimitSettings(transfers_per_sender=2, transfer_idle_ms=1000))
    node.state.guard.now_ms = NOW
    b_conn, bob, _ = node.connect_user(keys[2])
    peer, s_conn = new_id(), 50
    node.state.links[s_conn] = PeerLink(conn=s_conn, state=LinkState.JOINED, peer_id=peer)
    node.state.servers[peer] = s_conn
    carol = new_id()  # a user of the peer server

    def relay(frame):
        actions = node.feed(s_conn, frame)
        return [f.type for f in sent_to(actions, b_conn)], [
            f.payload["code"] for f in sent_to(actions, s_conn, "ERROR")
        ]

    starts = [frames.file_start(carol, bob, NOW + n, f"f{n}", "a", 1, "ab" * 32, "dm") for n in range(3)]
    assert relay(starts[0]) == (["FILE_START"], []) and relay(starts[1]) == (["FILE_START"], [])
    assert relay(starts[2]) == ([], ["RATE_LIMITED"])  # a third unfinished one: refused
    assert relay(frames.file_chunk(carol, bob, NOW + 5, "nope", 0, "Yw")) == ([], ["FORBIDDEN"])
    assert relay(frames.file_end(carol, bob, NOW + 6, "f0")) == (["FILE_END"], [])
    # Transfers that never end are forgotten when idle; their chunks go nowhere.
    node.state.now_ms += 2000
    core.handle(node.state, Tick())
    assert relay(frames.file_chunk(carol, bob, node.state.now_ms, "f1", 0, "Yw")) == ([], ["FORBIDDEN"])
    # A server cannot use up the quota of one of our own users by naming it.
    assert node.state.guard.transfers.keys() <= {"relayed:" + carol}


def test_a_ts_behind_and_a_ts_ahead_are_different_refusals(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    _, bob, _ = node.connect_user(keys[2])
    old = node.feed(a_conn, cheap_dm(alice, bob, NOW - abuse_rules.MAX_AGE_MS - 1, 1))
    ahead = node.feed(a_conn, cheap_dm(alice, bob, NOW + abuse_rules.MAX_SKEW_AHEAD_MS + 1, 2))
    assert [f.payload["code"] for f in sent_to(old + ahead, a_conn, "ERROR")] == ["REPLAY", "REPLAY"]


# --- the node's budget of answers to held refusals (refusals.py) ------------------------------


def test_many_refused_connections_share_the_nodes_budget_of_answers_and_none_is_forgotten(keys) -> None:
    """Before: 30 flooding connections cost 60 signed ERRORs a second, in bursts that
    honest frames waited behind (issue #15 item 4). Now at most the node's budget;
    the longest waiting are answered first, and every refused frame is named."""
    node = Harness(server_key=keys[0])
    node.state.guard = Guard(LimitSettings(repeat_answer_ms=INTERVAL_MS, refusal_answer_rate=4.0,
                                           refusal_answer_burst=4))
    node.state.guard.now_ms = NOW
    flooders = [node.connect_user(keys[1])[0] for _ in range(10)]
    refs = {conn: [f"ref-{conn}-{n}" for n in range(3)] for conn in flooders}
    named: dict[int, list[str]] = {conn: [] for conn in flooders}

    def note(actions) -> int:
        errors = 0
        for conn in flooders:
            for error in sent_to(actions, conn, "ERROR"):
                named[conn] += error.payload.get("msg_refs", [error.payload["msg_ref"]])
                errors += 1
        return errors

    first = []
    for n in range(3):
        for conn in flooders:
            first += core.handle(node.state, FrameRejected(conn, "RATE_LIMITED", "budget spent", "MSG_DIRECT",
                                                           refs[conn][n]))
    assert note(first) == 4                          # the budget's burst, not one per connection
    answered_first = [conn for conn in flooders if named[conn]]
    assert answered_first == flooders[:4]
    # Each Tick, a second later, answers what the budget refilled, longest waiting first.
    answered_per_tick = []
    for _ in range(3):
        node.state.now_ms += INTERVAL_MS
        node.state.guard.now_ms = node.state.now_ms
        before = {conn for conn in flooders if named[conn]}
        answered_per_tick.append(note(core.handle(node.state, Tick())))
        newly = {conn for conn in flooders if named[conn]} - before
        assert newly <= set(flooders[4:])            # those never answered go before the rest
    assert answered_per_tick == [4, 4, 2]            # 6 never answered, then the first 4 again
    assert all(sorted(named[conn]) == sorted(refs[conn]) for conn in flooders)   # every frame named once


def test_refusal_answers_are_charged_to_the_refused_sender(node, keys) -> None:
    """They wait in that sender's queue of the fair share (fairshare.py), not in front
    of every sender's frames; an ACK flushing held ones waits behind them there."""
    a_conn, alice, _ = node.connect_user(keys[1])
    _, bob, _ = node.connect_user(keys[2])
    (first,) = sends(core.handle(node.state, FrameRejected(a_conn, "RATE_LIMITED", "throttled", "MSG_DIRECT", "r1")))
    assert first.charged_to == "user:" + alice and first.frame.payload["msg_ref"] == "r1"
    assert core.handle(node.state, FrameRejected(a_conn, "RATE_LIMITED", "throttled", "MSG_DIRECT", "r2")) == []
    node.state.now_ms += node.state.timing.ack_interval_ms
    answers = sends(node.feed(a_conn, cheap_dm(alice, bob, node.state.now_ms)))
    named, ack = [s for s in answers if s.targets[0][0] == a_conn]
    assert (named.frame.type, named.frame.payload["msg_ref"], ack.frame.type) == ("ERROR", "r2", "ACK")
    assert named.charged_to == ack.charged_to == "user:" + alice


def test_a_batch_of_refused_frames_is_named_in_order_and_never_past_max_msg_refs(node, keys) -> None:
    """The gateway reports its throttle's refusals a batch at a time (ipc Rejected
    earlier_refs): one event, every frame named, each ERROR within MAX_MSG_REFS."""
    a_conn, alice, _ = node.connect_user(keys[1])
    batch = [f"r{n}" for n in range(5)]
    (first,) = sent_to(core.handle(node.state, FrameRejected(a_conn, "RATE_LIMITED", "throttled", "MSG_DIRECT",
                                                             batch[-1], tuple(batch[:-1]))), a_conn, "ERROR")
    assert first.payload["msg_refs"] == batch and first.payload["msg_ref"] == "r4"
    big = [f"b{n}" for n in range(MAX_MSG_REFS + 10)]
    held_before = node.state.refusals.held_refs
    (full,) = sent_to(core.handle(node.state, FrameRejected(a_conn, "RATE_LIMITED", "throttled", "MSG_DIRECT",
                                                            big[-1], tuple(big[:-1]))), a_conn, "ERROR")
    assert full.payload["msg_refs"] == big[:MAX_MSG_REFS]                 # the rest wait for the interval
    assert node.state.refusals.held_refs == held_before + 10               # and are counted as held
    node.state.now_ms += INTERVAL_MS
    (rest,) = sent_to(core.handle(node.state, Tick()), a_conn, "ERROR")
    assert rest.payload["msg_refs"] == big[MAX_MSG_REFS:]
