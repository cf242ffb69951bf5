"""G101's server links, replayed from the wire (tests/interop/recorded/g101-link.jsonl).

Without an opt-in G101 does not link with us in either direction (docs/interop.md
"Server links"): its SERVER_HELLO_JOIN has an ISO-string `ts`, an extra top-level `id`
and no host or port, and it accepts only hellos and welcomes signed over the whole
envelope by a server its config.yaml pins by id. With `g101_link: true` in the
bootstrap entry pinning its key (docs/interop.md "Opt-in: G101's link form") both
directions linked and carried a DM both ways, live on 2026-12-06; the lines marked
`"opt_in": "g101_link"` are those runs. What G101 checks is restated here from its
code (socp/server.py and socp/client.py at a96e03a), named per test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interop.links_replay import first
from router.harness import Harness, closes, sends
from socp.ipc.link_state import LinkState
from socp.ipc.messages import ROLE_SERVER, ROLE_UNKNOWN, Rejected, Verified, VerifyJob
from socp.protocol import crypto
from socp.protocol.encoding import b64url_decode
from socp.router import core
from socp.router.core_io import FrameRejected
from socp.verifier.checks import check_job

RECORDED = Path(__file__).parent / "recorded" / "g101-link.jsonl"
G101_ADDRESS = "127.0.0.1:24511"   # where the opted-in bootstrap entry said it listens


def opted_in(dialled_by: str, direction: str, frame_type: str) -> list[dict[str, Any]]:
    """The frames of the live runs under the opt-in, in wire order."""
    lines = [json.loads(line) for line in RECORDED.read_text().splitlines()]
    return [r["frame"] for r in lines if r.get("opt_in") == "g101_link" and r["dialled_by"] == dialled_by
            and r["direction"] == direction and r["frame"]["type"] == frame_type]


def its_key(dialled_by: str) -> str:
    """G101's key in that run: in its hello (it dialled) or its welcome (we did)."""
    opening = "SERVER_HELLO_JOIN" if dialled_by == "peer" else "SERVER_WELCOME"
    return opted_in(dialled_by, "peer->us", opening)[0]["payload"]["pubkey"]


def our_key(dialled_by: str) -> str:
    opening = "SERVER_WELCOME" if dialled_by == "peer" else "SERVER_HELLO_JOIN"
    return opted_in(dialled_by, "us->peer", opening)[0]["payload"]["pubkey"]


def check(frame: dict[str, Any], verify_key: str, g101_address: str = G101_ADDRESS,
          role: int = ROLE_SERVER) -> Verified | Rejected:
    return check_job(VerifyJob(5, 0, json.dumps(frame), role, verify_key, False, g101_address))


