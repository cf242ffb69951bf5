"""Credit for server links (socp/router/recovery.py): a peer that reads slowly gets no
more unwritten frames than the gateway holds; its senders are told OVERLOADED, and
the link stays up. Several pure cores wired in memory, no sockets."""

from __future__ import annotations

from socp.protocol import crypto, frames
from socp.protocol.encoding import b64url_encode
from socp.router.core_io import FramesWritten
from socp.router.state import NO_ORIGIN

from .mesh import Mesh

LIMIT = 8


def _linked_pair(keys) -> tuple[Mesh, tuple[int, str], tuple[int, str], int]:
    """a and b linked, alice on a, bob on b; a's link to b never reports progress
    (the mesh writes nothing back), like a peer that stopped reading."""
    mesh = Mesh()
    a = mesh.add("a", keys[0])
    b = mesh.add("b", keys[1], introducers=[a])
    mesh.start("a")
    mesh.start("b")
    alice = mesh.connect_user("a", keys[3])
    bob = mesh.connect_user("b", keys[4])
    a.state.unwritten_limit = LIMIT
    return mesh, alice, bob, a.state.servers[b.server_id]


def _dm(mesh: Mesh, keys, alice: tuple[int, str], bob: tuple[int, str], i: int) -> None:
    conn, alice_id = alice
    mesh.user_frame("a", conn, frames.msg_direct(alice_id, bob[1], mesh.now + i, b64url_encode(b"%d" % i),
                                                  crypto.encode_public_key(keys[3]), "c2ln"))


def test_frames_beyond_the_unwritten_limit_are_refused_overloaded_and_the_link_stays(keys) -> None:
    mesh, alice, bob, link_to_b = _linked_pair(keys)
    a, b = mesh.nodes["a"], mesh.nodes["b"]
    room = LIMIT - a.state.outflows[link_to_b].unwritten   # presence went out on the link already
    assert room > 0
    for i in range(room + 3):
        _dm(mesh, keys, alice, bob, i)
    assert len(mesh.received("b", bob[0], "USER_DELIVER")) == room
    errors = mesh.received("a", alice[0], "ERROR")
    assert [e.payload["code"] for e in errors] == ["OVERLOADED"] * 3
    assert "not keeping up" in errors[0].payload["detail"]
    assert a.state.servers[b.server_id] == link_to_b          # not closed, not replaced
    assert a.state.outflows[link_to_b].unwritten == LIMIT


def test_sending_resumes_once_the_gateway_reports_progress(keys) -> None:
    mesh, alice, bob, link_to_b = _linked_pair(keys)
    a = mesh.nodes["a"]
    for i in range(LIMIT):
        _dm(mesh, keys, alice, bob, i)
    delivered = len(mesh.received("b", bob[0], "USER_DELIVER"))
    assert [e.payload["code"] for e in mesh.received("a", alice[0], "ERROR")][-1:] == ["OVERLOADED"]
    errors_before = len(mesh.received("a", alice[0], "ERROR"))
    mesh.event("a", FramesWritten(((link_to_b, a.state.outflows[link_to_b].sent),)))
    mesh.settle()
    _dm(mesh, keys, alice, bob, 100)
    assert len(mesh.received("b", bob[0], "USER_DELIVER")) == delivered + 1
    assert len(mesh.received("a", alice[0], "ERROR")) == errors_before


def test_a_congested_server_is_left_out_of_a_public_message_and_the_sender_told(keys) -> None:
    mesh, alice, bob, link_to_b = _linked_pair(keys)
    a = mesh.nodes["a"]
    carol_conn, carol = mesh.connect_user("a", keys[2])
    a.state.outflows[link_to_b].sent += LIMIT
    mesh.user_frame("a", alice[0], frames.msg_public_channel(alice[1], mesh.now, b64url_encode(b"x"),
                                                           crypto.encode_public_key(keys[3]), "c2ln"))
    assert [e.payload["code"] for e in mesh.received("a", alice[0], "ERROR")] == ["OVERLOADED"]
    assert len(mesh.received("a", carol_conn, "MSG_PUBLIC_CHANNEL")) == 1   # everyone else still served
    assert mesh.received("b", bob[0], "MSG_PUBLIC_CHANNEL") == []


def test_frames_with_no_origin_and_control_frames_pass(keys) -> None:
    from socp.router import users

    mesh, alice, bob, link_to_b = _linked_pair(keys)
    a, b = mesh.nodes["a"], mesh.nodes["b"]
    a.state.outflows[link_to_b].sent += LIMIT
    onward = frames.server_deliver(a.server_id, b.server_id, mesh.now, bob[1], "Y2lwaGVy", alice[1], "", "c2ln")
    (send,) = users.send_to_server(a.state, b.server_id, onward, NO_ORIGIN)
    assert send.targets == ((link_to_b, onward.to),)
    mesh.advance(1000)                                     # heartbeats still go out
    assert b.state.links[b.state.servers[a.server_id]].last_heard_ms == mesh.now


def test_a_report_above_what_was_sent_is_a_link_from_before_a_router_restart(keys) -> None:
    mesh, alice, bob, link_to_b = _linked_pair(keys)
    a = mesh.nodes["a"]
    mesh.event("a", FramesWritten(((link_to_b, 5000),)))
    mesh.settle()
    assert a.state.outflows[link_to_b].unwritten == 0
    _dm(mesh, keys, alice, bob, 1)
    assert len(mesh.received("b", bob[0], "USER_DELIVER")) == 1
