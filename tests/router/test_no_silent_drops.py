"""No silent drops (issue #15 item 7): every acknowledged frame a user sends ends in an
ACK that covers it or an ERROR that names it (`msg_ref` or `msg_refs`), and an ERROR
naming a frame reaches the sender before any ACK that would cover it. Refusals of a
burst are named together, so a flood still costs a few signatures (router/refusals.py).
"""

from __future__ import annotations

import pytest

from socp.protocol import frames
from socp.protocol.acks import MAX_MSG_REFS, msg_ref, refs_named
from socp.router import core
from socp.router.abuse_rules import Guard, LimitSettings
from socp.router.core_io import FrameRejected, Tick

from .harness import NOW, Harness, sends, sent_to

BURST = 40


@pytest.fixture
def node(keys) -> Harness:
    harness = Harness(server_key=keys[0])
    # The user's own rate alone, without the spare of idle signatures (issue #18).
    harness.state.guard = Guard(LimitSettings(user_rate=100.0, user_burst=BURST, user_spare=False))
    harness.state.guard.now_ms = NOW
    return harness


def cheap_dm(sender: str, recipient: str, n: int):
    return frames.msg_direct(sender, recipient, NOW, "Y2lwaGVy", "a2V5", f"c2ln{n}")


def drain(node: Harness, user: str, tokens: int) -> None:
    for _ in range(tokens):
        assert node.state.guard.user_buckets.take(user)


def outcomes(sent: list[str], answers: list) -> dict[str, str]:
    """What the sender can conclude for each frame it sent (`sent`, in order) from the
    frames it received (`answers`, in order): "refused:CODE", "acked", or missing."""
    told: dict[str, str] = {}
    for frame in answers:
        if frame.type == "ERROR":
            for ref in refs_named(frame.payload):
                told.setdefault(ref, "refused:" + frame.payload["code"])
        elif frame.type == "ACK":
            upto = sent.index(frame.payload["msg_ref"])
            for ref in sent[: upto + 1]:
                told.setdefault(ref, "acked")   # a cumulative ACK covers what no ERROR named before
    return told


def test_a_refused_burst_names_every_frame_before_the_next_ack(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    drain(node, alice, BURST - 8)    # only 8 frames left in the bucket
    sent, answers, delivered = [], [], 0
    for n in range(32):
        frame = cheap_dm(alice, bob, n)
        sent.append(msg_ref(frame))
        actions = node.feed(a_conn, frame)
        answers += sent_to(actions, a_conn)
        delivered += len(sent_to(actions, b_conn, "USER_DELIVER"))
    # Time passes: the held refusals and the pending ACK go out.
    node.state.now_ms += 1000
    answers += sent_to(core.handle(node.state, Tick()), a_conn)
    told = outcomes(sent, answers)
    assert set(told) == set(sent), f"{len(set(sent) - set(told))} frames were dropped without an answer"
    assert sum(1 for o in told.values() if o == "acked") == delivered == 8
    assert sum(1 for o in told.values() if o == "refused:RATE_LIMITED") == 24
    # One immediate RATE_LIMITED, one that names the rest, ACKs: a handful of signatures.
    assert len(answers) <= 4


def test_the_ack_after_held_refusals_is_preceded_by_their_error(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    _, bob, _ = node.connect_user(keys[2])
    drain(node, alice, BURST)
    refused = [cheap_dm(alice, bob, n) for n in range(3)]
    answers = [f for frame in refused for f in sent_to(node.feed(a_conn, frame), a_conn)]
    assert len(answers) == 1                                    # the first, at once; two held
    node.state.now_ms += 1000                                   # the bucket refills, the ACK is due
    accepted = cheap_dm(alice, bob, 99)
    after = sent_to(node.feed(a_conn, accepted), a_conn)
    assert [f.type for f in after] == ["ERROR", "ACK"]
    assert refs_named(after[0].payload) == [msg_ref(f) for f in refused[1:]]
    assert after[1].payload["msg_ref"] == msg_ref(accepted)


def test_frames_refused_by_the_gateway_or_the_verifier_are_named(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    refs = [f"{n:032x}" for n in range(5)]
    answers = []
    for ref in refs:
        answers += sent_to(core.handle(node.state, FrameRejected(a_conn, "RATE_LIMITED", "too fast", "", ref)), a_conn)
    answers += sent_to(core.handle(node.state, FrameRejected(a_conn, "INVALID_SIG", "bad sig", "MSG_DIRECT",
                                                              "f" * 32)), a_conn)
    node.state.now_ms += 1000
    answers += sent_to(core.handle(node.state, Tick()), a_conn)
    named = {ref: frame.payload["code"] for frame in answers for ref in refs_named(frame.payload)}
    assert named == {**{ref: "RATE_LIMITED" for ref in refs}, "f" * 32: "INVALID_SIG"}
    assert len(answers) == 3                                    # RATE_LIMITED now, INVALID_SIG now, the rest


def test_one_error_names_at_most_max_msg_refs(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    refs = [f"{n:032x}" for n in range(2 * MAX_MSG_REFS + 5)]
    actions = []
    for ref in refs:
        actions += core.handle(node.state, FrameRejected(a_conn, "RATE_LIMITED", "too fast", "", ref))
    # The remainder waits for the interval (one ERROR per code per interval, even on Ticks) ...
    assert sends(core.handle(node.state, Tick()), "ERROR") == []
    node.state.now_ms += node.state.guard.settings.repeat_answer_ms
    actions += core.handle(node.state, Tick())   # ... and is answered on the first Tick after it
    errors = [s.frame for s in sends(actions, "ERROR")]
    assert all(len(refs_named(e.payload)) <= MAX_MSG_REFS for e in errors)
    assert [ref for e in errors for ref in refs_named(e.payload)] == refs
    assert len(errors) == 4                                     # 1 at once, 2 full ones, the remainder


def test_a_closed_connection_forgets_its_held_refusals(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    for n in range(3):
        core.handle(node.state, FrameRejected(a_conn, "RATE_LIMITED", "too fast", "", f"{n:032x}"))
    assert node.state.refusals.held
    node.drop(a_conn)
    assert not node.state.refusals.held
    assert sends(core.handle(node.state, Tick()), "ERROR") == []
