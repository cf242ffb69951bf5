"""RSA-4096 keys, OAEP and PSS (SOCP §2) and the public key forms of the interop table."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from socp.protocol import crypto, limits
from socp.protocol.encoding import b64url_encode
from socp.protocol.errors import BadKey, ErrorCode, InvalidSignature, MalformedFrame


def test_sign_verify_round_trip(keys) -> None:
    signature = crypto.sign_pss(keys[0], b"payload bytes")
    assert len(signature) == 512
    assert crypto.verify_pss(keys[0].public_key(), signature, b"payload bytes")
    assert not crypto.verify_pss(keys[0].public_key(), signature, b"payload bytez")
    assert not crypto.verify_pss(keys[1].public_key(), signature, b"payload bytes")


def test_verify_pss_or_raise_raises_invalid_sig(keys) -> None:
    signature = crypto.sign_pss(keys[0], b"a")
    crypto.verify_pss_or_raise(keys[0].public_key(), signature, b"a")
    with pytest.raises(InvalidSignature) as info:
        crypto.verify_pss_or_raise(keys[0].public_key(), signature, b"b")
    assert info.value.code is ErrorCode.INVALID_SIG


@pytest.mark.parametrize("signature", [b"", b"\x00", b"\x01" * 511, b"\x01" * 513])
def test_verify_pss_refuses_wrong_length_signatures(keys, signature: bytes) -> None:
    assert not crypto.verify_pss(keys[0].public_key(), signature, b"a")


@pytest.mark.parametrize("size", [0, 1, 100, limits.OAEP_MAX_PLAINTEXT])
def test_oaep_round_trip(keys, size: int) -> None:
    plaintext = bytes(range(256)) * 2
    plaintext = plaintext[:size]
    ciphertext = crypto.oaep_encrypt(keys[1].public_key(), plaintext)
    assert len(ciphertext) == limits.OAEP_BLOCK_BYTES
    assert crypto.oaep_decrypt(keys[1], ciphertext) == plaintext


def test_oaep_is_randomised(keys) -> None:
    public_key = keys[1].public_key()
    assert crypto.oaep_encrypt(public_key, b"same") != crypto.oaep_encrypt(public_key, b"same")


def test_oaep_refuses_more_than_446_bytes(keys) -> None:
    with pytest.raises(ValueError, match="446"):
        crypto.oaep_encrypt(keys[1].public_key(), b"x" * (limits.OAEP_MAX_PLAINTEXT + 1))


def test_oaep_decrypt_with_the_wrong_key_is_malformed(keys) -> None:
    ciphertext = crypto.oaep_encrypt(keys[1].public_key(), b"for key 1")
    with pytest.raises(MalformedFrame):
        crypto.oaep_decrypt(keys[0], ciphertext)


def test_wrap_blocks_round_trips_a_pkcs8_private_key(keys) -> None:
    der = crypto.private_key_der(keys[2])
    blob = crypto.wrap_blocks(keys[1].public_key(), der)
    # A PKCS#8 RSA-4096 key is over 2 kB: several 512-byte blocks, split every 446 bytes.
    expected_blocks = -(-len(der) // limits.OAEP_MAX_PLAINTEXT)
    assert expected_blocks > 1
    assert len(blob) == expected_blocks * limits.OAEP_BLOCK_BYTES
    unwrapped = crypto.unwrap_blocks(keys[1], blob)
    assert unwrapped == der
    restored = crypto.load_private_key_der(unwrapped)
    assert restored.private_numbers() == keys[2].private_numbers()


def test_wrap_blocks_of_empty_data_is_one_block(keys) -> None:
    blob = crypto.wrap_blocks(keys[1].public_key(), b"")
    assert len(blob) == limits.OAEP_BLOCK_BYTES
    assert crypto.unwrap_blocks(keys[1], blob) == b""


@pytest.mark.parametrize("blob", [b"", b"\x00" * 511, b"\x00" * 513])
def test_unwrap_blocks_refuses_partial_blocks(keys, blob: bytes) -> None:
    with pytest.raises(MalformedFrame):
        crypto.unwrap_blocks(keys[1], blob)


def test_load_private_key_der_refuses_garbage() -> None:
    with pytest.raises(BadKey):
        crypto.load_private_key_der(b"\x30\x03\x02\x01\x00")


# --- public key forms (interop table) ---------------------------------------------


def _public_key_forms(key: rsa.RSAPrivateKey) -> dict[str, str]:
    public_key = key.public_key()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1_der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    pkcs1_pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    return {
        "b64url-der-spki": b64url_encode(der),
        "padded": base64.urlsafe_b64encode(der).decode(),
        "standard-alphabet": base64.b64encode(der).decode(),
        "raw-pem": pem.decode(),
        "raw-pem-with-whitespace": "\n  " + pem.decode() + "\n",
        "b64url-of-pem": b64url_encode(pem),
        "padded-b64-of-pem": base64.b64encode(pem).decode(),
        "b64url-pkcs1-der": b64url_encode(pkcs1_der),
        "raw-pkcs1-pem": pkcs1_pem.decode(),
    }


FORM_NAMES = [
    "b64url-der-spki", "padded", "standard-alphabet", "raw-pem", "raw-pem-with-whitespace",
    "b64url-of-pem", "padded-b64-of-pem", "b64url-pkcs1-der", "raw-pkcs1-pem",
]


def test_the_padded_and_standard_forms_really_differ(keys) -> None:
    # Otherwise the two tests below would not exercise the lenient paths.
    forms = _public_key_forms(keys[0])
    assert forms["padded"].endswith("=")
    assert any(c in forms["standard-alphabet"] for c in "+/")
    assert len(set(forms.values())) == len(forms)


@pytest.mark.parametrize("form", FORM_NAMES)
def test_decode_public_key_accepts_every_interop_form(keys, form: str) -> None:
    text = _public_key_forms(keys[0])[form]
    decoded = crypto.decode_public_key(text)
    assert decoded.public_numbers() == keys[0].public_key().public_numbers()
    # Whatever came in, we emit base64url DER SPKI without padding.
    assert crypto.normalise_public_key(text) == crypto.encode_public_key(keys[0])


def test_encode_public_key_is_unpadded_b64url_der_spki(keys) -> None:
    text = crypto.encode_public_key(keys[0])
    assert "=" not in text and "+" not in text and "/" not in text
    assert crypto.encode_public_key(keys[0].public_key()) == text


def test_fingerprint_is_the_same_for_every_form(keys) -> None:
    prints = {crypto.fingerprint(text) for text in _public_key_forms(keys[0]).values()}
    assert prints == {crypto.fingerprint(keys[0].public_key())}
    assert crypto.fingerprint(keys[0].public_key()) != crypto.fingerprint(crypto.encode_public_key(keys[1]))


def _spki_text(public_key: object) -> str:
    der = public_key.public_bytes(  # type: ignore[attr-defined]  # any public key object
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url_encode(der)


def test_rsa_1024_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(BadKey, match="1024 bits"):
        crypto.decode_public_key(_spki_text(weak.public_key()))


def test_rsa_4096_with_exponent_3_is_refused(keys) -> None:
    # A real 4096-bit modulus with e=3: as big as ours, but a small exponent.
    modulus = keys[0].public_key().public_numbers().n
    weak = rsa.RSAPublicNumbers(e=3, n=modulus).public_key()
    with pytest.raises(BadKey, match="exponent is 3"):
        crypto.decode_public_key(_spki_text(weak))


def test_rsa_4095_bit_modulus_is_refused(keys) -> None:
    modulus = keys[0].public_key().public_numbers().n >> 1 | 1
    short = rsa.RSAPublicNumbers(e=65537, n=modulus).public_key()
    with pytest.raises(BadKey, match="4095 bits"):
        crypto.decode_public_key(_spki_text(short))


@pytest.mark.parametrize("maker", [lambda: ec.generate_private_key(ec.SECP256R1()),
                                   lambda: ed25519.Ed25519PrivateKey.generate()], ids=["ec", "ed25519"])
def test_non_rsa_keys_are_refused(maker) -> None:
    with pytest.raises(BadKey, match="not an RSA"):
        crypto.decode_public_key(_spki_text(maker().public_key()))


def test_spki_of_an_unknown_algorithm_is_bad_key() -> None:
    # A well-formed SPKI whose algorithm OID no library knows (1.3.101.99).
    der = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unknown = der.replace(bytes.fromhex("06032b6570"), bytes.fromhex("06032b6563"))
    assert unknown != der
    with pytest.raises(BadKey):
        crypto.decode_public_key(b64url_encode(unknown))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "!!!!",
        "A",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\nZoë\n-----END PUBLIC KEY-----\n",
        b64url_encode(b"\x30\x82\x02\x22" + b"\x00" * 40),
        "x" * (limits.MAX_KEY_CHARS + 1),
    ],
    ids=["empty", "word", "punctuation", "one-char", "short-pem", "non-ascii-pem", "truncated-der", "too-long"],
)
def test_garbage_is_bad_key(text: str) -> None:
    with pytest.raises(BadKey) as info:
        crypto.decode_public_key(text)
    assert info.value.code is ErrorCode.BAD_KEY


@pytest.mark.parametrize("value", [None, 42, b"bytes", ["list"], {"a": 1}])
def test_non_text_is_bad_key(value: object) -> None:
    with pytest.raises(BadKey):
        crypto.decode_public_key(value)  # type: ignore[arg-type]  # wrong types on purpose


def test_generated_keys_meet_the_standard(keys) -> None:
    # The pool's keys come from crypto.generate_private_key.
    public_key = keys[0].public_key()
    assert public_key.key_size == limits.RSA_BITS
    assert public_key.public_numbers().e == limits.RSA_EXPONENT
    assert crypto.validate_public_key(public_key) is public_key
