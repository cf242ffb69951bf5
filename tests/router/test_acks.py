"""Cumulative, coalesced ACKs; re-sends re-acknowledged; parking; a restarted router
learning live links (pure core, no sockets)."""

from __future__ import annotations

import pytest

from socp.ipc.messages import ROLE_USER
from socp.protocol import crypto, frames, signing
from socp.protocol.acks import msg_ref
from socp.protocol.ids import new_id
from socp.router import core
from socp.router.core_io import GATEWAY_RESTARTED, LinkDown, LinkRestored, Tick

from .harness import NOW, Harness, errors_to, sent_to
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
