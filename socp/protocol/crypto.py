"""RSA-4096 keys, OAEP encryption and PSS signatures (SOCP §2).

Everything here is a thin, typed layer over `cryptography`; nothing is hand-rolled.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .encoding import b64url_decode, b64url_encode
from .errors import BadKey, InvalidSignature, MalformedFrame
from .limits import MAX_KEY_CHARS, OAEP_BLOCK_BYTES, OAEP_MAX_PLAINTEXT, RSA_BITS, RSA_EXPONENT

PrivateKey = rsa.RSAPrivateKey
PublicKey = rsa.RSAPublicKey

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
# SOCP §2 project decision: sign with salt 32, verify with the salt detected.
_PSS_SIGN = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_PSS_VERIFY = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)


def generate_private_key() -> PrivateKey:
    """A fresh RSA-4096 key with e = 65537 (0.5 to 1.2 s of CPU)."""
    return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=RSA_BITS)


# --- public key encoding -------------------------------------------------------


def public_key_der(key: PublicKey | PrivateKey) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def encode_public_key(key: PublicKey | PrivateKey) -> str:
    """What we emit: base64url(DER SubjectPublicKeyInfo), no padding."""
    return b64url_encode(public_key_der(key))


def validate_public_key(key: object) -> PublicKey:
    """SOCP §2 project decision: RSA, exactly 4096 bits, e = 65537, else BAD_KEY."""
    if not isinstance(key, rsa.RSAPublicKey):
        raise BadKey("not an RSA public key")
    numbers = key.public_numbers()
    if numbers.n.bit_length() != RSA_BITS:
        raise BadKey(f"RSA modulus is {numbers.n.bit_length()} bits, 4096 required")
    if numbers.e != RSA_EXPONENT:
        raise BadKey(f"RSA public exponent is {numbers.e}, 65537 required")
    return key


def _load_any(text: str) -> object:
    """Try every encoding in the interop table; return the loaded key object."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        return serialization.load_pem_public_key(stripped.encode("ascii"))
    raw = b64url_decode(stripped)
    if raw.lstrip().startswith(b"-----BEGIN"):
        return serialization.load_pem_public_key(raw)
    # DER: SubjectPublicKeyInfo, or PKCS#1 RSAPublicKey from some peers.
    return serialization.load_der_public_key(raw)


def decode_public_key(text: str) -> PublicKey:
    """Decode and validate a public key in any accepted form (interop table)."""
    # Checked before the cache, which would raise TypeError on an unhashable value.
    if not isinstance(text, str) or not text or len(text) > MAX_KEY_CHARS:
        raise BadKey("public key missing or too long")
    return _decode_public_key_cached(text)


@lru_cache(maxsize=4096)
def _decode_public_key_cached(text: str) -> PublicKey:
    """Cached: the same few keys arrive on every frame of a link."""
    try:
        key = _load_any(text)
    # UnsupportedAlgorithm: a well-formed SPKI of a key type cryptography cannot load.
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm, MalformedFrame) as exc:
        raise BadKey("public key is not a readable RSA key") from exc
    return validate_public_key(key)


def normalise_public_key(text: str) -> str:
    """Any accepted form in, the form we emit out (validated)."""
    decode_public_key(text)   # checks `text` is hashable text before the cache sees it
    return _normalised_cached(text)


@lru_cache(maxsize=4096)
def _normalised_cached(text: str) -> str:
    """Cached like the decoding: every advert of a joining server's snapshot names a
    key, and re-encoding it was a third of the router's work on the advert."""
    return encode_public_key(decode_public_key(text))


def fingerprint(key: PublicKey | str) -> str:
    """SHA-256 of the DER SPKI, hex, grouped for people to compare."""
    if isinstance(key, str):
        key = decode_public_key(key)
    digest = hashlib.sha256(public_key_der(key)).hexdigest()
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


# --- signatures ------------------------------------------------------------------


def sign_pss(private_key: PrivateKey, data: bytes) -> bytes:
    return private_key.sign(data, _PSS_SIGN, hashes.SHA256())


def verify_pss(public_key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public_key.verify(signature, data, _PSS_VERIFY, hashes.SHA256())
    except _CryptoInvalidSignature:
        return False
    return True


def verify_pss_or_raise(public_key: PublicKey, signature: bytes, data: bytes) -> None:
    if not verify_pss(public_key, signature, data):
        raise InvalidSignature("signature does not verify")


# --- encryption ---------------------------------------------------------------


def oaep_encrypt(public_key: PublicKey, plaintext: bytes) -> bytes:
    """One RSA-OAEP-SHA256 block; at most 446 bytes in, 512 bytes out."""
    if len(plaintext) > OAEP_MAX_PLAINTEXT:
        raise ValueError(f"OAEP block carries at most {OAEP_MAX_PLAINTEXT} bytes")
    return public_key.encrypt(plaintext, _OAEP)


def oaep_decrypt(private_key: PrivateKey, ciphertext: bytes) -> bytes:
    try:
        return private_key.decrypt(ciphertext, _OAEP)
    except ValueError as exc:
        raise MalformedFrame("ciphertext does not decrypt with this key") from exc


def wrap_blocks(public_key: PublicKey, data: bytes) -> bytes:
    """Encrypt arbitrary-length data as consecutive 512-byte OAEP blocks (§7.3)."""
    return b"".join(
        oaep_encrypt(public_key, data[i : i + OAEP_MAX_PLAINTEXT])
        for i in range(0, max(len(data), 1), OAEP_MAX_PLAINTEXT)
    )


def unwrap_blocks(private_key: PrivateKey, blob: bytes) -> bytes:
    """Inverse of wrap_blocks: split every 512 bytes and decrypt each block."""
    if not blob or len(blob) % OAEP_BLOCK_BYTES:
        raise MalformedFrame("wrapped data is not a whole number of 512-byte blocks")
    return b"".join(
        oaep_decrypt(private_key, blob[i : i + OAEP_BLOCK_BYTES])
        for i in range(0, len(blob), OAEP_BLOCK_BYTES)
    )


def private_key_der(private_key: PrivateKey) -> bytes:
    """PKCS#8 DER, the form a channel sending key is wrapped in (§7.3)."""
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key_der(der: bytes) -> PrivateKey:
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadKey("not a private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadKey("not an RSA private key")
    validate_public_key(key.public_key())
    return key
