"""Password login helpers (socp.protocol.login): derivation, verifier, key blob, proofs.

Tests pass cheap scrypt params explicitly (FAST); the default is only checked, never
lowered.
"""

from __future__ import annotations

import json

import pytest

from socp.protocol import crypto, frames, login
from socp.protocol.encoding import b64url_decode, b64url_encode
from socp.protocol.envelope import parse
from socp.protocol.errors import MalformedFrame
from socp.protocol.keystore import private_key_to_pem

FAST = login.ScryptParams(n=2**10, r=8, p=1)
SALT = bytes(range(16))
NONCE = bytes(range(32))
USER = "3f6c1a9e-8d2b-4c7e-9a51-0b8e2d4f6a13"
SERVER = "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c6d"
OTHER = "0f1e2d3c-4b5a-4968-b7a6-958473625140"


def test_default_params_are_memory_hard() -> None:
    # ~150 ms and 32 MiB on the project machine; recorded in each verifier.
    assert login.DEFAULT_PARAMS == login.ScryptParams(n=2**15, r=8, p=1)
    assert 128 * login.DEFAULT_PARAMS.n * login.DEFAULT_PARAMS.r == 32 * 1024 * 1024


def test_derive_is_deterministic_and_splits_keys() -> None:
    first = login.derive("correct horse", SALT, FAST)
    assert first == login.derive("correct horse", SALT, FAST)
    assert len(first.auth_key) == len(first.enc_key) == 32
    assert first.auth_key != first.enc_key
    assert login.derive("correct horse", bytes(16), FAST) != first       # salt matters
    assert login.derive("correct horsf", SALT, FAST) != first            # password matters
    assert login.derive("correct horse", SALT, login.ScryptParams(2**11, 8, 1)) != first


def test_verifier_round_trips_and_holds_no_auth_key() -> None:
    keys = login.derive("pw", SALT, FAST)
    text = login.make_verifier(keys, SALT, FAST)
    assert text.startswith("socp-scrypt-v1$1024$8$1$")
    verifier = login.parse_verifier(text)
    assert verifier == login.Verifier(FAST, SALT, login.stored_key(keys.auth_key))
    assert b64url_encode(keys.auth_key) not in text and b64url_encode(keys.enc_key) not in text


@pytest.mark.parametrize("text", [
    "", "socp-scrypt-v1$1024$8$1$c2FsdHNhbHQ", "bcrypt$1024$8$1$c2FsdHNhbHQ$" + "A" * 43,
    "socp-scrypt-v1$1000$8$1$c2FsdHNhbHQ$" + "A" * 43,             # n not a power of two
    "socp-scrypt-v1$2097152$8$1$c2FsdHNhbHQ$" + "A" * 43,          # n beyond the bound
    "socp-scrypt-v1$1024$8$1$c2FsdHNhbHQ$QUFB",                    # stored key too short
    "socp-scrypt-v1$x$8$1$c2FsdHNhbHQ$" + "A" * 43, "A" * 600,
])
def test_bad_verifiers_are_refused(text: str) -> None:
    with pytest.raises(login.LoginError):
        login.parse_verifier(text)


def test_proof_checks_with_the_right_password_only() -> None:
    keys = login.derive("pw", SALT, FAST)
    verifier = login.parse_verifier(login.make_verifier(keys, SALT, FAST))
    proof = login.make_proof(keys, NONCE, USER, SERVER)
    assert login.check_proof(verifier, proof, NONCE, USER, SERVER)
    wrong = login.make_proof(login.derive("pW", SALT, FAST), NONCE, USER, SERVER)
    assert not login.check_proof(verifier, wrong, NONCE, USER, SERVER)


def test_proof_is_bound_to_nonce_user_and_server() -> None:
    keys = login.derive("pw", SALT, FAST)
    verifier = login.parse_verifier(login.make_verifier(keys, SALT, FAST))
    proof = login.make_proof(keys, NONCE, USER, SERVER)
    assert not login.check_proof(verifier, proof, bytes(32), USER, SERVER)     # replay on a new nonce
    assert not login.check_proof(verifier, proof, NONCE, OTHER, SERVER)
    assert not login.check_proof(verifier, proof, NONCE, USER, OTHER)


@pytest.mark.parametrize("proof", ["", "!!", "QUFB", b64url_encode(bytes(32)), "A" * 200])
def test_garbage_proofs_fail_without_raising(proof: str) -> None:
    keys = login.derive("pw", SALT, FAST)
    verifier = login.parse_verifier(login.make_verifier(keys, SALT, FAST))
    assert not login.check_proof(verifier, proof, NONCE, USER, SERVER)


