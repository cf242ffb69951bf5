"""G17's public channel on this node: a group key the server issues (issue #14).

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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from socp.protocol import crypto
from socp.protocol.encoding import b64url_encode
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T

from .events import Action, send_one

KEY_VERSION = 1


@dataclass(slots=True)
class PeerChannel:
    logged_in: set[int] = field(default_factory=set)        # conns that logged in G17's way
    members: dict[str, int] = field(default_factory=dict)   # user_id -> conn, holding the group key
    group_key: bytes = b""
    issuer: crypto.PrivateKey | None = None


def logged_in(channel: PeerChannel, conn: int) -> None:
    channel.logged_in.add(conn)


def left(channel: PeerChannel, user_id: str, conn: int) -> None:
    channel.members.pop(user_id, None)
    channel.logged_in.discard(conn)


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
