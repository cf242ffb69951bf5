"""What a verifier does with one outbound frame: sign once, address many. Pure.

A `SignJob` is one payload the router sends to several connections (a public
message fanned out, a presence change gossiped to every server). The transport
signature covers the payload only (SOCP §5), so one RSA-PSS signature, the one
costly step, serves every copy; each copy differs only in `to`.
"""

from __future__ import annotations

import orjson

from socp.ipc.messages import MAX_MESSAGE_BYTES, Deliver, SignJob
from socp.protocol.crypto import PrivateKey
from socp.protocol.envelope import Envelope
from socp.protocol.signing import transport_signature

# A Deliver must unpack under MAX_MESSAGE_BYTES at the gateway; a wide fan-out of a
# large payload (a public file chunk) is split over several Delivers to stay there.
DELIVER_BUDGET_BYTES = MAX_MESSAGE_BYTES // 2
# Everything in a frame text besides the payload: type, from, to, ts, sig (683
# chars), field names and punctuation. An upper bound for the router's own values.
ENVELOPE_OVERHEAD_BYTES = 1024


def sign_job(private_key: PrivateKey, job: SignJob) -> list[Deliver]:
    """Sign `job.payload` once; return the frame text of every delivery.

    One Deliver holds all of them unless together they would pass
    DELIVER_BUDGET_BYTES; an empty job gives no Deliver and no signature.
    """
    if not job.deliveries:
        return []
    sig = transport_signature(private_key, job.payload)
    # Serialise the payload once, not once per copy (it may be a large chunk).
    payload_json = orjson.dumps(job.payload)
    payload_fragment = orjson.Fragment(payload_json)
    item_bytes = len(payload_json) + ENVELOPE_OVERHEAD_BYTES
    per_deliver = max(1, DELIVER_BUDGET_BYTES // item_bytes)
    items = [
        (conn, out_seq, Envelope(type=job.frame_type, from_=job.sender, to=to, ts=job.ts,
                                 payload=payload_fragment, sig=sig).to_wire())  # type: ignore[arg-type]
        for conn, out_seq, to in job.deliveries
    ]
    return [Deliver(items=items[i : i + per_deliver]) for i in range(0, len(items), per_deliver)]
