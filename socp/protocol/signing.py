"""Transport signatures (§5) and end-to-end content signatures (§9).

We emit one form of each and verify every form the interop table lists; every
accepted form binds the same fields, so leniency costs no security.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from .crypto import PrivateKey, PublicKey, sign_pss, verify_pss
from .encoding import b64url_decode, b64url_encode, canonical_json, canonical_json_ascii
from .envelope import Envelope
from .errors import InvalidSignature, MalformedFrame
from .frame_types import FrameType

# --- transport signature (§5) -------------------------------------------------------


def transport_signature(private_key: PrivateKey, payload: dict[str, Any]) -> str:
    """What we emit: PSS over the canonical payload."""
    return b64url_encode(sign_pss(private_key, canonical_json(payload)))


def sign_envelope(private_key: PrivateKey, envelope: Envelope) -> Envelope:
    return envelope.with_sig(transport_signature(private_key, envelope.payload))


def _transport_forms(envelope: Envelope, raw: dict[str, Any] | None = None,
                     payload_bytes: bytes | None = None) -> Iterator[bytes]:
    yield canonical_json(envelope.payload) if payload_bytes is None else payload_bytes
    yield canonical_json_ascii(envelope.payload)
    whole = envelope.to_dict()
    del whole["sig"]
    yield canonical_json(whole)
    yield canonical_json_ascii(whole)
    if raw is not None:
        # G101 signs the envelope as sent, with fields we do not keep (a top-level `id`).
        sent = {key: value for key, value in raw.items() if key != "sig"}
        yield canonical_json(sent)
        yield canonical_json_ascii(sent)


def verify_transport(public_key: PublicKey, envelope: Envelope, raw: dict[str, Any] | None = None,
                     payload_bytes: bytes | None = None) -> None:
    """Raise InvalidSignature unless `sig` verifies in one accepted form; `raw`, the
    frame as decoded, adds the form of the envelope exactly as sent. `payload_bytes`:
    the canonical payload, if the caller has made it already."""
    if not envelope.sig:
        raise InvalidSignature("frame is not signed")
    try:
        signature = b64url_decode(envelope.sig)
    except MalformedFrame as exc:
        raise InvalidSignature("signature is not base64url") from exc
    seen: set[bytes] = set()
    for data in _transport_forms(envelope, raw, payload_bytes):
        if data in seen:
            continue
        seen.add(data)
        if verify_pss(public_key, signature, data):
            return
    raise InvalidSignature("transport signature does not verify")


# --- content signatures (§9) ----------------------------------------------------------


def dm_signed_bytes(ciphertext_b64: str, sender: str, recipient: str, ts: int) -> bytes:
    """Project form: ct_bytes + from + to + str(ts)."""
    return b64url_decode(ciphertext_b64) + sender.encode() + recipient.encode() + str(ts).encode()


def public_signed_bytes(ciphertext_b64: str, sender: str, ts: int) -> bytes:
    """Project form for the public channel: ct_bytes + from + str(ts)."""
    return b64url_decode(ciphertext_b64) + sender.encode() + str(ts).encode()


def key_share_signed_bytes(shares: list[dict[str, Any]], creator_pub: str) -> bytes:
    """§7.3: sha256(canonical(shares)) followed by the creator_pub string."""
    return hashlib.sha256(canonical_json(shares)).digest() + creator_pub.encode()


def sign_dm(private_key: PrivateKey, ciphertext_b64: str, sender: str, recipient: str, ts: int) -> str:
    return b64url_encode(sign_pss(private_key, dm_signed_bytes(ciphertext_b64, sender, recipient, ts)))


def sign_public(private_key: PrivateKey, ciphertext_b64: str, sender: str, ts: int) -> str:
    return b64url_encode(sign_pss(private_key, public_signed_bytes(ciphertext_b64, sender, ts)))


def sign_key_share(private_key: PrivateKey, shares: list[dict[str, Any]], creator_pub: str) -> str:
    return b64url_encode(sign_pss(private_key, key_share_signed_bytes(shares, creator_pub)))


def _field_forms(ciphertext_b64: str, names: tuple[str, ...], values: tuple[str | int, ...]) -> Iterator[bytes]:
    """Every peer form of a content signature over ciphertext + fields (§9)."""
    tail = b"".join(str(v).encode() for v in values)
    try:
        raw: bytes | None = b64url_decode(ciphertext_b64) + tail
    except MalformedFrame:
        raw = None  # a peer's junk ciphertext: the forms over its text can still match
    if raw is not None:
        yield raw
    yield ciphertext_b64.encode() + tail
    if raw is not None:
        yield hashlib.sha256(raw).digest()
        yield hashlib.sha256(raw).hexdigest().encode()
    yield "|".join([ciphertext_b64, *(str(v) for v in values)]).encode()
    as_object = {"ciphertext": ciphertext_b64, **dict(zip(names, values, strict=False))}
    yield canonical_json(as_object)


def dm_forms(ciphertext_b64: str, sender: str, recipient: str, ts: int) -> Iterator[bytes]:
    """Every accepted form of a DM's content signature (§9 and peers')."""
    return _field_forms(ciphertext_b64, ("from", "to", "ts"), (sender, recipient, ts))


def public_forms(ciphertext_b64: str, sender: str, ts: int) -> Iterator[bytes]:
    """Every accepted form of a public message's content signature."""
    return _field_forms(ciphertext_b64, ("from", "ts"), (sender, ts))


