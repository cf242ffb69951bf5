"""Signing outbound frames: one signature serves every copy; presence adverts re-sent
unchanged re-use theirs."""

from __future__ import annotations

import orjson

from socp.ipc.messages import SignJob
from socp.protocol import crypto
from socp.protocol.encoding import b64url_decode, canonical_json
from socp.protocol.envelope import parse
from socp.protocol.signing import verify_transport
from socp.verifier.signer import ReusedSignatures, sign_job


def advert_job(pubkey: str, conn: int) -> SignJob:
    payload = {"user_id": "alice", "server_id": "s1", "meta": {"pubkey": pubkey}}
    return SignJob("USER_ADVERTISE", "s1", 1_700_000_000_000 + conn, payload, [(conn, 0, "*")])


def frame_of(delivers) -> object:
    (deliver,) = delivers
    ((_, _, text),) = deliver.items
    return parse(text)


def test_an_advert_sent_again_reuses_its_signature_which_still_verifies(keys) -> None:
    reused = ReusedSignatures()
    pubkey = crypto.encode_public_key(keys[1])
    first = frame_of(sign_job(keys[0], advert_job(pubkey, 1), reused))
    again = frame_of(sign_job(keys[0], advert_job(pubkey, 2), reused))
    assert again.sig == first.sig and reused.reused == 1
    verify_transport(keys[0].public_key(), again)


def test_other_frames_are_signed_afresh(keys) -> None:
    reused = ReusedSignatures()
    job = SignJob("MSG_PUBLIC_CHANNEL", "alice", 1, {"ciphertext": "eA", "sender_pub": "k", "content_sig": "c"},
                  [(1, 0, "public")])
    texts = [orjson.loads(sign_job(keys[0], job, reused)[0].items[0][2]) for _ in range(2)]
    assert texts[0]["sig"] != texts[1]["sig"] and reused.reused == 0   # PSS is randomised


def test_the_reused_signatures_are_bounded(keys) -> None:
    reused = ReusedSignatures(limit=2)
    for index in range(3):
        job = SignJob("USER_ADVERTISE", "s1", 1, {"user_id": f"u{index}", "server_id": "s1"}, [(1, 0, "*")])
        sign_job(keys[0], job, reused)
    assert len(reused) == 2


def test_a_g101_opening_is_signed_per_copy_over_its_whole_envelope(keys) -> None:
    """A link opening to a peer opted in to G101's form (bootstrap `g101_link`): G101
    checks the whole envelope minus `sig`, `to` included, so each copy has its own."""
    payload = {"host": "127.0.0.1", "port": 1, "pubkey": crypto.encode_public_key(keys[0])}
    job = SignJob("SERVER_HELLO_JOIN", "s1", 1_700_000_000_000, payload, [(1, 0, "a:1"), (2, 0, "b:2")],
                  whole_envelope=True)
    texts = [text for deliver in sign_job(keys[0], job) for _, _, text in deliver.items]
    for text, to in zip(texts, ("a:1", "b:2"), strict=True):
        frame = orjson.loads(text)
        sig = b64url_decode(frame.pop("sig"))
        assert frame["to"] == to
        assert crypto.verify_pss(keys[0].public_key(), sig, canonical_json(frame))     # G101's check
        assert not crypto.verify_pss(keys[0].public_key(), sig, canonical_json(payload))
    plain = orjson.loads(sign_job(keys[0], SignJob("SERVER_HELLO_JOIN", "s1", 1, payload, [(1, 0, "a:1")]))[0]
                         .items[0][2])
    assert crypto.verify_pss(keys[0].public_key(), b64url_decode(plain["sig"]), canonical_json(payload))
