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
from router.harness import Harness, closes
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
