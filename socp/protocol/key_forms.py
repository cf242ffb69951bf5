"""Public keys in the encoding a client reads (interop table, "keys handed to a client").

We keep and emit base64url(DER SPKI). Some peers' clients read keys only in the
form they use themselves: G56's client loads every key as base64url(PEM text) and
fails on DER ("Unable to load PEM file"); G2 and others send raw PEM. So a key we
hand to a client (in a delivery's `sender_pub`, a USER_ADVERTISE's `meta.pubkey`, a
look-up answer) is re-encoded in the form that client's own USER_HELLO used.
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache

from cryptography.hazmat.primitives import serialization

from .crypto import decode_public_key, encode_public_key
from .encoding import b64url_decode, b64url_encode
from .errors import BadKey, MalformedFrame


class KeyForm(str, Enum):
    DER_B64URL = "der-b64url"    # ours, and the majority's
    PEM_B64URL = "pem-b64url"    # G56, G40
    PEM = "pem"                  # G2, CodingGeeks, ari7rez


def form_of(text: str) -> KeyForm:
    """The encoding of a key as a client sent it (its validity is checked elsewhere)."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        return KeyForm.PEM
    try:
        raw = b64url_decode(stripped[:64])
    except MalformedFrame:
        return KeyForm.DER_B64URL
    if raw.startswith(b"-----BEGIN"):
        return KeyForm.PEM_B64URL
    return KeyForm.DER_B64URL


@lru_cache(maxsize=4096)
def in_form(pubkey: str, form: KeyForm) -> str:
    """`pubkey`, in any accepted encoding, re-encoded as `form`; an unreadable key is
    returned unchanged (the client refuses it as it would anyway)."""
    if not pubkey:
        return pubkey
    try:
        key = decode_public_key(pubkey)
    except BadKey:
        return pubkey
    if form is KeyForm.DER_B64URL:
        return encode_public_key(key)
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if form is KeyForm.PEM:
        return pem.decode("ascii")
    return b64url_encode(pem)