def key_share_forms(shares: list[dict[str, Any]], creator_pub: str) -> Iterator[bytes]:
    """Every accepted form of a key share's content signature (§7.3 and peers')."""
    yield key_share_signed_bytes(shares, creator_pub)
    yield canonical_json(shares) + creator_pub.encode()
    yield canonical_json({"creator_pub": creator_pub, "shares": shares})


def verify_forms(public_key: PublicKey, content_sig: str, forms: Iterable[bytes]) -> bool:
    """Does `content_sig` verify over one of `forms`? An unreadable signature does not."""
    try:
        signature = b64url_decode(content_sig)
    except MalformedFrame:
        return False
    return any(verify_pss(public_key, signature, data) for data in forms)


def verify_dm(
    public_key: PublicKey, content_sig: str, ciphertext_b64: str, sender: str, recipient: str, ts: int
) -> bool:
    return verify_forms(public_key, content_sig, dm_forms(ciphertext_b64, sender, recipient, ts))


def verify_public(public_key: PublicKey, content_sig: str, ciphertext_b64: str, sender: str, ts: int) -> bool:
    return verify_forms(public_key, content_sig, public_forms(ciphertext_b64, sender, ts))


def verify_key_share(public_key: PublicKey, content_sig: str, shares: list[dict[str, Any]], creator_pub: str) -> bool:
    return verify_forms(public_key, content_sig, key_share_forms(shares, creator_pub))


# --- a user's content frame as sent ---------------------------------------------------


def verify_content_frame(public_key: PublicKey, frame: Envelope) -> bool:
    """Does the `content_sig` of a user's MSG_DIRECT or MSG_PUBLIC_CHANNEL verify with
    `public_key` in one accepted form (§9 and its variants)? What a node checks before
    it spends a signature of its own on the frame (verifier/checks.py).

    Besides the envelope's `from`/`to`/`ts`, a DM may be signed over the `from`, `to`
    and `ts` its payload carries (G101's client: its payload `ts` is not the envelope's);
    only when they name the same sender and recipient, so the signature still binds them.
    A plaintext public post (`text` instead of `ciphertext`: G45's client) is signed over
    the canonical JSON object `{"channel", "text", "from", "ts"}` of its payload."""
    payload = frame.payload
    content_sig = payload.get("content_sig")
    if not isinstance(content_sig, str):
        return False
    ciphertext = payload.get("ciphertext")
    if frame.type == FrameType.MSG_DIRECT:
        if not isinstance(ciphertext, str):
            return False
        if verify_dm(public_key, content_sig, ciphertext, frame.from_, frame.to, frame.ts):
            return True
        ts = payload.get("ts")
        return (
            type(ts) is int
            and ts != frame.ts
            and payload.get("from", frame.from_) == frame.from_
            and payload.get("to", frame.to) == frame.to
            and verify_dm(public_key, content_sig, ciphertext, frame.from_, frame.to, ts)
        )
    if isinstance(ciphertext, str):
        return verify_public(public_key, content_sig, ciphertext, frame.from_, frame.ts)
    text, ts = payload.get("text"), payload.get("ts", frame.ts)
    if not isinstance(text, str) or payload.get("from", frame.from_) != frame.from_ or type(ts) is not int:
        return False
    signed = canonical_json({"channel": payload.get("channel", "public"), "text": text, "from": frame.from_, "ts": ts})
    return verify_forms(public_key, content_sig, (signed,))
