"""Transport signatures (SOCP §5) and content signatures (§9), every accepted form.

Peer forms are produced here by a test-side signer with crypto.sign_pss (or the raw
`cryptography` API where the peer's PSS settings differ from ours), never by the code
under test, so an accepted form is really accepted and not merely self-consistent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_decode, b64url_encode, canonical_json, canonical_json_ascii
from socp.protocol.envelope import Envelope, parse
from socp.protocol.errors import ErrorCode, InvalidSignature

SERVER = "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c6d"
ALICE = "3f6c1a9e-8d2b-4c7e-9a51-0b8e2d4f6a13"
BOB = "b7e0c2d4-1f3a-4b5c-8d9e-2a4c6e8f0b21"
CAROL = "0f1e2d3c-4b5a-4968-b7a6-958473625140"
TS = 1_700_000_003_000


def _advertise() -> Envelope:
    # Non-ASCII display name: the ensure_ascii=True form then differs from ours.
    return frames.user_advertise(SERVER, TS, ALICE, {"display_name": "Zoë 中文 🙂", "pubkey": "k"})


def _sign_b64(key: crypto.PrivateKey, data: bytes) -> str:
    return b64url_encode(crypto.sign_pss(key, data))


# --- transport signature (§5) -----------------------------------------------------------


def test_we_emit_pss_salt_32_over_the_canonical_payload(keys) -> None:
    signed = signing.sign_envelope(keys[2], _advertise())
    signature = b64url_decode(signed.sig)
    assert len(signature) == 512
    # Exactly salt 32 over exactly the canonical payload: verify with fixed parameters.
    keys[2].public_key().verify(
        signature,
        json.dumps(signed.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    signing.verify_transport(keys[2].public_key(), signed)


def test_signed_envelope_survives_the_wire(keys) -> None:
    signed = signing.sign_envelope(keys[2], _advertise())
    received = parse(signed.to_wire())
    assert received == signed
    signing.verify_transport(keys[2].public_key(), received)


def test_verify_accepts_the_ensure_ascii_form(keys) -> None:
    envelope = _advertise()
    ascii_form = canonical_json_ascii(envelope.payload)
    assert ascii_form != canonical_json(envelope.payload)
    signing.verify_transport(keys[2].public_key(), envelope.with_sig(_sign_b64(keys[2], ascii_form)))


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_verify_accepts_the_envelope_minus_sig_form(keys, ensure_ascii: bool) -> None:
    envelope = _advertise()
    whole = {"type": envelope.type, "from": envelope.from_, "to": envelope.to, "ts": envelope.ts,
             "payload": envelope.payload}
    data = json.dumps(whole, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii).encode("utf-8")
    signing.verify_transport(keys[2].public_key(), envelope.with_sig(_sign_b64(keys[2], data)))


def test_verify_accepts_salt_max_length(keys) -> None:
    # Many peers sign with cryptography's PSS.MAX_LENGTH (the library default in examples).
    envelope = _advertise()
    signature = keys[2].sign(
        canonical_json(envelope.payload),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
        hashes.SHA256(),
    )
    signing.verify_transport(keys[2].public_key(), envelope.with_sig(b64url_encode(signature)))


def test_verify_accepts_padded_signature_text(keys) -> None:
    envelope = signing.sign_envelope(keys[2], _advertise())
    signing.verify_transport(keys[2].public_key(), envelope.with_sig(envelope.sig + "=="))


def _expect_invalid(public_key: crypto.PublicKey, envelope: Envelope) -> None:
    with pytest.raises(InvalidSignature) as info:
        signing.verify_transport(public_key, envelope)
    assert info.value.code is ErrorCode.INVALID_SIG


def test_verify_rejects_a_signature_over_another_payload(keys) -> None:
    envelope = _advertise()
    other = frames.user_advertise(SERVER, TS, BOB, dict(envelope.payload["meta"]))
    _expect_invalid(keys[2].public_key(), envelope.with_sig(signing.transport_signature(keys[2], other.payload)))


def test_verify_rejects_a_payload_changed_after_signing(keys) -> None:
    signed = signing.sign_envelope(keys[2], _advertise())
    tampered = Envelope(type=signed.type, from_=signed.from_, to=signed.to, ts=signed.ts,
                        payload={**signed.payload, "server_id": CAROL}, sig=signed.sig)
    _expect_invalid(keys[2].public_key(), tampered)


def test_verify_rejects_an_empty_sig(keys) -> None:
    _expect_invalid(keys[2].public_key(), _advertise())


@pytest.mark.parametrize("sig", ["AAAA", "not base64!", "A"])
def test_verify_rejects_junk_sig(keys, sig: str) -> None:
    _expect_invalid(keys[2].public_key(), _advertise().with_sig(sig))


def test_verify_rejects_a_signature_from_another_key(keys) -> None:
    signed = signing.sign_envelope(keys[0], _advertise())
    _expect_invalid(keys[2].public_key(), signed)


def test_verify_rejects_a_truncated_signature(keys) -> None:
    signed = signing.sign_envelope(keys[2], _advertise())
    _expect_invalid(keys[2].public_key(), signed.with_sig(signed.sig[:-4]))


# --- content signatures (§9) -------------------------------------------------------------


@pytest.fixture(scope="module")
def ciphertext(keys) -> str:
    return b64url_encode(crypto.oaep_encrypt(keys[1].public_key(), b"hi Bob"))


def test_dm_round_trip(keys, ciphertext: str) -> None:
    content_sig = signing.sign_dm(keys[0], ciphertext, ALICE, BOB, TS)
    assert signing.verify_dm(keys[0].public_key(), content_sig, ciphertext, ALICE, BOB, TS)


def test_dm_project_form_is_raw_bytes_concatenation(keys, ciphertext: str) -> None:
    # §9 project decision, checked with fixed salt-32 PSS over the exact bytes.
    content_sig = signing.sign_dm(keys[0], ciphertext, ALICE, BOB, TS)
    raw = b64url_decode(ciphertext) + ALICE.encode() + BOB.encode() + str(TS).encode()
    keys[0].public_key().verify(b64url_decode(content_sig), raw,
                                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())


def _dm_raw(ct: str, sender: str, to: str, ts: int) -> bytes:
    return b64url_decode(ct) + sender.encode() + to.encode() + str(ts).encode()


# Each peer form of §9 for a DM: (ciphertext, from, to, ts) -> signed bytes.
DM_FORMS: dict[str, Callable[[str, str, str, int], bytes]] = {
    "raw": _dm_raw,
    "b64url-text": lambda ct, f, t, ts: ct.encode() + f.encode() + t.encode() + str(ts).encode(),
    "sha256-prehash": lambda ct, f, t, ts: hashlib.sha256(_dm_raw(ct, f, t, ts)).digest(),
    "pipe-joined": lambda ct, f, t, ts: f"{ct}|{f}|{t}|{ts}".encode(),
    "canonical-json": lambda ct, f, t, ts: json.dumps(
        {"ciphertext": ct, "from": f, "to": t, "ts": ts}, sort_keys=True, separators=(",", ":")
    ).encode(),
}


@pytest.mark.parametrize("form", sorted(DM_FORMS))
def test_dm_peer_forms_verify(keys, ciphertext: str, form: str) -> None:
    content_sig = _sign_b64(keys[0], DM_FORMS[form](ciphertext, ALICE, BOB, TS))
    assert signing.verify_dm(keys[0].public_key(), content_sig, ciphertext, ALICE, BOB, TS)


def test_dm_prehashed_api_form_verifies(keys, ciphertext: str) -> None:
    # A peer that hashes itself and signs with Prehashed: same signature as over raw.
    digest = hashlib.sha256(_dm_raw(ciphertext, ALICE, BOB, TS)).digest()
    signature = keys[0].sign(digest, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                             utils.Prehashed(hashes.SHA256()))
    assert signing.verify_dm(keys[0].public_key(), b64url_encode(signature), ciphertext, ALICE, BOB, TS)


@pytest.mark.parametrize("form", sorted(DM_FORMS))
@pytest.mark.parametrize("changed", ["from", "to", "ts", "ciphertext"])
def test_dm_signature_does_not_verify_other_fields(keys, ciphertext: str, form: str, changed: str) -> None:
    content_sig = _sign_b64(keys[0], DM_FORMS[form](ciphertext, ALICE, BOB, TS))
    fields = {"ciphertext_b64": ciphertext, "sender": ALICE, "recipient": BOB, "ts": TS}
    other_ct = b64url_encode(crypto.oaep_encrypt(keys[1].public_key(), b"hi Bob"))
    fields.update({"from": {"sender": CAROL}, "to": {"recipient": CAROL}, "ts": {"ts": TS + 1},
                   "ciphertext": {"ciphertext_b64": other_ct}}[changed])
    assert not signing.verify_dm(keys[0].public_key(), content_sig, **fields)


def test_dm_signature_by_another_key_does_not_verify(keys, ciphertext: str) -> None:
    content_sig = signing.sign_dm(keys[1], ciphertext, ALICE, BOB, TS)
    assert not signing.verify_dm(keys[0].public_key(), content_sig, ciphertext, ALICE, BOB, TS)


@pytest.mark.parametrize("content_sig", ["", "AAAA", "!!"])
def test_dm_junk_signature_is_false_not_an_exception(keys, ciphertext: str, content_sig: str) -> None:
    assert not signing.verify_dm(keys[0].public_key(), content_sig, ciphertext, ALICE, BOB, TS)


@pytest.mark.parametrize("bad_ciphertext", ["A", "AAAAA", "not base64 at all!"])
def test_content_verify_of_a_non_base64_ciphertext_is_false_not_an_exception(keys, bad_ciphertext: str) -> None:
    content_sig = signing.sign_dm(keys[0], "AAAA", ALICE, BOB, TS)
    assert not signing.verify_dm(keys[0].public_key(), content_sig, bad_ciphertext, ALICE, BOB, TS)
    assert not signing.verify_public(keys[0].public_key(), content_sig, bad_ciphertext, ALICE, TS)


def test_text_forms_still_verify_for_a_non_base64_ciphertext(keys) -> None:
    # A peer whose "ciphertext" is not base64url but who signs its text (|-joined form).
    content_sig = _sign_b64(keys[0], f"A|{ALICE}|{BOB}|{TS}".encode())
    assert signing.verify_dm(keys[0].public_key(), content_sig, "A", ALICE, BOB, TS)


def _public_raw(ct: str, sender: str, ts: int) -> bytes:
    return b64url_decode(ct) + sender.encode() + str(ts).encode()


PUBLIC_FORMS: dict[str, Callable[[str, str, int], bytes]] = {
    "raw": _public_raw,
    "b64url-text": lambda ct, f, ts: ct.encode() + f.encode() + str(ts).encode(),
    "sha256-prehash": lambda ct, f, ts: hashlib.sha256(_public_raw(ct, f, ts)).digest(),
    "pipe-joined": lambda ct, f, ts: f"{ct}|{f}|{ts}".encode(),
    "canonical-json": lambda ct, f, ts: json.dumps(
        {"ciphertext": ct, "from": f, "ts": ts}, sort_keys=True, separators=(",", ":")
    ).encode(),
}


def test_public_round_trip(keys, ciphertext: str) -> None:
    content_sig = signing.sign_public(keys[0], ciphertext, ALICE, TS)
    assert signing.verify_public(keys[0].public_key(), content_sig, ciphertext, ALICE, TS)
    raw = _public_raw(ciphertext, ALICE, TS)
    assert crypto.verify_pss(keys[0].public_key(), b64url_decode(content_sig), raw)


@pytest.mark.parametrize("form", sorted(PUBLIC_FORMS))
def test_public_peer_forms_verify(keys, ciphertext: str, form: str) -> None:
    content_sig = _sign_b64(keys[0], PUBLIC_FORMS[form](ciphertext, ALICE, TS))
    assert signing.verify_public(keys[0].public_key(), content_sig, ciphertext, ALICE, TS)


@pytest.mark.parametrize("form", sorted(PUBLIC_FORMS))
@pytest.mark.parametrize("changed", ["from", "ts", "ciphertext"])
def test_public_signature_does_not_verify_other_fields(keys, ciphertext: str, form: str, changed: str) -> None:
    content_sig = _sign_b64(keys[0], PUBLIC_FORMS[form](ciphertext, ALICE, TS))
    fields = {"ciphertext_b64": ciphertext, "sender": ALICE, "ts": TS}
    other_ct = b64url_encode(crypto.oaep_encrypt(keys[1].public_key(), b"hi all"))
    fields.update({"from": {"sender": BOB}, "ts": {"ts": TS - 1}, "ciphertext": {"ciphertext_b64": other_ct}}[changed])
    assert not signing.verify_public(keys[0].public_key(), content_sig, **fields)


def test_dm_signature_is_not_a_public_signature(keys, ciphertext: str) -> None:
    # The DM form also covers `to`; it must not pass as a channel message of the same sender.
    content_sig = signing.sign_dm(keys[0], ciphertext, ALICE, BOB, TS)
    assert not signing.verify_public(keys[0].public_key(), content_sig, ciphertext, ALICE, TS)


@pytest.fixture(scope="module")
def shares(keys) -> list[dict[str, str]]:
    wrapped = b64url_encode(crypto.wrap_blocks(keys[1].public_key(), b"channel key stand-in" * 30))
    return [{"member": BOB, "wrapped_public_channel_key": wrapped},
            {"member": CAROL, "wrapped_public_channel_key": wrapped[::-1]}]


def _share_canonical(shares: list[dict[str, str]]) -> bytes:
    return json.dumps(shares, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


KEY_SHARE_FORMS: dict[str, Callable[[list[dict[str, str]], str], bytes]] = {
    "sha256-then-creator-pub": lambda s, pub: hashlib.sha256(_share_canonical(s)).digest() + pub.encode(),
    "canonical-then-creator-pub": lambda s, pub: _share_canonical(s) + pub.encode(),
    "canonical-json-object": lambda s, pub: json.dumps(
        {"shares": s, "creator_pub": pub}, sort_keys=True, separators=(",", ":")
    ).encode(),
}


def test_key_share_round_trip(keys, shares: list[dict[str, str]]) -> None:
    creator_pub = crypto.encode_public_key(keys[0])
    content_sig = signing.sign_key_share(keys[0], shares, creator_pub)
    assert signing.verify_key_share(keys[0].public_key(), content_sig, shares, creator_pub)
    # §7.3: what we sign is sha256(canonical(shares)) followed by the creator_pub string.
    signed = KEY_SHARE_FORMS["sha256-then-creator-pub"](shares, creator_pub)
    assert crypto.verify_pss(keys[0].public_key(), b64url_decode(content_sig), signed)


@pytest.mark.parametrize("form", sorted(KEY_SHARE_FORMS))
def test_key_share_peer_forms_verify(keys, shares: list[dict[str, str]], form: str) -> None:
    creator_pub = crypto.encode_public_key(keys[0])
    content_sig = _sign_b64(keys[0], KEY_SHARE_FORMS[form](shares, creator_pub))
    assert signing.verify_key_share(keys[0].public_key(), content_sig, shares, creator_pub)


@pytest.mark.parametrize("form", sorted(KEY_SHARE_FORMS))
def test_key_share_signature_does_not_verify_other_fields(keys, shares: list[dict[str, str]], form: str) -> None:
    creator_pub = crypto.encode_public_key(keys[0])
    content_sig = _sign_b64(keys[0], KEY_SHARE_FORMS[form](shares, creator_pub))
    public_key = keys[0].public_key()
    assert not signing.verify_key_share(public_key, content_sig, shares[:1], creator_pub)
    swapped = [{"member": shares[0]["member"], "wrapped_public_channel_key": shares[1]["wrapped_public_channel_key"]}]
    assert not signing.verify_key_share(public_key, content_sig, swapped + shares[1:], creator_pub)
    assert not signing.verify_key_share(public_key, content_sig, shares, crypto.encode_public_key(keys[1]))


def test_key_share_signature_ignores_share_key_order(keys, shares: list[dict[str, str]]) -> None:
    # Canonical JSON: a relay that reorders keys inside each share breaks nothing.
    creator_pub = crypto.encode_public_key(keys[0])
    content_sig = signing.sign_key_share(keys[0], shares, creator_pub)
    reordered = [dict(reversed(list(share.items()))) for share in shares]
    assert signing.verify_key_share(keys[0].public_key(), content_sig, reordered, creator_pub)
