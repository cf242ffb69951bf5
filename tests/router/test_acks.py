"""Cumulative, coalesced ACKs; re-sends re-acknowledged; parking; a restarted router
learning live links (pure core, no sockets)."""

from __future__ import annotations

import pytest

from socp.ipc.messages import ROLE_USER
from socp.protocol import crypto, frames, signing
from socp.protocol.acks import msg_ref
from socp.protocol.ids import new_id
from socp.router import abuse_rules, core, user_acks
from socp.router.abuse_rules import Guard, LimitSettings
from socp.router.core_io import GATEWAY_RESTARTED, LinkDown, LinkRestored, Tick

from .harness import NOW, Harness, errors_to, sent_to
from .test_refusals import cheap_dm
from .test_users import dm


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def tick(node: Harness, after_ms: int = 1000):
    node.state.now_ms += after_ms
    return core.handle(node.state, Tick())


def acks_to(actions, conn: int) -> list[str]:
    return [f.payload["msg_ref"] for f in sent_to(actions, conn, "ACK")]


def test_msg_ref_is_the_duplicate_key_as_text(keys) -> None:
    frame = dm(keys[1], new_id(), keys[2], new_id())
    assert msg_ref(frame) == msg_ref(frames.msg_direct(frame.from_, frame.to, frame.ts, **frame.payload))
    later = dm(keys[1], frame.from_, keys[2], frame.to, ts=frame.ts + 1)
    assert msg_ref(later) != msg_ref(frame) and len(msg_ref(frame)) == 32


