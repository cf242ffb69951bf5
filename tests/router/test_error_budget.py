"""An ERROR costs the node a signature (router/defences.py, error_affordable): the
answers to a connection's frames get ERRORs within its budget only, except an ERROR
naming a frame (msg_ref), which always goes so that no ACK covers a refused frame."""

from __future__ import annotations

from socp.router import core
from socp.router.abuse_rules import Guard, LimitSettings
from socp.router.core_io import FrameRejected

from .harness import NOW, Harness, sent_to


def _node(keys) -> Harness:
    harness = Harness(server_key=keys[0])
    harness.state.guard = Guard(LimitSettings(error_rate=0.001, error_burst=3))
    harness.state.guard.now_ms = NOW
    return harness


def test_unnamed_errors_beyond_the_budget_are_left_out(keys) -> None:
    node = _node(keys)
    conn, _, _ = node.connect_user(keys[1])
    answered = [len(sent_to(node.reject(conn, "INVALID_SIG"), conn, "ERROR")) for _ in range(5)]
    assert answered == [1, 1, 1, 0, 0]
    assert node.state.guard.dropped_errors == 2


def test_an_error_naming_a_frame_goes_after_the_budget_is_spent(keys) -> None:
    node = _node(keys)
    conn, _, _ = node.connect_user(keys[1])
    for _ in range(4):
        node.reject(conn, "INVALID_SIG")
    named = core.handle(node.state, FrameRejected(conn, "INVALID_SIG", "bad", "MSG_DIRECT", msg_ref="ref-1"))
    (error,) = sent_to(named, conn, "ERROR")
    assert error.payload["msg_ref"] == "ref-1"
