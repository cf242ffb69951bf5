"""`signing.verify_content_frame`: what the verifier checks of a user's DM or public
post before the node spends a signature on it (issue #15 item 4). Every peer client's
recorded frame must pass; a frame that nobody signed, or that was altered, must not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from socp.protocol import crypto, frames, signing
from socp.protocol.envelope import Envelope, parse_obj
from socp.protocol.ids import new_id

RECORDED = Path(__file__).parent.parent / "interop" / "recorded"
TS = 1_700_000_000_000


def _recorded_content_frames() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(RECORDED.glob("*-client.jsonl")):   # peer clients on our node
        for line in path.read_text().splitlines():
            row = json.loads(line)
            frame = row["frame"]
            if row["dir"] == "client->node" and frame["type"] in ("MSG_DIRECT", "MSG_PUBLIC_CHANNEL"):
                found.append((path.stem, frame))
    return found


RECORDED_FRAMES = _recorded_content_frames()


def _check(frame: Envelope) -> bool:
    return signing.verify_content_frame(crypto.decode_public_key(frame.payload["sender_pub"]), frame)


def test_every_peer_client_is_recorded() -> None:
    assert {name for name, _ in RECORDED_FRAMES} == {"g101-client", "g17-client", "g45-client", "g56-client"}


@pytest.mark.parametrize("name,raw", RECORDED_FRAMES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(RECORDED_FRAMES)])
def test_every_recorded_peer_frame_verifies(name: str, raw: dict) -> None:
    """G101 signs its payload's own ts; G45 posts plaintext `text`; G56 signs the base64 text."""
    assert _check(parse_obj(raw))


@pytest.mark.parametrize("name,raw", RECORDED_FRAMES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(RECORDED_FRAMES)])
def test_a_recorded_peer_frame_sent_under_another_ts_does_not_verify(name: str, raw: dict) -> None:
    altered = dict(raw, ts=raw["ts"] + 1)
    payload = dict(raw["payload"])
    if "ts" in payload:
        payload["ts"] = payload["ts"] + 1
    altered["payload"] = payload
    assert not _check(parse_obj(altered))


def test_our_dm_and_public_post_verify(keys) -> None:
    user, peer, pub = new_id(), new_id(), crypto.encode_public_key(keys[1])
    assert _check(frames.msg_direct(user, peer, TS, "AAAA", pub, signing.sign_dm(keys[1], "AAAA", user, peer, TS)))
    assert _check(frames.msg_public_channel(user, TS, "AAAA", pub, signing.sign_public(keys[1], "AAAA", user, TS)))


def test_a_payload_ts_does_not_rescue_a_dm_for_another_recipient(keys) -> None:
    """G101's form binds the payload's from/to too: they must name the envelope's."""
    user, peer, other = new_id(), new_id(), new_id()
    sig = signing.sign_dm(keys[1], "AAAA", user, other, TS)
    frame = frames.msg_direct(user, peer, TS + 5, "AAAA", crypto.encode_public_key(keys[1]), sig)
    frame.payload.update({"from": user, "to": other, "ts": TS})
    assert not _check(frame)


def test_a_plaintext_post_is_checked_over_its_text(keys) -> None:
    user = new_id()
    signed = {"channel": "public", "text": "hi", "from": user, "ts": TS}
    sig = signing.b64url_encode(crypto.sign_pss(keys[1], signing.canonical_json(signed)))
    payload = {"sender_pub": crypto.encode_public_key(keys[1]), "content_sig": sig, **signed}
    good = Envelope(type="MSG_PUBLIC_CHANNEL", from_=user, to="public", ts=TS, payload=payload)
    assert _check(good)
    assert not _check(Envelope(type="MSG_PUBLIC_CHANNEL", from_=user, to="public", ts=TS,
                               payload={**payload, "text": "changed"}))
    assert not _check(Envelope(type="MSG_PUBLIC_CHANNEL", from_=user, to="public", ts=TS,
                               payload={**payload, "content_sig": "c2ln"}))
