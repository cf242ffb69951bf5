"""One identity per user id across the mesh (issue #15 weaknesses 1 and 2), as pure
router rules over a three-node mesh wired in memory."""

from __future__ import annotations

import pytest

from socp.protocol import crypto, frames, signing
from socp.protocol.ids import new_id
from socp.router.core_io import FrameIn, LinkDown

from .harness import digest
from .mesh import Mesh, mesh_through_one_introducer


@pytest.fixture
def mesh3(keys) -> Mesh:
    return mesh_through_one_introducer(keys)


def _hello(mesh: Mesh, node: str, conn: int, user_id: str, key, signed: bool) -> None:
    frame = frames.user_hello(user_id, mesh.nodes[node].server_id, mesh.now, crypto.encode_public_key(key))
    if signed:
        frame = signing.sign_envelope(key, frame)
    mesh.user_frame(node, conn, frame)


def _refusal(mesh: Mesh, node: str, conn: int) -> tuple[str, str]:
    (error,) = mesh.received(node, conn, "ERROR")
    return error.payload["code"], error.payload["detail"]


def _leave(mesh: Mesh, node: str, conn: int) -> None:
    mesh.event(node, LinkDown(conn, "bye"))
    mesh.settle()


def test_an_id_online_at_another_server_cannot_say_hello(mesh3: Mesh, keys) -> None:
    victim = new_id()
    _hello(mesh3, "b", 500, victim, keys[3], signed=False)     # a peer's client that never signs
    _hello(mesh3, "a", 501, victim, keys[3], signed=False)     # the victim's public key, from /list
    code, detail = _refusal(mesh3, "a", 501)
    assert code == "NAME_IN_USE" and mesh3.nodes["b"].server_id in detail
    assert mesh3.nodes["a"].state.user_locations[victim] == mesh3.nodes["b"].server_id


def test_an_id_that_signed_at_another_node_must_sign_here(mesh3: Mesh, keys) -> None:
    victim = new_id()
    _hello(mesh3, "b", 500, victim, keys[3], signed=True)
    _leave(mesh3, "b", 500)
    _hello(mesh3, "a", 501, victim, keys[3], signed=False)
    assert _refusal(mesh3, "a", 501)[0] == "INVALID_SIG"
    _hello(mesh3, "a", 502, victim, keys[3], signed=True)      # the owner, signing: welcome anywhere
    assert mesh3.nodes["a"].state.local_users[victim] == 502


def _claim(mesh: Mesh, by: str, on: str, user_id: str, key, proof: dict | None) -> None:
    """Server `by` advertises `user_id` as its own to node `on`, over its own link."""
    source, target = mesh.nodes[by], mesh.nodes[on]
    meta = {"pubkey": crypto.encode_public_key(key)}
    if proof is not None:
        meta["hello"] = proof
    advert = frames.user_advertise(source.server_id, mesh.now + 1, user_id, meta)
    link = target.state.servers[source.server_id]
    mesh.event(on, FrameIn(link, advert, digest(advert)))
    mesh.settle()


def test_a_server_cannot_take_over_an_offline_signer_without_its_proof(mesh3: Mesh, keys) -> None:
    victim = new_id()
    _hello(mesh3, "b", 500, victim, keys[3], signed=True)
    _leave(mesh3, "b", 500)
    _claim(mesh3, by="c", on="a", user_id=victim, key=keys[3], proof=None)
    a = mesh3.nodes["a"]
    assert victim not in a.state.user_locations
    assert a.state.users[victim].home_server == mesh3.nodes["b"].server_id
    row = next(e for e in a.state.linkbook.entries.values() if e.peer_id == mesh3.nodes["c"].server_id)
    assert "signs its hellos" in row.reason
    # The victim comes home: its own server is believed again.
    _hello(mesh3, "b", 501, victim, keys[3], signed=True)
    assert a.state.user_locations[victim] == mesh3.nodes["b"].server_id


def test_the_user_moves_home_with_its_own_signed_hello_once(mesh3: Mesh, keys) -> None:
    victim = new_id()
    _hello(mesh3, "b", 500, victim, keys[3], signed=True)
    _leave(mesh3, "b", 500)
    _hello(mesh3, "c", 600, victim, keys[3], signed=True)      # the owner moves to c
    a = mesh3.nodes["a"]
    assert a.state.user_locations[victim] == mesh3.nodes["c"].server_id
    proof = mesh3.nodes["c"].state.hello_proofs[victim]
    _leave(mesh3, "c", 600)
    # c's advertisement, with the owner's hello in it, is replayed by b: refused.
    _claim(mesh3, by="b", on="a", user_id=victim, key=keys[3], proof=proof)
    assert victim not in a.state.user_locations


def test_a_forged_proof_does_not_verify(mesh3: Mesh, keys) -> None:
    victim = new_id()
    _hello(mesh3, "b", 500, victim, keys[3], signed=True)
    _leave(mesh3, "b", 500)
    forged = signing.sign_envelope(
        keys[4], frames.user_hello(victim, "*", mesh3.now, crypto.encode_public_key(keys[3]))
    )
    _claim(mesh3, by="c", on="a", user_id=victim, key=keys[3], proof=forged.to_dict())
    assert victim not in mesh3.nodes["a"].state.user_locations
