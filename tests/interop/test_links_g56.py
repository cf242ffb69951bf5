"""G56's server links, replayed from the wire (tests/interop/recorded/g56-link.jsonl).

G56 signs neither SERVER_HELLO_JOIN nor SERVER_WELCOME (nor SERVER_ANNOUNCE): its
welcome is refused unless the operator consented in its bootstrap entry
(`unsigned_link: true`). Fields G56 reads, from server/server.py and client/socp_cli.py
at the commit peers.md names: our key in SERVER_HELLO_JOIN / SERVER_ANNOUNCE
`pubkey` as base64url(PEM) (it replaces the pinned key with the announced one), and
users' keys in USER_ADVERTISE `meta.pubkey` and SERVER_DELIVER `sender_pub` in the
same form (its client loads nothing else).
"""

from __future__ import annotations

import pytest

from interop.links_replay import feed, first, recorded, stamped
from router.harness import NOW, Harness, sent_to
from socp.bootstrap_file import Introducer
from socp.ipc.link_state import LinkState
from socp.ipc.messages import ROLE_SERVER, Rejected, Verified, VerifyJob
from socp.protocol import crypto
from socp.protocol.envelope import parse_obj
from socp.protocol.ids import new_id
from socp.protocol.key_forms import KeyForm, form_of
from socp.router import core, federation
from socp.router.core_io import Dial, LinkUp
from socp.router.peer_links import PeerLink
from socp.verifier.checks import check_job


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def _is_wrapped_file(frame: dict) -> bool:
    return frame["type"] == "SERVER_DELIVER" and "payload" in frame["payload"]


def test_every_recorded_g56_frame_parses() -> None:
    for frame in recorded("g56"):
        parse_obj(frame)


def test_its_file_frames_wrapped_in_server_deliver_reach_our_user_unwrapped(node, keys) -> None:
    """G56 relays FILE_* between servers as SERVER_DELIVER {user_id, type, from, to,
    ts, payload, sig}; our user gets the FILE_* itself."""
    wrapped = [f for f in recorded("g56", frame_type="SERVER_DELIVER", dialled_by="us") if _is_wrapped_file(f)]
    assert [f["payload"]["type"] for f in wrapped][:2] == ["FILE_START", "FILE_CHUNK"]
    peer = new_id()
    node.state.servers[peer] = 9
    node.state.links[9] = PeerLink(conn=9, state=LinkState.JOINED, peer_id=peer)
    ours_conn, ours_id, _ = node.connect_user(keys[1], user_id=wrapped[0]["payload"]["user_id"])
    for raw in wrapped[:2]:
        inner = raw["payload"]
        frame = stamped(raw, NOW, payload={**inner, "ts": NOW})
        [got] = sent_to(feed(node.state, 9, frame), ours_conn, inner["type"])
        assert (got.from_, got.to, got.payload) == (inner["from"], ours_id, inner["payload"])


def test_its_unsigned_welcome_passes_the_verifiers_only_with_consent() -> None:
    welcome = first("g56", "SERVER_WELCOME", dialled_by="us")
    assert not welcome.get("sig")
    pinned = crypto.normalise_public_key(welcome["payload"]["servers"][0]["pubkey"])
    text = parse_obj(welcome).to_wire()
    assert isinstance(check_job(VerifyJob(9, 1, text, ROLE_SERVER, pinned, False)), Rejected)
    assert isinstance(check_job(VerifyJob(9, 1, text, ROLE_SERVER, pinned, True)), Verified)


def test_with_consent_we_join_and_hand_it_keys_as_pem(node, keys) -> None:
    welcome = stamped(first("g56", "SERVER_WELCOME", dialled_by="us"), NOW)
    pem_key = welcome.payload["servers"][0]["pubkey"]
    node.state.introducers = [Introducer("127.0.0.1", 9461, crypto.normalise_public_key(pem_key), True,
                                         form_of(pem_key))]
    dial = next(a for a in federation.start(node.state) if isinstance(a, Dial))
    assert dial.unsigned_ok
    [hello] = sent_to(core.handle(node.state, LinkUp(dial.conn)), dial.conn, "SERVER_HELLO_JOIN")
    assert form_of(hello.payload["pubkey"]) == KeyForm.PEM_B64URL
    node.connect_user(keys[1])
    actions = feed(node.state, dial.conn, welcome)
    [announce] = sent_to(actions, dial.conn, "SERVER_ANNOUNCE")
    assert form_of(announce.payload["pubkey"]) == KeyForm.PEM_B64URL
    [advert] = sent_to(actions, dial.conn, "USER_ADVERTISE")
    assert form_of(advert.payload["meta"]["pubkey"]) == KeyForm.PEM_B64URL
    # Its user's advert (meta.pubkey in PEM) binds the key; its DM reaches our user.
    their_advert = stamped(first("g56", "USER_ADVERTISE", dialled_by="us"), NOW)
    feed(node.state, dial.conn, their_advert)
    sender = their_advert.payload["user_id"]
    assert node.state.users[sender].pubkey == crypto.normalise_public_key(their_advert.payload["meta"]["pubkey"])
    deliver_raw = next(f for f in recorded("g56", frame_type="SERVER_DELIVER", dialled_by="us")
                       if not _is_wrapped_file(f))
    ours_conn, ours_id, _ = node.connect_user(keys[2], user_id=deliver_raw["payload"]["user_id"])
    deliver = stamped(deliver_raw, NOW)
    [delivered] = sent_to(feed(node.state, dial.conn, deliver), ours_conn, "USER_DELIVER")
    assert delivered.payload["sender"] == sender and delivered.ts == NOW
    assert delivered.payload["sender_pub"] == crypto.normalise_public_key(deliver.payload["sender_pub"])
