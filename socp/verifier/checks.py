"""What a verifier decides about one inbound frame: a pure function, no sockets.

`check_job(job)` turns a `VerifyJob` into a `Verified` (the frame as an envelope
map and the digest of its canonical payload) or a `Rejected` (an error code the
router answers with). The order of the checks is fixed so a frame always gets the
same answer:

1. parse and validate the envelope (MALFORMED, UNKNOWN_TYPE);
2. every public key a payload carries must be an RSA-4096, e = 65537 key (BAD_KEY);
3. signatures, by the role of the connection (INVALID_SIG):
   - a server's frames always carry a transport signature that verifies with the
     key the gateway pinned for the link (SOCP §5); the one exception is presence
     gossip (USER_ADVERTISE, USER_REMOVE) relayed unchanged with its origin's
     signature (§6.2): it is passed on with `link_signed` False, and the router
     checks it with the key pinned for the server the payload names, which the
     gateway does not know;
   - a user's frames need none (interop table), except that a USER_HELLO which
     carries a signature must be signed by the key it introduces;
   - a user's MSG_DIRECT and MSG_PUBLIC_CHANNEL must carry a `content_sig` that
     verifies with their `sender_pub` in one accepted form (SOCP §9, interop table;
     `signing.verify_content_frame`). Every recipient would refuse the frame anyway,
     and the node would spend a signature (1.2-6 ms) delivering it: checking costs
     0.05-0.5 ms, so a flood of frames nobody signed costs its sender a signature
     each, or gets nowhere (issue #15 item 4); a connection whose checks keep
     failing has its further ones refused unchecked for a while (budget.py);
   - on a connection whose role the gateway does not know yet, a server's opening
     frame must be signed by the key it introduces, as it would have to be on a
     server link: `Verified` does not say which role a frame was checked under, so
     no server frame reaches the router unsigned. Other frames are only validated.
   - the one exception to "a server signs": a link we dialled to a peer the operator
     marked `unsigned_link: true` in its bootstrap entry (G56 signs neither its
     welcome nor its announcements) carries `unsigned_ok`; there a frame with no
     `sig` passes, and a frame with one must still verify (interop table).
   - a link to or from a peer whose pinned key the operator marked `g101_link: true`
     carries `g101_address`: its frames are first read into the reference's form
     (ISO `ts` to ms, protocol/g101_link.py), and their signatures checked over the
     frame as sent. Its link openings must be signed (G101 signs them, over the
     whole envelope); its other frames come unsigned (G101 signs nothing else).

Only `SocpError`s become `Rejected`; any other exception is a bug and propagates.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from socp.ipc.messages import ROLE_SERVER, ROLE_UNKNOWN, Rejected, Verified, VerifyJob
from socp.protocol import envelope, g101_link
from socp.protocol.acks import msg_ref_of_obj
from socp.protocol.crypto import decode_public_key
from socp.protocol.encoding import canonical_json
from socp.protocol.errors import BadKey, InvalidSignature, RateLimited, SocpError
from socp.protocol.frame_types import KNOWN_TYPES, SERVER_OPENING_TYPES, FrameType
from socp.protocol.signing import verify_content_frame, verify_transport

from .budget import FailedChecks

# Payload fields that hold a public key, on whichever frame type carries them.
KEY_FIELDS = ("pubkey", "enc_pubkey", "sender_pub", "creator_pub")
# Frames a server may relay with their origin's signature (SOCP §6.2 gossip).
RELAYED_TYPES = frozenset({FrameType.USER_ADVERTISE, FrameType.USER_REMOVE})
# What a G101 server signs (its hello, welcome and announce): never taken unsigned from it.
G101_SIGNED_TYPES = SERVER_OPENING_TYPES | {FrameType.SERVER_WELCOME}
# G101's channel frames, signed with its public channel's private key, which it hands to
# every member (its server.py _broadcast_public_add_updated): that proves no server.
G101_CHANNEL_TYPES = frozenset({FrameType.PUBLIC_CHANNEL_ADD, FrameType.PUBLIC_CHANNEL_UPDATED})
# A user's frames whose content_sig is checked here (see the module docstring).
CONTENT_SIGNED_TYPES = frozenset({FrameType.MSG_DIRECT, FrameType.MSG_PUBLIC_CHANNEL})


def check_job(job: VerifyJob, check_content: bool = True, failures: FailedChecks | None = None) -> Verified | Rejected:
    """Validate one inbound frame for the router (see the module docstring).
    `check_content` False skips the content_sig check (content_sig_checks());
    `failures` bounds what failed content signatures may cost per connection (budget.py)."""
    frame_type = ""
    raw = None
    try:
        raw = envelope.load_json(job.text)
        frame_type = readable_type(raw)
        frame = envelope.parse_obj(in_reference_form(raw, job))
        check_keys(frame)
        # What a transport signature covers and the replay digest hashes: made once
        # (a snapshot of 100,000 adverts made it twice each).
        payload_bytes = canonical_json(frame.payload)
        link_signed = True
        if job.g101_address and frame.type in G101_CHANNEL_TYPES and frame.from_ == g101_link.NAMELESS_SERVER:
            raise InvalidSignature(f"{frame.type} from G101 is signed with its channel key, which each of its "
                                   "members holds: not taken (docs/interop.md, note c12)")
        try:
            if not (unsigned_may_pass(job, frame) and not frame.sig):
                check_signature(frame, job.role, job.verify_key, raw, payload_bytes)
        except InvalidSignature:
            if not (job.role == ROLE_SERVER and job.verify_key and frame.type in RELAYED_TYPES):
                raise
            link_signed = False
        if check_content and job.role != ROLE_SERVER and frame.type in CONTENT_SIGNED_TYPES:
            check_content_sig(frame, job.conn, failures)
        digest = hashlib.sha256(payload_bytes).digest()   # SOCP §8: part of the replay cache key
    except SocpError as exc:
        # Named, so the sender learns which frame failed (no silent drops, protocol/acks.py).
        return Rejected(job.conn, job.seq, exc.code.value, exc.detail, frame_type, msg_ref_of_obj(raw))
    return Verified(job.conn, job.seq, frame.to_dict(), digest, link_signed)


def in_reference_form(raw: Any, job: VerifyJob) -> Any:
    """`raw` as the reference writes it, on a link opted in to G101's form; as it is
    everywhere else."""
    if not (job.g101_address and job.role == ROLE_SERVER and isinstance(raw, dict)):
        return raw
    host, _, port = job.g101_address.rpartition(":")
    return g101_link.reference_form(raw, listens_at=(host, int(port)))


def unsigned_may_pass(job: VerifyJob, frame: envelope.Envelope) -> bool:
    """May this server frame come without `sig`? Only by the operator's consent for
    its link: any frame from a G56 peer we dialled (`unsigned_link`), any but an
    opening from a G101 peer (`g101_link`)."""
    if job.role != ROLE_SERVER:
        return False
    if job.g101_address:
        return frame.type not in G101_SIGNED_TYPES
    return job.unsigned_ok


def readable_type(raw: Any) -> str:
    """The frame's type if it is one we know, else "" (never echo an unknown type)."""
    if isinstance(raw, dict):
        frame_type = raw.get("type")
        if isinstance(frame_type, str) and frame_type in KNOWN_TYPES:
            return frame_type
    return ""


