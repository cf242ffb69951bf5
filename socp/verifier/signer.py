"""What a verifier does with one outbound frame: sign once, address many. Pure.

A `SignJob` is one payload the router sends to several connections (a public
message fanned out, a presence change gossiped to every server). The transport
signature covers the payload only (SOCP §5), so one RSA-PSS signature, the one
costly step, serves every copy; each copy differs only in `to`.
"""

from __future__ import annotations

from collections import OrderedDict

import orjson

from socp.ipc.messages import MAX_MESSAGE_BYTES, Deliver, SignJob
from socp.protocol.crypto import PrivateKey
from socp.protocol.encoding import canonical_json
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType
from socp.protocol.g101_link import sign_whole_envelope
from socp.protocol.signing import transport_signature

# A Deliver must unpack under MAX_MESSAGE_BYTES at the gateway; a wide fan-out of a
# large payload (a public file chunk) is split over several Delivers to stay there.
DELIVER_BUDGET_BYTES = MAX_MESSAGE_BYTES // 2
# Everything in a frame text besides the payload: type, from, to, ts, sig (683
# chars), field names and punctuation. An upper bound for the router's own values.
ENVELOPE_OVERHEAD_BYTES = 1024


# Payloads the router sends again unchanged: the USER_ADVERTISE of each present user
# goes to every newcomer (router/user_presence.py) and to every new server link.
REUSED_TYPES = frozenset({FrameType.USER_ADVERTISE.value})


class ReusedSignatures:
    """The signatures of recent REUSED_TYPES payloads (bounded, least recent dropped).

    The transport signature covers the payload only (SOCP §5), so a signature made
    for a payload is valid on every later frame carrying the same payload; re-using
    it saves an RSA signature per newcomer per present user."""

    def __init__(self, limit: int = 8192) -> None:
        self._limit = limit
        self._sigs: OrderedDict[bytes, str] = OrderedDict()
        self.reused = 0   # a counter you can read

    def __len__(self) -> int:
        return len(self._sigs)

    def signature(self, private_key: PrivateKey, job: SignJob) -> str:
        if job.frame_type not in REUSED_TYPES:
            return transport_signature(private_key, job.payload)
        key = canonical_json(job.payload)
        sig = self._sigs.get(key)
        if sig is not None:
            self._sigs.move_to_end(key)
            self.reused += 1
            return sig
        sig = self._sigs[key] = transport_signature(private_key, job.payload)
        if len(self._sigs) > self._limit:
            self._sigs.popitem(last=False)
        return sig


def sign_job(private_key: PrivateKey, job: SignJob, reused: ReusedSignatures | None = None) -> list[Deliver]:
    """Sign `job.payload` once (or re-use its signature, `reused`); return the frame
    text of every delivery.

    One Deliver holds all of them unless together they would pass
    DELIVER_BUDGET_BYTES; an empty job gives no Deliver and no signature.
    """
    if not job.deliveries:
        return []
    if job.whole_envelope:
        return [Deliver(items=[(conn, out_seq, _whole(private_key, job, to)) for conn, out_seq, to in job.deliveries])]
    sig = reused.signature(private_key, job) if reused is not None else transport_signature(private_key, job.payload)
    # Serialise the payload once, not once per copy (it may be a large chunk).
    payload_json = orjson.dumps(job.payload)
    payload_fragment = orjson.Fragment(payload_json)
    item_bytes = len(payload_json) + ENVELOPE_OVERHEAD_BYTES
    per_deliver = max(1, DELIVER_BUDGET_BYTES // item_bytes)
    items = [
        (conn, out_seq, Envelope(type=job.frame_type, from_=job.sender, to=to, ts=job.ts,
                                 payload=payload_fragment, sig=sig).to_wire())  # type: ignore[arg-type]  # an orjson.Fragment: the payload, serialised once for all
        for conn, out_seq, to in job.deliveries
    ]
    return [Deliver(items=items[i : i + per_deliver]) for i in range(0, len(items), per_deliver)]


def _whole(private_key: PrivateKey, job: SignJob, to: str) -> str:
    """One copy signed over its whole envelope, `to` included (a G101 peer's link
    opening, protocol/g101_link.py): a signature per copy, for the one or two copies
    such a job has."""
    frame = Envelope(type=job.frame_type, from_=job.sender, to=to, ts=job.ts, payload=job.payload)
    return sign_whole_envelope(private_key, frame).to_wire()
