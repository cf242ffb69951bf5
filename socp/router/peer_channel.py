"""Public channel keys other teams' clients need from their server (issue #14):
G17's group key, and G101's channel key pair (at the end).

G17:

G17's client posts publicly only once its server has handed it a group key:

    PUBLIC_CHANNEL_KEY_SHARE {version, shares: [{member, wrapped}], creator_pub, content_sig}
        wrapped     = RSA-OAEP-SHA256(group key, label "public-v<version>") to the member's key
        content_sig = PSS-SHA256(SHA-256(shares as sorted, compact, ASCII JSON) ‖ DER(creator_pub))

It then asks PUBLIC_MEMBERS_SNAPSHOT, encrypts its text to each member listed with an
OAEP label derived from the group key (SHA-256("public|<version>|" ‖ key)), and sends
one MSG_PUBLIC_CHANNEL per member with `to` = that member.

The group key protects nothing by itself (each copy is encrypted to its member's own
key; the label only ties the copy to the channel), so the node may issue it. Rules:

- one group key per router run, issued at its USER_HELLO to each connection that
  logged in with G17's password login (`peer_login` marks it), in a share for that
  member only, signed by an issuing key the router makes the first time it is needed
  (RSA-4096: about a second of the router's time, once per run);
- PUBLIC_MEMBERS_SNAPSHOT lists only the local users holding the key: nobody else can
  read such a copy (our client, G45's and G56's do not use OAEP labels);
- a MSG_PUBLIC_CHANNEL whose `to` is one of them goes to that user only, unchanged.

G101 (its server makes one RSA key pair for the channel and hands every member the
private key): its client encrypts a public post to the channel's public key and reads
posts only as USER_DELIVER with `from` = the poster. So, for each connection that
says hello G101's way (`to` = "server@host:port", users.py):

- at its hello, PUBLIC_CHANNEL_KEY_SHARE {shares: [{member, wrapped_public_channel_key}],
  creator_pub, content_sig}: the channel's private key (PKCS#8 DER) under AES-256-GCM,
  the AES key under RSA-OAEP to the member, packed as base64url(JSON {alg:
  "A256GCM+RSAOAEP", iv, ek, ct}); creator_pub the channel's public key, content_sig
  its PSS signature over the canonical {shares, creator_pub};
- every public post with a ciphertext reaches it as USER_DELIVER {ciphertext,
  sender_pub, content_sig}, `from` the poster, the poster's `ts`.

This node therefore holds a key that opens G101's public posts (as G101's own server
does); posts in other forms (ours, G45's, G56's) are not affected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from socp.protocol import crypto
from socp.protocol.encoding import b64url_encode, canonical_json
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import PUBLIC_CHANNEL

from .core_io import Action, Send, send_one

KEY_VERSION = 1


@dataclass(slots=True)
class PeerChannel:
    logged_in: set[int] = field(default_factory=set)        # conns that logged in G17's way
    members: dict[str, int] = field(default_factory=dict)   # user_id -> conn, holding the group key
    group_key: bytes = b""
    issuer: crypto.PrivateKey | None = None
    g101_members: dict[int, str] = field(default_factory=dict)   # conn -> user_id, holding G101's channel key
    g101_key: crypto.PrivateKey | None = None


def logged_in(channel: PeerChannel, conn: int) -> None:
    channel.logged_in.add(conn)


def left(channel: PeerChannel, user_id: str, conn: int) -> None:
    channel.members.pop(user_id, None)
    channel.logged_in.discard(conn)
    channel.g101_members.pop(conn, None)


def hello(channel: PeerChannel, me: str, now_ms: int, random_bytes: Callable[[int], bytes], conn: int,
          user_id: str, pubkey: str) -> list[Action]:
    """A user said hello: if it logged in G17's way, hand it the group key."""
    if conn not in channel.logged_in:
        return []
    if not channel.group_key:
        channel.group_key = random_bytes(32)
    if channel.issuer is None:
        channel.issuer = crypto.generate_private_key()
    label = f"public-v{KEY_VERSION}".encode()
    wrapped = crypto.decode_public_key(pubkey).encrypt(
        channel.group_key,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label))
    shares = [{"member": user_id, "wrapped": b64url_encode(wrapped)}]
    creator_pub = crypto.encode_public_key(channel.issuer)
    signed = hashlib.sha256(json.dumps(shares, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
                            .encode()).digest() + crypto.public_key_der(channel.issuer)
    payload = {"version": KEY_VERSION, "shares": shares, "creator_pub": creator_pub,
               "content_sig": b64url_encode(crypto.sign_pss(channel.issuer, signed))}
    channel.members[user_id] = conn
    return [send_one(conn, Envelope(type=T.PUBLIC_CHANNEL_KEY_SHARE.value, from_=me, to=user_id, ts=now_ms,
                                    payload=payload))]


def directed_copy(channel: PeerChannel, frame: Envelope) -> list[Action] | None:
    """A G17 copy addressed to one key holder goes to it alone; None for anything else."""
    conn = channel.members.get(frame.to)
    if conn is None:
        return None
    return [send_one(conn, Envelope(type=frame.type, from_=frame.from_, to=frame.to, ts=frame.ts,
                                    payload=frame.payload))]


# --- G101 ----------------------------------------------------------------------------

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def g101_hello(channel: PeerChannel, me: str, now_ms: int, random_bytes: Callable[[int], bytes], conn: int,
               user_id: str, pubkey: str) -> list[Action]:
    """A user said hello G101's way: hand it the channel's key pair."""
    if channel.g101_key is None:
        channel.g101_key = crypto.generate_private_key()
    aes_key, iv = random_bytes(32), random_bytes(12)
    package = {"alg": "A256GCM+RSAOAEP", "iv": b64url_encode(iv),
               "ek": b64url_encode(crypto.decode_public_key(pubkey).encrypt(aes_key, _OAEP)),
               "ct": b64url_encode(AESGCM(aes_key).encrypt(iv, crypto.private_key_der(channel.g101_key), None))}
    shares = [{"member": user_id,
               "wrapped_public_channel_key": b64url_encode(json.dumps(package, separators=(",", ":")).encode())}]
    creator_pub = crypto.encode_public_key(channel.g101_key)
    content_sig = crypto.sign_pss(channel.g101_key, canonical_json({"shares": shares, "creator_pub": creator_pub}))
    channel.g101_members[conn] = user_id
    payload = {"shares": shares, "creator_pub": creator_pub, "content_sig": b64url_encode(content_sig)}
    return [send_one(conn, Envelope(type=T.PUBLIC_CHANNEL_KEY_SHARE.value, from_=me, to=user_id, ts=now_ms,
                                    payload=payload))]


def g101_copies(channel: PeerChannel, frame: Envelope, conns: tuple[int, ...]) -> list[Action]:
    """A public post as G101's members read it: USER_DELIVER from the poster."""
    if not conns or not isinstance(frame.payload.get("ciphertext"), str):
        return []
    payload = {name: frame.payload[name] for name in ("ciphertext", "sender_pub", "content_sig")}
    deliver = Envelope(type=T.USER_DELIVER.value, from_=frame.from_, to=PUBLIC_CHANNEL, ts=frame.ts, payload=payload)
    return [Send(tuple((conn, channel.g101_members[conn]) for conn in conns), deliver)]
