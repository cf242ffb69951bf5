"""G101's server-link forms (socp/protocol/g101_link.py), against the frames its
server sent us (tests/interop/recorded/g101-link.jsonl) and against the check its
server runs on ours: `json_canonicalize(msg minus sig)` (its socp/utils.py:
json.dumps(sort_keys=True, separators=(',',':'), ensure_ascii=False)), verified
with the key its config.yaml pins for the sender's id (its server.py `handler`,
`_connect_to_peer`)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from socp.protocol import crypto, frames, g101_link
from socp.protocol.encoding import b64url_decode
from socp.protocol.envelope import parse_obj
from socp.protocol.errors import InvalidSignature, MalformedFrame
from socp.protocol.signing import sign_envelope, verify_transport

RECORDED = Path(__file__).parents[1] / "interop" / "recorded" / "g101-link.jsonl"


def _its_hellos() -> list[dict]:
    lines = [json.loads(line) for line in RECORDED.read_text().splitlines()]
    return [r["frame"] for r in lines if r["direction"] == "peer->us" and r["frame"]["type"] == "SERVER_HELLO_JOIN"]


def _g101_accepts(wire: str, pinned) -> bool:
    """G101's own check of a link opening, restated: the frame as it decodes it,
    minus `sig`, in its canonical JSON, PSS-verified with the pinned key."""
    msg = json.loads(wire)
    sig = b64url_decode(msg.pop("sig"))
    canon = json.dumps(msg, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return crypto.verify_pss(pinned, sig, canon)


@pytest.mark.parametrize(("text", "ms"), [
    ("1970-01-01T00:00:00Z", 0),
    ("2026-12-05T22:06:22Z", 1796508382000),            # the recorded hello's ts
    ("2026-12-05T22:06:22.5Z", 1796508382500),
    ("2026-12-05T22:06:22+00:00", 1796508382000),
])
def test_iso_utc_times_become_ms(text: str, ms: int) -> None:
    assert g101_link.iso_ts_ms(text) == ms


@pytest.mark.parametrize("text", [
    "2026-12-05T22:06:22",           # no zone: ambiguous across hosts
    "2026-12-05T22:06:22+02:00",     # not UTC
    "2026-13-45T22:06:22Z",          # the shape fits, the date does not
    "1796508382000", "", " 2026-12-05T22:06:22Z", 1796508382000,
])
def test_anything_else_is_malformed(text) -> None:
    with pytest.raises(MalformedFrame):
        g101_link.iso_ts_ms(text)


def test_its_recorded_hello_reads_and_verifies_in_reference_form() -> None:
    for raw in _its_hellos():
        sent = copy.deepcopy(raw)
        frame = parse_obj(g101_link.reference_form(raw, listens_at=("127.0.0.1", 9470)))
        assert (frame.payload["host"], frame.payload["port"]) == ("127.0.0.1", 9470)
        assert raw == sent                                   # the frame as sent is kept for its signature
        assert frame.ts == g101_link.iso_ts_ms(raw["ts"]) and frame.payload["ts"] == frame.ts
        assert frame.from_ == raw["from"] == frame.payload["server_id"]
        key = crypto.decode_public_key(raw["payload"]["pubkey"])
        verify_transport(key, frame, raw)                    # over the envelope as sent (ISO ts, its `id`)
        with pytest.raises(InvalidSignature):
            verify_transport(key, frame)                     # not over our reading of it


def test_without_the_conversion_its_hello_stays_malformed() -> None:
    with pytest.raises(MalformedFrame, match="'ts'"):
        parse_obj(_its_hellos()[0])
    with pytest.raises(MalformedFrame, match="'payload.host'"):   # no address: only a bootstrap entry gives one
        parse_obj(g101_link.reference_form(_its_hellos()[0]))


def test_its_presence_frames_name_the_sending_server() -> None:
    # G101's make_envelope("USER_ADVERTISE", from_id=SERVER_ID, to_id=None, {user_id, ts}): no `to`.
    advert = {"id": "a1", "type": "USER_ADVERTISE", "from": "127.0.0.1:9470", "ts": "2026-12-05T22:06:22Z",
              "payload": {"user_id": "alice", "ts": "2026-12-05T22:06:22Z"}}
    frame = parse_obj(g101_link.reference_form(advert))
    assert (frame.to, frame.payload["server_id"], frame.payload["user_id"]) == ("*", "127.0.0.1:9470", "alice")
    named = g101_link.reference_form({**advert, "payload": {"user_id": "alice", "server_id": "other"}})
    assert named["payload"]["server_id"] == "other"          # a server it names is kept


def test_our_hello_signed_its_way_passes_its_check_and_ours(keys) -> None:
    me, pinned = keys[0], keys[0].public_key()
    hello = frames.server_hello_join("00a9338a-99bb-4e6e-97ff-3f4a5f32fb37", "127.0.0.1:9473", 1796508435381,
                                     "127.0.0.1", 9408, crypto.encode_public_key(me))
    reference = sign_envelope(me, hello)
    assert not _g101_accepts(reference.to_wire(), pinned)   # why G101 logs "HELLO signature invalid" today
    whole = g101_link.sign_whole_envelope(me, hello)
    assert _g101_accepts(whole.to_wire(), pinned)
    assert not _g101_accepts(whole.to_wire(), keys[1].public_key())
    verify_transport(pinned, whole)                          # and we accept it from ourselves
