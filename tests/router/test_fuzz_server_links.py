"""Fuzz the router's federation rules with what a linked server may send.

The live-node fuzz (tests/poc/test_fuzz_node.py) talks over a user connection, so the
verifiers' signature check keeps its frames away from the server rules. Here the
input is what the router gets from a server link once the verifiers let a frame
through: a frame that parses (SOCP §5) and carries only valid keys, either signed by
the link's server or relayed presence (`link_signed` False). Three cores are wired
in memory (mesh.py); c gets the frames from b. After every input the tables of every
node must still be consistent, and afterwards users on a and c still exchange a DM.
Examples: the Hypothesis profile's (2,000 in CI), or SOCP_FUZZ_EXAMPLES for a longer run:

    SOCP_FUZZ_EXAMPLES=20000 pytest -q -s tests/router/test_fuzz_server_links.py
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socp.protocol import crypto, frames
from socp.protocol.encoding import b64url_encode
from socp.protocol.envelope import PAYLOAD_SCHEMAS, parse_obj
from socp.protocol.errors import SocpError
from socp.protocol.frame_types import KNOWN_TYPES
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import BROADCAST, PUBLIC_CHANNEL, new_id
from socp.router.core_io import FrameIn
from socp.router.state import LOCAL, RouterState
from socp.verifier.checks import check_keys

from .harness import digest
from .mesh import mesh_through_one_introducer

# What servers send each other (SOCP §6-§8), drawn more often than the rest.
SERVER_TYPES = sorted({T.USER_ADVERTISE, T.USER_REMOVE, T.SERVER_DELIVER, T.SERVER_ANNOUNCE, T.SERVER_HELLO_LINK,
                       T.SERVER_WELCOME, T.PUBLIC_CHANNEL_ADD, T.PUBLIC_CHANNEL_UPDATED, T.PUBLIC_CHANNEL_KEY_SHARE,
                       T.MSG_PUBLIC_CHANNEL, T.FILE_START, T.FILE_CHUNK, T.FILE_END, T.HEARTBEAT, T.ERROR})


def check_tables(state: RouterState) -> None:
    """What must hold whatever a peer sent."""
    for user_id, conn in state.local_users.items():
        assert state.user_locations.get(user_id) == LOCAL, user_id
        assert conn in state.links, conn
    for user_id, where in state.user_locations.items():
        assert where == LOCAL or where in state.pinned_servers, (user_id, where)
        assert where != state.me.server_id
    for server_id, conn in state.servers.items():
        assert conn in state.links and state.links[conn].peer_id == server_id
    assert state.me.server_id not in state.pinned_servers


def test_server_link_input_never_corrupts_the_tables(keys) -> None:
    mesh = mesh_through_one_introducer(keys)
    a, b, c = (mesh.nodes[name] for name in "abc")
    a_conn, alice = mesh.connect_user("a", keys[3])
    c_conn, carol = mesh.connect_user("c", keys[4])
    real_key = crypto.encode_public_key(keys[5])
    # Mostly ids the mesh knows (b speaking for itself above all), so that the rules
    # have something to decide; now and then a stranger.
    servers = st.sampled_from([b.server_id, b.server_id, a.server_id, c.server_id])
    ids = st.one_of(servers, st.sampled_from([alice, carol]), st.sampled_from([new_id(), new_id()]),
                    st.uuids(version=4).map(str))
    addresses = st.one_of(servers, ids, st.sampled_from([BROADCAST, PUBLIC_CHANNEL, ""]))
    scalars = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=20)
    json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                               | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
    b64 = st.sampled_from(["c2ln", "AAAA", b64url_encode(b"x" * 40)]) | st.text("ab-_09", min_size=1, max_size=30)
    server_entry = st.fixed_dictionaries({"host": st.just("127.0.0.1"), "port": st.integers(0, 65535),
                                          "pubkey": st.just(real_key)}, optional={"server_id": ids, "user_id": ids})
    field_values = {
        "user_id": ids, "server_id": ids, "sender": ids, "from": ids, "assigned_id": ids,
        "pubkey": st.just(real_key), "sender_pub": st.just(real_key), "creator_pub": st.just(real_key),
        "enc_pubkey": st.just(real_key), "ciphertext": b64, "content_sig": b64,
        "host": st.just("127.0.0.1"), "port": st.integers(1, 65535),
        "meta": st.fixed_dictionaries({}, optional={"pubkey": st.just(real_key), "display_name": st.text(max_size=20)}),
        "add": st.lists(ids, max_size=3), "version": st.integers(0, 50), "if_version": st.integers(0, 50),
        "servers": st.lists(server_entry, max_size=3), "clients": st.lists(server_entry, max_size=3),
        "shares": st.lists(st.fixed_dictionaries({"member": ids, "wrapped_public_channel_key": b64}), max_size=3),
        "file_id": st.sampled_from(["f1", "f2"]) | st.text(min_size=1, max_size=8), "index": st.integers(0, 20),
        "size": st.integers(0, 2**20), "name": st.text(max_size=20), "sha256": st.just("ab" * 32),
        "mode": st.sampled_from(["dm", "public"]), "msg_ref": st.text(min_size=1, max_size=32),
        "part": st.fixed_dictionaries({"id": st.just("p1"), "index": st.integers(0, 3), "count": st.integers(1, 3)}),
        "users": st.lists(ids, max_size=3),
    }

    @st.composite
    def server_frames(draw: st.DrawFn) -> dict[str, Any]:
        """Mostly what the schema wants, with ids and keys the mesh knows, now and then not."""
        frame_type = draw(st.sampled_from(SERVER_TYPES) | st.sampled_from(sorted(KNOWN_TYPES)))
        required, optional = PAYLOAD_SCHEMAS[frame_type]
        names = sorted(required) + draw(st.lists(st.sampled_from(sorted(optional)), unique=True)
                                        if optional else st.just([]))
        # A server mostly speaks for itself: `from` and the payload's server_id agree.
        speaker = draw(servers) if draw(st.integers(0, 4)) else draw(addresses)
        payload = {}
        for name in names:
            if name == "server_id" and draw(st.integers(0, 4)):
                payload[name] = speaker
            elif name == "user_id" and draw(st.integers(0, 2)):
                payload[name] = draw(st.sampled_from([alice, carol]))
            else:
                payload[name] = draw(field_values.get(name, json_values) if draw(st.integers(0, 19)) else json_values)
        return {"type": frame_type, "from": speaker, "to": draw(addresses),
                "ts": draw(st.sampled_from([0, -1, 1]).map(lambda skew: mesh.now + skew * 1000)
                           | st.integers(0, 2**53)),
                "payload": payload, "sig": "c2ln"}

    fed: list[str] = []

    @settings(suppress_health_check=[HealthCheck.too_slow], deadline=None,
              max_examples=int(os.environ.get("SOCP_FUZZ_EXAMPLES", settings.default.max_examples)))
    @given(frame=server_frames(), link_signed=st.booleans())
    def feed(frame: dict[str, Any], link_signed: bool) -> None:
        try:
            envelope = parse_obj(frame)
            check_keys(envelope)
        except SocpError:
            return   # the verifiers answer these; the router never sees them
        fed.append(envelope.type)
        mesh.event("c", FrameIn(c.state.servers[b.server_id], envelope, digest(envelope), link_signed=link_signed))
        mesh.settle()
        for node in mesh.nodes.values():
            check_tables(node.state)

    feed()
    assert fed, "no generated frame reached the router"
    print(f"{len(fed)} frames reached the router, {len(set(fed))} types")
    # Whatever b sent, a and c still deliver a DM between their users.
    mesh.advance(1000)
    mesh.user_frame("c", c_conn, frames.msg_direct(carol, alice, mesh.now, b64url_encode(b"still here"),
                                                   crypto.encode_public_key(keys[4]), "c2ln"))
    assert any(f.payload["sender"] == carol for f in mesh.received("a", a_conn, "USER_DELIVER"))