def _require_key(name: str, value: Any) -> None:
    # decode_public_key is lru-cached, so it must only ever see hashable text.
    if not isinstance(value, str):
        raise BadKey(f"field '{name}' is not a public key")
    try:
        decode_public_key(value)
    except BadKey as exc:
        raise BadKey(f"field '{name}': {exc.detail}") from exc


def check_keys(frame: envelope.Envelope) -> None:
    """SOCP §2 project decision: every key a frame carries is RSA-4096 with e = 65537."""
    payload = frame.payload
    for name in KEY_FIELDS:
        value = payload.get(name)
        if value is not None:
            _require_key(f"payload.{name}", value)
    if frame.type == FrameType.USER_ADVERTISE:
        # SOCP §6.2 project decision: meta.pubkey is the advertised user's key.
        meta = payload.get("meta")
        if isinstance(meta, dict) and meta.get("pubkey") is not None:
            _require_key("payload.meta.pubkey", meta["pubkey"])


def content_sig_checks() -> bool:
    """SOCP_CHECK_CONTENT_SIG=0 turns the content_sig check off, visibly (the verifier
    logs it): only for replaying recorded peer frames, whose ts must be refreshed
    (tests/interop). Every node checks by default."""
    return os.environ.get("SOCP_CHECK_CONTENT_SIG", "1") != "0"


def check_signature(frame: envelope.Envelope, role: int, verify_key: str, raw: Any = None,
                    payload_bytes: bytes | None = None) -> None:
    """Raise InvalidSignature (or BadKey for an unusable pinned key) per the role.

    Keys taken from the payload have already passed `check_keys`. `raw` is the frame
    as decoded: a user's hello may be signed over it as sent (G101 adds an `id`).
    `payload_bytes`: the canonical payload, if made already.
    """
    if role == ROLE_SERVER:
        # SOCP §5: every frame from a server is signed; interop table: never unsigned.
        if not verify_key:
            raise InvalidSignature("no key is pinned for this server link")
        verify_transport(decode_public_key(verify_key), frame, raw if isinstance(raw, dict) else None, payload_bytes)
    elif role == ROLE_UNKNOWN and frame.type in SERVER_OPENING_TYPES:
        pubkey = frame.payload.get("pubkey")
        if pubkey is None:   # a SERVER_ANNOUNCE may come without one (G17); it opens nothing
            raise InvalidSignature("a server's first frame must carry the key it is signed with")
        verify_transport(decode_public_key(pubkey), frame, raw if isinstance(raw, dict) else None, payload_bytes)
    elif frame.type == FrameType.USER_HELLO and frame.sig:
        # Interop table: a hello may be unsigned, but a signature it does carry
        # must be by the key it introduces.
        verify_transport(decode_public_key(frame.payload["pubkey"]), frame, raw if isinstance(raw, dict) else None,
                         payload_bytes)


def check_content_sig(frame: envelope.Envelope, conn: int, failures: FailedChecks | None = None) -> None:
    """A user's DM or public post: its content_sig must verify with its sender_pub
    (module docstring); RATE_LIMITED, unchecked, once `conn` failed too often."""
    refusal = failures.refusal(conn) if failures is not None else ""
    if refusal:
        raise RateLimited(f"{frame.type}: {refusal}")
    if not verify_content_frame(decode_public_key(frame.payload["sender_pub"]), frame):
        if failures is not None:
            failures.failed(conn)
        raise InvalidSignature(f"{frame.type}: content_sig does not verify with sender_pub in any accepted "
                               "form (SOCP section 9); the node does not deliver it")
