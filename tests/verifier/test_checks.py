"""The verifier's decisions as pure functions: no sockets, no processes."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from socp.ipc import messages
from socp.ipc.messages import ROLE_SERVER, ROLE_UNKNOWN, ROLE_USER, Rejected, SignJob, Verified, VerifyJob
from socp.protocol import envelope, frames
from socp.protocol.acks import msg_ref
from socp.protocol.crypto import encode_public_key, sign_pss
from socp.protocol.encoding import b64url_encode, canonical_json
from socp.protocol.ids import new_id
from socp.protocol.signing import sign_dm, sign_envelope, sign_public, verify_transport
from socp.verifier import signer
from socp.verifier.checks import check_job

TS = 1_700_000_000_000


@pytest.fixture(scope="module")
def weak_key() -> rsa.RSAPrivateKey:
    """RSA-1024: cheap to make, and exactly what SOCP §13 says must be refused."""
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def job(text: str | envelope.Envelope, role: int, verify_key: str = "", seq: int = 7) -> VerifyJob:
    if isinstance(text, envelope.Envelope):
        text = text.to_wire()
    return VerifyJob(conn=3, seq=seq, text=text, role=role, verify_key=verify_key)


def rejected(result: Verified | Rejected, code: str, frame_type: str) -> bool:
    return isinstance(result, Rejected) and (result.code, result.frame_type, result.conn, result.seq) == (
        code, frame_type, 3, 7)


def hello(key: rsa.RSAPrivateKey) -> envelope.Envelope:
    return frames.user_hello(new_id(), None, TS, encode_public_key(key), display_name="Zoë")


def server_heartbeat() -> envelope.Envelope:
    return frames.heartbeat(new_id(), new_id(), TS)


# --- users -----------------------------------------------------------------------


def test_signed_user_hello_is_verified_with_its_frame_and_digest(keys) -> None:
    frame = sign_envelope(keys[1], hello(keys[1]))
    result = check_job(job(frame, ROLE_USER))
    assert isinstance(result, Verified)
    assert (result.conn, result.seq) == (3, 7)
    assert result.frame == frame.to_dict()
    assert result.payload_digest == hashlib.sha256(canonical_json(frame.payload)).digest()


def test_unsigned_user_hello_is_accepted(keys) -> None:
    assert isinstance(check_job(job(hello(keys[1]), ROLE_USER)), Verified)


def test_user_hello_with_a_1024_bit_key_is_bad_key(weak_key) -> None:
    assert rejected(check_job(job(hello(weak_key), ROLE_USER)), "BAD_KEY", "USER_HELLO")


def test_user_hello_with_a_weak_enc_pubkey_is_bad_key(keys, weak_key) -> None:
    frame = hello(keys[1])
    frame.payload["enc_pubkey"] = encode_public_key(weak_key)
    assert rejected(check_job(job(frame, ROLE_USER)), "BAD_KEY", "USER_HELLO")


def test_user_hello_signed_by_another_key_is_invalid_sig(keys) -> None:
    frame = sign_envelope(keys[0], hello(keys[1]))
    assert rejected(check_job(job(frame, ROLE_USER)), "INVALID_SIG", "USER_HELLO")


def test_user_hello_signature_is_checked_before_the_role_is_known(keys) -> None:
    frame = sign_envelope(keys[0], hello(keys[1]))
    assert rejected(check_job(job(frame, ROLE_UNKNOWN)), "INVALID_SIG", "USER_HELLO")


def test_unsigned_user_frames_are_accepted_but_their_keys_are_checked(keys, weak_key) -> None:
    user, peer = new_id(), new_id()
    good = frames.msg_direct(user, peer, TS, "AAAA", encode_public_key(keys[1]),
                             sign_dm(keys[1], "AAAA", user, peer, TS))
    weak = frames.msg_direct(user, peer, TS, "AAAA", encode_public_key(weak_key), "c2ln")
    assert isinstance(check_job(job(good, ROLE_USER)), Verified)
    assert rejected(check_job(job(weak, ROLE_USER)), "BAD_KEY", "MSG_DIRECT")


# --- content signatures of users' frames (issue #15 item 4) ------------------------


def test_a_dm_whose_content_sig_verifies_in_no_form_is_invalid_sig_and_named(keys) -> None:
    """Before: Verified, and the node spent a signature delivering it."""
    user, peer = new_id(), new_id()
    frame = frames.msg_direct(user, peer, TS, "AAAA", encode_public_key(keys[1]), "c2ln")
    result = check_job(job(frame, ROLE_USER))
    assert rejected(result, "INVALID_SIG", "MSG_DIRECT")
    assert result.msg_ref == msg_ref(frame)


def test_a_dm_signed_by_another_key_than_sender_pub_is_invalid_sig(keys) -> None:
    user, peer = new_id(), new_id()
    frame = frames.msg_direct(user, peer, TS, "AAAA", encode_public_key(keys[1]),
                              sign_dm(keys[0], "AAAA", user, peer, TS))
    assert rejected(check_job(job(frame, ROLE_USER)), "INVALID_SIG", "MSG_DIRECT")


def test_a_dm_signed_for_another_recipient_is_invalid_sig(keys) -> None:
    user, peer = new_id(), new_id()
    frame = frames.msg_direct(user, peer, TS, "AAAA", encode_public_key(keys[1]),
                              sign_dm(keys[1], "AAAA", user, new_id(), TS))
    assert rejected(check_job(job(frame, ROLE_USER)), "INVALID_SIG", "MSG_DIRECT")


def test_a_public_post_with_a_garbage_content_sig_is_invalid_sig(keys) -> None:
    user = new_id()
    good = frames.msg_public_channel(user, TS, "AAAA", encode_public_key(keys[1]),
                                     sign_public(keys[1], "AAAA", user, TS))
    bad = frames.msg_public_channel(user, TS, "AAAA", encode_public_key(keys[1]), "c2ln")
    assert isinstance(check_job(job(good, ROLE_USER)), Verified)
    assert rejected(check_job(job(bad, ROLE_USER)), "INVALID_SIG", "MSG_PUBLIC_CHANNEL")


def test_a_server_relayed_frame_is_not_content_checked_here(keys) -> None:
    """A server's frames are checked by their transport signature; the content
    signature is the recipients' business (and the origin server's)."""
    frame = sign_envelope(keys[0], frames.msg_public_channel(new_id(), TS, "AAAA", encode_public_key(keys[1]), "c2ln"))
    assert isinstance(check_job(job(frame, ROLE_SERVER, encode_public_key(keys[0]))), Verified)


# --- servers -----------------------------------------------------------------------


def test_server_frame_signed_with_the_pinned_key_is_verified(keys) -> None:
    frame = sign_envelope(keys[0], server_heartbeat())
    assert isinstance(check_job(job(frame, ROLE_SERVER, encode_public_key(keys[0]))), Verified)


def test_server_frame_signed_by_another_key_is_invalid_sig(keys) -> None:
    frame = sign_envelope(keys[1], server_heartbeat())
    assert rejected(check_job(job(frame, ROLE_SERVER, encode_public_key(keys[0]))), "INVALID_SIG", "HEARTBEAT")


def test_unsigned_server_frame_is_invalid_sig(keys) -> None:
    assert rejected(
        check_job(job(server_heartbeat(), ROLE_SERVER, encode_public_key(keys[0]))), "INVALID_SIG", "HEARTBEAT"
    )


def test_relayed_presence_passes_for_the_router_to_check_with_the_origin_key(keys) -> None:
    # SOCP §6.2: a relay forwards the origin's signed USER_ADVERTISE / USER_REMOVE
    # unchanged; only the router knows the origin's pinned key.
    link_key = encode_public_key(keys[1])
    for frame in (frames.user_advertise(new_id(), TS, new_id(), {}), frames.user_remove(new_id(), TS, new_id())):
        relayed = check_job(job(sign_envelope(keys[2], frame), ROLE_SERVER, link_key))
        assert isinstance(relayed, Verified) and relayed.link_signed is False
        assert messages.unpack(messages.pack(relayed)) == relayed
        own = check_job(job(sign_envelope(keys[1], frame), ROLE_SERVER, link_key))
        assert isinstance(own, Verified) and own.link_signed is True
    # Any other frame signed by another key is still refused, and so is unsigned presence.
    other = sign_envelope(keys[2], server_heartbeat())
    assert rejected(check_job(job(other, ROLE_SERVER, link_key)), "INVALID_SIG", "HEARTBEAT")
    unsigned = frames.user_advertise(new_id(), TS, new_id(), {})
    assert isinstance(check_job(job(unsigned, ROLE_SERVER, link_key)), Verified)  # the router refuses it


def test_server_frame_without_a_pinned_key_is_invalid_sig(keys) -> None:
    frame = sign_envelope(keys[0], server_heartbeat())
    assert rejected(check_job(job(frame, ROLE_SERVER, "")), "INVALID_SIG", "HEARTBEAT")


def test_server_hello_with_a_weak_key_is_bad_key(weak_key) -> None:
    weak = encode_public_key(weak_key)
    frame = sign_envelope(weak_key, frames.server_hello_link(new_id(), new_id(), TS, "127.0.0.1", 9000, weak))
    assert rejected(check_job(job(frame, ROLE_SERVER, weak)), "BAD_KEY", "SERVER_HELLO_LINK")


def test_server_opening_frame_of_an_unknown_role_must_be_signed_by_its_key(keys) -> None:
    unsigned = frames.server_hello_link(new_id(), new_id(), TS, "127.0.0.1", 9000, encode_public_key(keys[0]))
    assert rejected(check_job(job(unsigned, ROLE_UNKNOWN)), "INVALID_SIG", "SERVER_HELLO_LINK")
    assert isinstance(check_job(job(sign_envelope(keys[0], unsigned), ROLE_UNKNOWN)), Verified)


def test_advertised_user_key_must_be_a_valid_key(keys, weak_key) -> None:
    server = new_id()
    for meta_key in (encode_public_key(weak_key), ["not", "a", "key"], {"n": 3}):
        frame = sign_envelope(keys[0], frames.user_advertise(server, TS, new_id(), {"pubkey": meta_key}))
        result = check_job(job(frame, ROLE_SERVER, encode_public_key(keys[0])))
        assert rejected(result, "BAD_KEY", "USER_ADVERTISE"), meta_key


# --- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize("role", [ROLE_UNKNOWN, ROLE_USER, ROLE_SERVER])
def test_malformed_json_is_malformed_with_no_type(role: int) -> None:
    assert rejected(check_job(job('{"type": "USER_HELLO", ', role, "x")), "MALFORMED", "")


def test_unknown_type_is_unknown_type_and_not_echoed() -> None:
    text = orjson.dumps({"type": "NOT_A_TYPE", "from": new_id(), "to": "*", "ts": TS, "payload": {}}).decode()
    assert rejected(check_job(job(text, ROLE_USER)), "UNKNOWN_TYPE", "")


def test_bad_payload_field_is_malformed_and_names_the_type() -> None:
    text = orjson.dumps(
        {"type": "USER_HELLO", "from": new_id(), "to": "*", "ts": TS, "payload": {"pubkey": 12}}
    ).decode()
    assert rejected(check_job(job(text, ROLE_UNKNOWN)), "MALFORMED", "USER_HELLO")


def test_payload_digest_is_sha256_of_the_canonical_payload(keys) -> None:
    payload = {"z": "é ✓", "a": {"y": [1, 2], "b": True}, "user_id": new_id(), "server_id": new_id()}
    frame = sign_envelope(keys[0], envelope.Envelope("USER_REMOVE", new_id(), "*", TS, payload))
    result = check_job(job(frame, ROLE_SERVER, encode_public_key(keys[0])))
    assert isinstance(result, Verified)
    expected = '{"a":{"b":true,"y":[1,2]},"server_id":"%s","user_id":"%s","z":"é ✓"}' % (
        payload["server_id"],
        payload["user_id"],
    )
    assert result.payload_digest == hashlib.sha256(expected.encode("utf-8")).digest()


def test_answers_survive_the_actor_wire_form(keys) -> None:
    for result in (check_job(job(hello(keys[1]), ROLE_USER)), check_job(job("nope", ROLE_USER))):
        assert messages.unpack(messages.pack(result)) == result


# --- signing -------------------------------------------------------------------------


def test_sign_job_signs_once_for_every_delivery(keys) -> None:
    payload = {"user_id": new_id(), "server_id": new_id(), "meta": {"display_name": "Zoë"}}
    targets = [(10, 0, "*"), (11, 5, new_id()), (12, 9, new_id())]
    sign = SignJob("USER_ADVERTISE", new_id(), TS, payload, targets)
    (deliver,) = signer.sign_job(keys[0], sign)
    assert [(conn, seq) for conn, seq, _ in deliver.items] == [(10, 0), (11, 5), (12, 9)]
    sigs = set()
    for (_, _, to), (_, _, text) in zip(targets, deliver.items, strict=False):
        frame = envelope.parse(text)
        assert (frame.type, frame.from_, frame.to, frame.ts, frame.payload) == (
            "USER_ADVERTISE",
            sign.sender,
            to,
            TS,
            payload,
        )
        verify_transport(keys[0].public_key(), frame)
        sigs.add(frame.sig)
    assert len(sigs) == 1


def test_sign_job_splits_a_wide_fanout_of_a_large_payload(keys) -> None:
    payload = {"file_id": new_id(), "index": 0, "ciphertext": "A" * 500_000}
    sign = SignJob("FILE_CHUNK", new_id(), TS, payload, [(n, 0, new_id()) for n in range(20)])
    delivers = signer.sign_job(keys[0], sign)
    assert len(delivers) > 1
    assert [conn for d in delivers for conn, _, _ in d.items] == list(range(20))
    assert all(len(messages.pack(d)) <= messages.MAX_MESSAGE_BYTES for d in delivers)


def test_sign_job_with_no_delivery_does_nothing(keys) -> None:
    assert signer.sign_job(keys[0], SignJob("HEARTBEAT", new_id(), TS, {}, [])) == []


def g101_hello(key: rsa.RSAPrivateKey, tamper: bool = False) -> str:
    """G101's hello: an `id` beside the standard fields, signed over the whole
    envelope as sent (minus `sig`)."""
    frame = {
        "id": new_id(),
        "type": "USER_HELLO",
        "from": "alice101",
        "to": "server@127.0.0.1:8765",
        "ts": TS,
        "payload": {"client": "cli-v1", "pubkey": encode_public_key(key), "enc_pubkey": encode_public_key(key)},
    }
    frame["sig"] = b64url_encode(sign_pss(key, canonical_json(frame)))
    if tamper:
        frame["id"] = new_id()
    return orjson.dumps(frame).decode()


def test_g101_hello_signed_over_the_envelope_as_sent_is_verified(keys) -> None:
    assert isinstance(check_job(job(g101_hello(keys[1]), ROLE_USER)), Verified)


def test_g101_hello_whose_signed_fields_changed_is_invalid_sig(keys) -> None:
    assert rejected(check_job(job(g101_hello(keys[1], tamper=True), ROLE_USER)), "INVALID_SIG", "USER_HELLO")


def test_a_refused_acknowledged_frame_carries_its_msg_ref(keys) -> None:
    # No silent drops (protocol/acks.py): the router names the frame in its ERROR.
    from socp.protocol.acks import msg_ref

    dm = frames.msg_direct("u", "v", TS, "Y2lwaGVy", "a2V5", "c2ln")
    signed_by_another = sign_envelope(keys[1], dm)
    result = check_job(job(signed_by_another.to_wire().replace(signed_by_another.sig, "AAAA"), ROLE_USER))
    assert isinstance(result, Rejected) and result.msg_ref == msg_ref(dm)
    # Frames that do not read as acknowledged frames name nothing.
    assert check_job(job("not json", ROLE_USER)).msg_ref == ""
    assert (
        check_job(job(frames.heartbeat("u", "v", TS).to_wire().replace('"ts":', '"ts":"x","t":'), ROLE_USER)).msg_ref
        == ""
    )
