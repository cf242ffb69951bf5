"""A router restart must not close a user whose signed hello the old router accepted
but the gateway still kept (the router died before saying it applied it): the
gateway submits that hello again, on the same connection, and its signature is one
the old router noted as used. A copy on any other connection stays a replay."""

from __future__ import annotations

from socp.ipc import messages as m
from socp.protocol import crypto, frames, signing
from socp.protocol.ids import new_id
from socp.router import abuse_rules, core
from socp.router.abuse_rules import Guard
from socp.router.core_io import FrameIn, LinkRestored
from socp.router.recovery import InboundOrder

from .harness import NOW, Harness, closes, digest, errors_to


def signed_hello(key, user_id: str):
    return signing.sign_envelope(key, frames.user_hello(user_id, None, NOW, crypto.encode_public_key(key)))


def new_router(keys, used_hello) -> Harness:
    """A router started on what the old one stored: the hello's signature is used."""
    node = Harness(server_key=keys[0])
    node.state.guard = Guard.without_rate_limits()
    node.state.guard.now_ms = node.state.now_ms = NOW + 2_000
    abuse_rules.load_hello_proofs(node.state.guard, [used_hello.from_],
                             [(used_hello.from_, abuse_rules.hello_sig_digest(used_hello.sig), NOW)])
    return node


def test_the_resubmitted_hello_of_a_restored_connection_is_admitted(keys) -> None:
    hello = signed_hello(keys[1], new_id())
    node = new_router(keys, hello)
    conn = 7
    assert core.handle(node.state, LinkRestored(conn, m.ROLE_USER, "", "")) == []
    actions = core.handle(node.state, FrameIn(conn, hello, digest(hello)))
    assert closes(actions) == [] and errors_to(actions, conn) == []
    assert node.state.local_users[hello.from_] == conn


def test_a_copy_on_another_connection_is_still_a_replay(keys) -> None:
    hello = signed_hello(keys[1], new_id())
    node = new_router(keys, hello)
    actions = core.handle(node.state, FrameIn(8, hello, digest(hello)))
    assert errors_to(actions, 8) == ["REPLAY"] and closes(actions) == [8]


def test_a_restored_connection_cannot_bring_an_old_signature_back(keys) -> None:
    hello = signed_hello(keys[1], new_id())
    node = new_router(keys, hello)
    node.state.now_ms = node.state.guard.now_ms = NOW + abuse_rules.RESUBMITTED_HELLO_MS + 1
    core.handle(node.state, LinkRestored(9, m.ROLE_USER, "", ""))
    actions = core.handle(node.state, FrameIn(9, hello, digest(hello)))
    assert errors_to(actions, 9) == ["REPLAY"] and closes(actions) == [9]


def test_the_driver_restores_a_user_link_whose_hello_is_still_kept() -> None:
    # LinkReplay from the gateway: seq 0 is the oldest kept frame, so no opening.
    (item,) = InboundOrder().events_from(m.LinkReplay(11, 0, m.ROLE_USER, "", ""), known_links=())
    assert isinstance(item[1], LinkRestored) and item[1].conn == 11 and item[1].opening == ""