def test_one_cumulative_ack_per_connection_per_interval(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    interval = node.state.timing.ack_interval_ms
    sent = [dm(keys[1], alice, keys[2], bob, text=b"%d" % i, ts=NOW + i) for i in range(5)]
    first = node.feed(a_conn, sent[0])
    assert sent_to(first, b_conn, "USER_DELIVER")
    assert acks_to(first, a_conn) == [msg_ref(sent[0])]       # the first frame: acknowledged at once
    for frame in sent[1:]:
        actions = node.feed(a_conn, frame)
        assert sent_to(actions, b_conn, "USER_DELIVER") and acks_to(actions, a_conn) == []
    assert acks_to(tick(node, after_ms=interval // 5), a_conn) == []   # the interval has not passed
    due = tick(node, after_ms=interval)
    assert acks_to(due, a_conn) == [msg_ref(sent[-1])]        # one ACK covers the other four
    assert acks_to(due, b_conn) == []                        # bob sent nothing
    later = dm(keys[1], alice, keys[2], bob, text=b"later", ts=NOW + 10)
    assert acks_to(node.feed(a_conn, later), a_conn) == []    # an ACK went out just now: wait
    assert acks_to(tick(node, after_ms=interval), a_conn) == [msg_ref(later)]
    assert acks_to(tick(node), a_conn) == []                 # nothing new, nothing sent


def test_each_connection_keeps_its_own_ack_interval(node, keys) -> None:
    # ACKs of busy senders are spread in time, never one burst of signatures per tick.
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    interval = node.state.timing.ack_interval_ms
    assert acks_to(node.feed(a_conn, dm(keys[1], alice, keys[2], bob, ts=NOW)), a_conn)
    node.state.now_ms += interval // 2
    assert acks_to(node.feed(b_conn, dm(keys[2], bob, keys[1], alice, ts=NOW + 1)), b_conn)
    node.feed(a_conn, dm(keys[1], alice, keys[2], bob, ts=NOW + 2))
    node.feed(b_conn, dm(keys[2], bob, keys[1], alice, ts=NOW + 3))
    half_way = tick(node, after_ms=interval // 2)
    assert acks_to(half_way, a_conn) and not acks_to(half_way, b_conn)
    assert acks_to(tick(node, after_ms=interval // 2), b_conn)


def test_a_resent_frame_is_answered_replay_naming_it_and_not_delivered_again(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    frame = dm(keys[1], alice, keys[2], bob)
    node.feed(a_conn, frame)
    again = node.feed(a_conn, frame)
    (error,) = sent_to(again, a_conn, "ERROR")
    assert (error.payload["code"], error.payload["msg_ref"]) == ("REPLAY", msg_ref(frame))
    assert not sent_to(again, b_conn)


def test_a_refused_frame_is_named_in_its_error_and_may_be_sent_again(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    nobody = new_id()
    frame = dm(keys[1], alice, keys[2], nobody)
    (error,) = sent_to(node.feed(a_conn, frame), a_conn, "ERROR")
    assert error.payload["code"] == "USER_NOT_FOUND" and error.payload["msg_ref"] == msg_ref(frame)
    assert acks_to(tick(node), a_conn) == []
    b_conn, _, _ = node.connect_user(keys[2], user_id=nobody)
    accepted = node.feed(a_conn, frame)
    assert sent_to(accepted, b_conn, "USER_DELIVER")   # not a "duplicate"
    assert acks_to(accepted, a_conn) == [msg_ref(frame)]


def test_frames_for_a_user_lost_with_the_gateway_wait_for_it(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    core.handle(node.state, LinkDown(b_conn, GATEWAY_RESTARTED))
    frame = dm(keys[1], alice, keys[2], bob)
    parked = node.feed(a_conn, frame)
    assert not errors_to(parked, a_conn)
    assert acks_to(parked, a_conn) == [msg_ref(frame)]        # parked counts as handed on
    new_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    (deliver,) = sent_to(actions, new_conn, "USER_DELIVER")
    assert deliver.payload["ciphertext"] == frame.payload["ciphertext"]


def test_parked_frames_are_given_up_after_the_grace_period(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    core.handle(node.state, LinkDown(b_conn, GATEWAY_RESTARTED))
    tick(node, after_ms=node.state.timing.park_ms + 1)
    assert errors_to(node.feed(a_conn, dm(keys[1], alice, keys[2], bob)), a_conn) == ["USER_NOT_FOUND"]


def test_a_restarted_router_readmits_replayed_users(node, keys) -> None:
    bob_key = keys[2]
    bob = new_id()
    hello = signing.sign_envelope(bob_key, frames.user_hello(bob, None, NOW, crypto.encode_public_key(bob_key)))
    core.handle(node.state, LinkRestored(7, ROLE_USER, hello.to_wire(), ""))
    assert node.state.local_users[bob] == 7
    a_conn, alice, _ = node.connect_user(keys[1])
    assert sent_to(node.feed(a_conn, dm(keys[1], alice, bob_key, bob)), 7, "USER_DELIVER")
    assert core.handle(node.state, LinkRestored(7, ROLE_USER, hello.to_wire(), "")) == []   # once only


# --- ACKs are the node's lowest-priority signatures (issue #18) ------------------------------


def backlog(node: Harness) -> None:
    """A sender's frame waits for the signing pool: its window is full, one more queued."""
    shares = node.state.fair_share
    shares.out = shares.window
    shares.push("user:flooder", "a frame to sign")


def pool_drained(node: Harness) -> None:
    shares = node.state.fair_share
    shares.signed_jobs(shares.out, 0, node.state.now_ms)
    shares.ready(node.state.now_ms)
    shares.signed_jobs(shares.out, 0, node.state.now_ms)


def test_an_idle_pool_leaves_acks_as_they_were(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    assert node.state.fair_share.spare_room == node.state.fair_share.window
    frame = cheap_dm(alice, bob, NOW)
    assert acks_to(node.feed(a_conn, frame), a_conn) == [msg_ref(frame)]      # at once
    later = cheap_dm(alice, bob, NOW + 1)
    node.feed(a_conn, later)
    assert acks_to(tick(node, after_ms=node.state.timing.ack_interval_ms), a_conn) == [msg_ref(later)]
    assert not node.state.acks_waiting


def test_a_backlogged_pool_holds_acks_back_and_coalesces_them(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    backlog(node)
    assert node.state.fair_share.spare_room == 0
    sent = [cheap_dm(alice, bob, NOW + i, n=i) for i in range(5)]
    held = [action for frame in sent for action in node.feed(a_conn, frame)]
    assert len(sent_to(held, b_conn, "USER_DELIVER")) == 5 and acks_to(held, a_conn) == []
    # Intervals pass; still backlogged: still no ACK, and sending stopped costing them.
    for _ in range(4):
        assert acks_to(tick(node), a_conn) == []
    assert list(node.state.acks_waiting) == [a_conn]
    assert user_acks.send_waiting(node.state) == []                 # no room yet
    pool_drained(node)
    (ack,) = sent_to(user_acks.send_waiting(node.state), a_conn, "ACK")
    assert ack.payload["msg_ref"] == msg_ref(sent[-1])              # one ACK covers all five
    assert not node.state.acks_waiting and not node.state.pending_acks


def test_waiting_acks_take_only_the_room_the_pool_has_oldest_first(node, keys) -> None:
    users = [node.connect_user(keys[1]) for _ in range(3)]
    b_conn, bob, _ = node.connect_user(keys[2])
    backlog(node)
    for offset, (conn, user, _) in enumerate(users):
        node.state.now_ms += 10
        node.feed(conn, cheap_dm(user, bob, NOW + offset))
    pool_drained(node)
    node.state.fair_share.out = node.state.fair_share.window - 2    # two free places in the window
    released = user_acks.send_waiting(node.state)
    assert [conn for conn, _, _ in users if acks_to(released, conn)] == [users[0][0], users[1][0]]
    assert list(node.state.acks_waiting) == [users[2][0]]


def test_no_connection_waits_longer_than_the_max_delay_for_its_ack(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    max_delay = node.state.timing.ack_max_delay_ms
    backlog(node)
    first = cheap_dm(alice, bob, NOW)
    node.feed(a_conn, first)
    last = None
    for step in range(1, max_delay // 1000):              # a DM a second, ACKs held all along
        last = cheap_dm(alice, bob, NOW + step, n=step)
        assert acks_to(node.feed(a_conn, last), a_conn) == []
        assert acks_to(tick(node), a_conn) == []
    assert last is not None
    (ack,) = sent_to(tick(node), a_conn, "ACK")           # max_delay after the first: sent anyway
    assert ack.payload["msg_ref"] == msg_ref(last)
    assert node.state.fair_share.spare_room == 0           # though the pool is still backlogged


def test_refused_frames_are_named_before_a_held_ack_that_covers_them(node, keys) -> None:
    node.state.guard = Guard(LimitSettings(repeat_answer_ms=10_000, user_spare=False))
    node.state.guard.now_ms = NOW
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    backlog(node)
    node.feed(a_conn, cheap_dm(alice, bob, NOW, n=1))
    stale = NOW - abuse_rules.MAX_AGE_MS - 1
    assert errors_to(node.feed(a_conn, cheap_dm(alice, bob, stale, n=2)), a_conn) == ["REPLAY"]
    refused = cheap_dm(alice, bob, stale, n=3)
    assert node.feed(a_conn, refused) == []               # held: one ERROR per interval (refusals.py)
    handed_on = cheap_dm(alice, bob, NOW + 2, n=4)
    node.feed(a_conn, handed_on)
    node.state.now_ms += node.state.timing.ack_interval_ms
    pool_drained(node)
    released = user_acks.send_waiting(node.state)
    kinds = [(f.type, f.payload.get("msg_ref")) for f in sent_to(released, a_conn)]
    assert kinds == [("ERROR", msg_ref(refused)), ("ACK", msg_ref(handed_on))]


def test_an_ack_waiting_for_a_connection_that_closed_is_forgotten(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    backlog(node)
    node.feed(a_conn, cheap_dm(alice, bob, NOW))
    node.drop(a_conn)
    pool_drained(node)
    assert user_acks.send_waiting(node.state) == [] and not node.state.acks_waiting