def test_stored_verifier_alone_cannot_log_in() -> None:
    # SCRAM property: the stored key is SHA-256(auth key); using it as if it were the
    # auth key gives a proof that fails.
    keys = login.derive("pw", SALT, FAST)
    verifier = login.parse_verifier(login.make_verifier(keys, SALT, FAST))
    thief = login.LoginKeys(auth_key=verifier.stored_key, enc_key=b"")
    assert not login.check_proof(verifier, login.make_proof(thief, NONCE, USER, SERVER), NONCE, USER, SERVER)


def test_private_key_blob_round_trip(keys) -> None:
    secret = login.derive("pw", SALT, FAST)
    blob = login.encrypt_private_key(keys[0], secret.enc_key)
    login.check_privkey_store(blob)
    opened = login.decrypt_private_key(blob, secret.enc_key)
    assert crypto.encode_public_key(opened) == crypto.encode_public_key(keys[0])
    assert blob != login.encrypt_private_key(keys[0], secret.enc_key)   # fresh nonce each time
    # PEM and DER bytes are accepted too, and come back as the same key.
    for given in (private_key_to_pem(keys[0], None), crypto.private_key_der(keys[0])):
        again = login.decrypt_private_key(login.encrypt_private_key(given, secret.enc_key), secret.enc_key)
        assert crypto.encode_public_key(again) == crypto.encode_public_key(keys[0])
    assert crypto.private_key_der(keys[0]) not in b64url_decode(blob.split("$")[2])


def test_blob_refuses_wrong_password_and_tampering(keys) -> None:
    secret = login.derive("pw", SALT, FAST)
    blob = login.encrypt_private_key(keys[0], secret.enc_key)
    with pytest.raises(login.LoginError, match="does not open"):
        login.decrypt_private_key(blob, login.derive("wrong", SALT, FAST).enc_key)
    scheme, nonce, sealed = blob.split("$")
    flipped = bytearray(b64url_decode(sealed))
    flipped[10] ^= 1
    with pytest.raises(login.LoginError):
        login.decrypt_private_key(f"{scheme}${nonce}${b64url_encode(bytes(flipped))}", secret.enc_key)
    for bad in ("", "plain-pem", "socp-aesgcm-v1$AAAA$AAAA", "x" * 20_000):
        with pytest.raises(login.LoginError):
            login.check_privkey_store(bad)


def test_whole_exchange_through_frames(keys) -> None:
    """register -> challenge -> proof -> blob -> key, as client and server would."""
    registration = login.register("pw", keys[0], FAST)
    verifier = login.parse_verifier(registration.pake_password)
    fields = login.challenge_fields(verifier, NONCE)
    challenge = parse(frames.login_challenge(SERVER, USER, 1, fields["nonce"], fields["salt"],
                                             fields["params"]).to_wire())
    proof, secret = login.answer_challenge("pw", USER, challenge.from_, challenge.payload)
    sent = parse(frames.login_proof(USER, SERVER, 2, proof).to_wire())
    assert login.check_proof(verifier, sent.payload["proof"], NONCE, USER, SERVER)
    opened = login.decrypt_private_key(registration.privkey_store, secret.enc_key)
    assert crypto.encode_public_key(opened) == crypto.encode_public_key(keys[0])
    bad_proof, _ = login.answer_challenge("nope", USER, SERVER, challenge.payload)
    assert not login.check_proof(verifier, bad_proof, NONCE, USER, SERVER)


@pytest.mark.parametrize("params", [
    {"kdf": "scrypt", "n": 2**24, "r": 8, "p": 1},     # a hostile server asking for 16 GiB
    {"kdf": "scrypt", "n": 2**20, "r": 32, "p": 1},
    {"kdf": "argon2", "n": 1024, "r": 8, "p": 1},
    {"kdf": "scrypt", "n": 1024, "r": 8},
])
def test_client_refuses_unreasonable_params(params: dict) -> None:
    payload = {"nonce": b64url_encode(NONCE), "salt": b64url_encode(SALT), "params": params}
    with pytest.raises(login.LoginError):
        login.answer_challenge("pw", USER, SERVER, payload)


def test_directory_entry_schema_wants_booleans() -> None:
    entry = frames.directory_entry(SERVER, USER, 1, OTHER, "k" * 10, SERVER, False, 1, False).to_dict()
    entry["payload"]["remote"] = 0
    with pytest.raises(MalformedFrame, match="remote"):
        parse(json.dumps(entry))
