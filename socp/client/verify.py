"""The one path that checks what users sign: DMs (§7.2, §9), public messages, sealed
or plain (§7.3), key shares (§7.3) and file manifests (§7.4).

A file's chunks carry no signature of their own (a chunk's transport `sig` is the
server's): the manifest's content_sig binds the file's size and SHA-256 to the
sender's key, and the receiver checks both before the file gets a name (§13), so a
changed or injected chunk fails the file and never changes a saved one.

A caller names the *claims* a content_sig may make: the byte forms it may cover (ours
and the peers' of the interop table), and the ts they vouch for (a DM signed over its
payload's ts is shown at that ts). `verified_claim` returns the first that holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from socp.protocol import crypto, signing
from socp.protocol.encoding import canonical_json, canonical_json_ascii
from socp.protocol.errors import MalformedFrame

from . import dialects


@dataclass(frozen=True, slots=True)
class Claim:
    ts: int
    forms: Callable[[], Iterable[bytes]]     # made on demand: most frames verify in the first


def claimed_key(payload: dict[str, Any], known: str | None) -> str | None:
    """The key to check a content_sig with: the sender's own `sender_pub` when the
    frame carries one (whose owner is then pinned), else the key we know for it."""
    sender_pub = payload.get("sender_pub")
    return sender_pub if isinstance(sender_pub, str) and sender_pub else known


def verified_claim(key: crypto.PublicKey, content_sig: object, claims: Iterable[Claim]) -> Claim | None:
    """The first claim whose content_sig verifies with `key`, None if none does."""
    if not isinstance(content_sig, str):
        return None
    for claim in claims:
        try:
            if signing.verify_forms(key, content_sig, claim.forms()):
                return claim
        except MalformedFrame:      # e.g. a ciphertext that is not base64url
            continue
    return None


def dm_claims(payload: dict[str, Any], sender: str, me: str, envelope_ts: int) -> list[Claim]:
    """§7.2: over the ciphertext, the sender, us and the envelope's ts; else (G101) the
    ts its payload carries, taken only when the payload's from/to name this sender and us."""
    claims = [Claim(envelope_ts, lambda: signing.dm_forms(payload["ciphertext"], sender, me, envelope_ts))]
    signed_ts = dialects.payload_dm_ts(payload, sender, me)
    if signed_ts is not None and signed_ts != envelope_ts:
        claims.append(Claim(signed_ts, lambda: signing.dm_forms(payload["ciphertext"], sender, me, signed_ts)))
    return claims


def public_claims(payload: dict[str, Any], sender: str, ts: int) -> list[Claim]:
    """§7.3: over the ciphertext, the sender and the ts."""
    return [Claim(ts, lambda: signing.public_forms(payload["ciphertext"], sender, ts))]


def plain_public_claims(payload: dict[str, Any], ts: int) -> list[Claim]:
    """G45's plaintext public post: the canonical JSON of {channel, text, from, ts}."""
    signed = {"channel": payload.get("channel"), "text": payload.get("text"),
              "from": payload.get("from"), "ts": payload.get("ts")}
    return [Claim(ts, lambda: (canonical_json(signed), canonical_json_ascii(signed)))]


def key_share_claims(shares: list[dict[str, Any]], creator_pub: str, ts: int) -> list[Claim]:
    return [Claim(ts, lambda: signing.key_share_forms(shares, creator_pub))]


def manifest_claims(payload: dict[str, Any], sender: str, to: str, ts: int) -> list[Claim]:
    """A FILE_START's manifest (the project extension, or G45's form)."""
    return [Claim(ts, lambda: dialects.manifest_forms(payload, sender, to, ts))]