def g101_accepts(frame: dict[str, Any], pinned: str) -> bool:
    """G101's check of a link opening (server.py `handler` and `_connect_to_peer`): the
    frame as decoded, minus `sig`, json_canonicalize'd, PSS-verified with the key its
    config.yaml pins for the sender."""
    msg = dict(frame)
    sig = b64url_decode(msg.pop("sig"))
    canon = json.dumps(msg, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return crypto.verify_pss(crypto.decode_public_key(pinned), sig, canon)


def test_its_hello_is_refused_with_a_reason_the_operator_can_read(keys) -> None:
    hello = first("g101", "SERVER_HELLO_JOIN", dialled_by="peer")
    assert isinstance(hello["ts"], str)                  # "2026-12-05T22:06:22Z"
    rejected = check_job(VerifyJob(5, 0, json.dumps(hello), ROLE_UNKNOWN, ""))
    assert isinstance(rejected, Rejected) and rejected.code == "MALFORMED" and "'ts'" in rejected.detail
    assert rejected.frame_type == "SERVER_HELLO_JOIN"
    node = Harness(server_key=keys[0])
    actions = core.handle(node.state, FrameRejected(5, rejected.code, rejected.detail, rejected.frame_type))
    assert 5 in closes(actions)
    row = node.state.linkbook.entries["incoming"]
    assert row.state is LinkState.REFUSED and "SERVER_HELLO_JOIN" in row.reason and "'ts'" in row.reason


@pytest.mark.parametrize("dialled_by", ["peer", "us"])
def test_with_the_opt_in_its_opening_is_read_and_checked_as_it_was_sent(dialled_by: str) -> None:
    opening = "SERVER_HELLO_JOIN" if dialled_by == "peer" else "SERVER_WELCOME"
    [frame] = opted_in(dialled_by, "peer->us", opening)
    assert isinstance(frame["ts"], str)
    verified = check(frame, its_key(dialled_by))
    assert isinstance(verified, Verified) and isinstance(verified.frame["ts"], int)
    if dialled_by == "peer":   # its hello names no address: the opted-in entry's
        assert (verified.frame["payload"]["host"], verified.frame["payload"]["port"]) == ("127.0.0.1", 24511)
    # Its signature covers what it sent, its top-level `id` included.
    assert isinstance(check({**frame, "id": "another"}, its_key(dialled_by)), Rejected)
    # Another server's key, or no opt-in: refused.
    assert isinstance(check(frame, our_key(dialled_by)), Rejected)
    refused = check(frame, its_key(dialled_by), g101_address="")
    assert isinstance(refused, Rejected) and refused.code == "MALFORMED"


def test_under_the_opt_in_its_openings_must_still_be_signed() -> None:
    welcome = {key: value for key, value in opted_in("us", "peer->us", "SERVER_WELCOME")[0].items() if key != "sig"}
    refused = check(welcome, its_key("us"))
    assert isinstance(refused, Rejected) and refused.code == "INVALID_SIG"


@pytest.mark.parametrize("dialled_by", ["peer", "us"])
def test_its_unsigned_advert_names_the_server_it_came_from_only_under_the_opt_in(dialled_by: str) -> None:
    [advert] = opted_in(dialled_by, "peer->us", "USER_ADVERTISE")
    assert "sig" not in advert and "server_id" not in advert["payload"] and isinstance(advert["ts"], str)
    verified = check(advert, its_key(dialled_by))
    assert isinstance(verified, Verified)
    assert verified.frame["payload"]["server_id"] == advert["from"] and verified.frame["to"] == "*"
    assert isinstance(check(advert, its_key(dialled_by), g101_address=""), Rejected)


@pytest.mark.parametrize("dialled_by", ["peer", "us"])
def test_its_dm_relay_is_read_with_the_recipient_it_names(dialled_by: str) -> None:
    [deliver] = opted_in(dialled_by, "peer->us", "SERVER_DELIVER")
    assert "sig" not in deliver and "user_id" not in deliver["payload"]
    verified = check(deliver, its_key(dialled_by))
    assert isinstance(verified, Verified)
    assert verified.frame["payload"]["user_id"] == deliver["to"]
    refused = check(deliver, its_key(dialled_by), g101_address="")
    assert isinstance(refused, Rejected) and refused.code == "MALFORMED"   # no user_id
    refused = check({**deliver, "payload": {**deliver["payload"], "user_id": deliver["to"]}}, its_key(dialled_by),
                    g101_address="")
    assert isinstance(refused, Rejected) and refused.code == "INVALID_SIG"   # and unsigned


@pytest.mark.parametrize("dialled_by", ["peer", "us"])
def test_our_opening_passes_its_check(dialled_by: str) -> None:
    """What our node sent live, checked the way G101's server checks it."""
    opening = "SERVER_WELCOME" if dialled_by == "peer" else "SERVER_HELLO_JOIN"
    [ours] = opted_in(dialled_by, "us->peer", opening)
    assert g101_accepts(ours, our_key(dialled_by))
    assert not g101_accepts({**ours, "ts": ours["ts"] + 1}, our_key(dialled_by))


@pytest.mark.parametrize("dialled_by", ["peer", "us"])
def test_our_dm_relay_is_what_its_server_and_client_read(dialled_by: str) -> None:
    """G101's server hands `to`'s local user the frame's `from` and payload (server.py
    handle_frame, SERVER_DELIVER); its client reads a DM only when the payload has
    `from` and `to`, and checks content_sig over ciphertext + from + to + str(ts)
    with the payload's sender_pub (client.py listen, USER_DELIVER)."""
    [ours] = opted_in(dialled_by, "us->peer", "SERVER_DELIVER")
    [theirs] = opted_in(dialled_by, "peer->us", "SERVER_DELIVER")
    payload = ours["payload"]
    assert ours["to"] == payload["to"] == theirs["from"]   # its user
    assert ours["from"] == payload["from"] == theirs["to"]   # ours
    signed = b64url_decode(payload["ciphertext"]) + (payload["from"] + payload["to"] + str(payload["ts"])).encode()
    sender_pub = crypto.decode_public_key(payload["sender_pub"])
    assert crypto.verify_pss(sender_pub, b64url_decode(payload["content_sig"]), signed)


def linked_g101(keys, g101_link: bool = True) -> tuple[Harness, int]:
    """Our node with the G101 server of the recorded run (it joined us) linked and its
    user gaiae0dc advertised, as the live run had it: we dial its address, it welcomes
    us with the key of that run (the welcome's signature is the verifier's business)."""
    from socp.bootstrap_file import Introducer
    from socp.protocol.envelope import parse_obj
    from socp.router import federation
    from socp.router.core_io import Dial, LinkUp

    node = Harness(server_key=keys[0])
    host, port = G101_ADDRESS.split(":")
    node.state.introducers = [Introducer(host, int(port), its_key("peer"), g101_link=g101_link)]
    conn = next(a for a in federation.start(node.state) if isinstance(a, Dial)).conn
    core.handle(node.state, LinkUp(conn))
    hello = opted_in("peer", "peer->us", "SERVER_HELLO_JOIN")[0]
    welcome = {**hello, "type": "SERVER_WELCOME", "to": node.server_id, "ts": 1_700_000_000_000,
               "payload": {"server_id": G101_ADDRESS, "pubkey": its_key("peer"), "ts": 1_700_000_000_000}}
    welcome.pop("id", None)
    node.feed(conn, parse_obj({key: value for key, value in welcome.items() if key != "sig"}))
    [advert] = opted_in("peer", "peer->us", "USER_ADVERTISE")
    verified = check(advert, its_key("peer"))
    assert isinstance(verified, Verified)
    node.state.now_ms = verified.frame["ts"]   # the run's clock: its frames are fresh
    node.feed(conn, parse_obj(verified.frame))
    return node, conn


def test_its_user_remove_from_server_takes_its_own_user_off_under_the_opt_in(keys) -> None:
    """G101's cleanup_user (server.py) sends USER_REMOVE `from: "server"`, no `to`,
    no `server_id`, unsigned: live (2026-12-06) it was refused FORBIDDEN and its user,
    gone, stayed listed here. On its opted-in link it is read as from that link's
    server, for a user that server is home to."""
    from socp.protocol.envelope import parse_obj
    node, conn = linked_g101(keys)
    assert node.state.user_locations.get("gaiae0dc") == G101_ADDRESS
    [remove] = opted_in("peer", "peer->us", "USER_REMOVE")
    assert remove["from"] == "server" and "sig" not in remove and "server_id" not in remove["payload"]
    verified = check(remove, its_key("peer"))
    assert isinstance(verified, Verified)
    actions = node.feed(conn, parse_obj(verified.frame))
    assert not [f for f in sends(actions, "ERROR")]
    assert "gaiae0dc" not in node.state.user_locations


def test_its_user_remove_from_server_cannot_take_off_anyone_elses_user(keys) -> None:
    """Only a user homed at that link: "server" names no one, so it must not remove a
    user of ours or of another server."""
    from socp.protocol.envelope import parse_obj
    node, conn = linked_g101(keys)
    user_conn, user_id, _ = node.connect_user(keys[2])
    node.state.user_locations["elsewhere-user"] = "another-server"
    [remove] = opted_in("peer", "peer->us", "USER_REMOVE")
    for victim in (user_id, "elsewhere-user"):
        forged = {**remove, "payload": {**remove["payload"], "user_id": victim}}
        verified = check(forged, its_key("peer"))
        assert isinstance(verified, Verified)
        actions = node.feed(conn, parse_obj(verified.frame))
        assert [f.payload["code"] for f in sends_frames(actions, "ERROR")] == ["FORBIDDEN"]
    assert node.state.user_locations.get("elsewhere-user") == "another-server"
    assert user_id in node.state.user_locations


def test_without_the_opt_in_its_user_remove_changes_nothing(keys) -> None:
    """The same frame on a link without the opt-in (read into the reference's form by
    hand: the verifier would refuse its ISO ts): refused, the user stays."""
    from socp.protocol.envelope import parse_obj
    node, conn = linked_g101(keys, g101_link=False)
    [remove] = opted_in("peer", "peer->us", "USER_REMOVE")
    verified = check(remove, its_key("peer"))   # as if it had passed the verifier
    assert isinstance(verified, Verified)
    node.state.user_locations["gaiae0dc"] = G101_ADDRESS
    actions = node.feed(conn, parse_obj(verified.frame))
    assert [f.payload["code"] for f in sends_frames(actions, "ERROR")] == ["FORBIDDEN"]
    assert node.state.user_locations.get("gaiae0dc") == G101_ADDRESS


def sends_frames(actions: list, frame_type: str) -> list:
    return [frame for send in sends(actions, frame_type) for frame in [send.frame]]


@pytest.mark.parametrize("dialled_by", ["peer", "us"])
def test_its_channel_frames_stay_refused_under_the_opt_in_and_the_row_says_why(dialled_by: str) -> None:
    """G101's PUBLIC_CHANNEL_ADD / _UPDATED (`from: "server"`, `ts: 0`) are signed
    with its *public channel's* private key (server.py _broadcast_public_add_updated),
    which it wraps for, and so hands to, every member of its channel: any of its users
    could sign one, so the signature proves no server. Nothing in them is ours to use
    either (its users join our channel by their adverts; the wraps are for its own
    members). Refused even under the opt-in, with a reason an operator can read."""
    for frame_type in ("PUBLIC_CHANNEL_ADD", "PUBLIC_CHANNEL_UPDATED"):
        [frame] = opted_in(dialled_by, "peer->us", frame_type)
        assert frame["from"] == "server" and frame["ts"] == 0 and frame["sig"]
        refused = check(frame, its_key(dialled_by))
        assert isinstance(refused, Rejected) and refused.code == "INVALID_SIG"
        assert "channel key" in refused.detail
