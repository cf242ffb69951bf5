"""What other teams' clients send and read (interop table): key encodings, plaintext
public posts, FILE_START without sha256, G17's argon2id password hashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from socp.protocol import crypto, envelope, password_hash
from socp.protocol.encoding import b64url_decode, b64url_encode
from socp.protocol.errors import MalformedFrame
from socp.protocol.key_forms import KeyForm, form_of, in_form

RECORDED_G17 = Path(__file__).parents[1] / "interop" / "recorded" / "g17-client.jsonl"
RECORDED_G17_PASSWORD = "pw-g17-a"   # what the recorded (throwaway) G17 user typed


def _pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_form_of_tells_the_three_encodings_apart(keys) -> None:
    pem = _pem(keys[1])
    assert form_of(crypto.encode_public_key(keys[1])) is KeyForm.DER_B64URL
    assert form_of(b64url_encode(pem.encode())) is KeyForm.PEM_B64URL
    assert form_of(pem) is KeyForm.PEM


@pytest.mark.parametrize("form", list(KeyForm))
def test_in_form_hands_out_the_same_key_in_the_asked_form(keys, form) -> None:
    pem = _pem(keys[1])
    for given in (crypto.encode_public_key(keys[1]), b64url_encode(pem.encode()), pem):
        out = in_form(given, form)
        assert form_of(out) is form
        assert crypto.normalise_public_key(out) == crypto.encode_public_key(keys[1])
    if form is KeyForm.PEM_B64URL:   # G56 loads exactly this: load_pem_public_key(b64url_decode(key))
        serialization.load_pem_public_key(b64url_decode(in_form(crypto.encode_public_key(keys[1]), form)))


def test_in_form_leaves_an_unreadable_key_alone() -> None:
    assert in_form("not-a-key", KeyForm.PEM_B64URL) == "not-a-key"


def _frame(frame_type: str, payload: dict, to: str = "public") -> str:
    return json.dumps({"type": frame_type, "from": "alice45", "to": to, "ts": 1, "payload": payload, "sig": ""})


def test_plaintext_public_post_of_g45_parses(keys) -> None:
    payload = {"channel": "public", "text": "hello", "from": "alice45", "ts": 1,
               "sender_pub": crypto.encode_public_key(keys[1]), "content_sig": "c2ln"}
    assert envelope.parse(_frame("MSG_PUBLIC_CHANNEL", payload, to="server_*")).payload["text"] == "hello"


def test_public_post_with_neither_ciphertext_nor_text_is_malformed(keys) -> None:
    payload = {"sender_pub": crypto.encode_public_key(keys[1]), "content_sig": "c2ln"}
    with pytest.raises(MalformedFrame, match="ciphertext, text"):
        envelope.parse(_frame("MSG_PUBLIC_CHANNEL", payload))


def test_file_start_without_sha256_parses() -> None:
    payload = {"file_id": "f1", "name": "a.bin", "size": 3000, "sender_pub": "x"}
    assert "sha256" not in envelope.parse(_frame("FILE_START", payload, to="bob")).payload


def test_g17_clients_recorded_argon2_cffi_hash_is_read_and_checked() -> None:
    rows = [json.loads(line) for line in RECORDED_G17.read_text().splitlines()]
    register = next(r["frame"] for r in rows if r["frame"]["type"] == "LOCAL_REGISTER"
                    and r["frame"]["from"].startswith("c64ed348"))
    stored = password_hash.parse_argon2(register["payload"]["pake_password"])
    assert (stored.memory_kib, stored.iterations, stored.lanes) == (65536, 3, 4)   # argon2-cffi's defaults
    assert password_hash.check_password(stored, RECORDED_G17_PASSWORD)
    assert not password_hash.check_password(stored, RECORDED_G17_PASSWORD + "x")


def test_argon2id_hash_checks_the_right_password_only() -> None:
    stored = password_hash.parse_argon2(password_hash.make_hash("right", b"saltsalt1234", 64, 1, 1))
    assert password_hash.check_password(stored, "right")
    assert not password_hash.check_password(stored, "wrong")


@pytest.mark.parametrize("phc", [
    "",
    "plain-text-password",
    "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",     # not argon2id
    "$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",    # old version
    "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",  # 4 GiB: beyond the bounds
    "$argon2id$v=19$m=64,t=99,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
    "$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",         # p missing
    "$argon2id$v=19$m=64,t=1,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA",
    "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",          # 4-byte salt
])
def test_unusable_hashes_are_refused(phc) -> None:
    with pytest.raises(password_hash.PeerLoginError):
        password_hash.parse_argon2(phc)
