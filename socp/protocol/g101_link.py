"""G101's server-link frames, read and written at the edge (issue #14; docs/interop.md
"Opt-in: G101's link form").

G101 (Preethijeny2005/PRGroup101 @ a96e03a) departs from the reference on a server
link in three ways, seen on the wire (tests/interop/recorded/g101-link.jsonl):

- `ts`, in the envelope and in the payload, is an ISO-8601 UTC string
  ("2026-12-05T22:06:22Z"), where the reference has integer milliseconds;
- it signs its SERVER_HELLO_JOIN, SERVER_WELCOME and SERVER_ANNOUNCE over the whole
  envelope minus `sig`, as sent (with a top-level `id` we do not keep), and checks
  ours only that way; the reference signs the canonical payload;
- its USER_ADVERTISE / USER_REMOVE are `{user_id, ts}` with no `server_id` and no
  `to`: the user is at the server in `from`;
- it relays a user's DM as SERVER_DELIVER from the user to the user (envelope `from`
  and `to`), its payload the sender's own (`ciphertext`, `sender_pub`,
  `content_sig`, and `from`, `to`, `ts`, which its client reads and checks the
  content signature with), unsigned.

These functions only convert. Whether a frame may be read or written this way is the
caller's decision, per link, from the operator's opt-in for that one pinned peer
(bootstrap `g101_link: true`); no other peer's frames are ever read in these forms.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from . import limits
from .crypto import PrivateKey, sign_pss
from .encoding import b64url_encode, canonical_json
from .envelope import Envelope
from .errors import MalformedFrame
from .frame_types import FrameType

# What G101 writes (datetime.utcnow().isoformat() + "Z"), fractions allowed; the time
# must say it is UTC, since a time without a zone means nothing across hosts.
_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)")

# What G101 writes in `from` of its USER_REMOVE and its channel frames, not its id.
NAMELESS_SERVER = "server"

# G101's presence frames name no server: the user is where the frame came from.
_PRESENCE_TYPES = frozenset({FrameType.USER_ADVERTISE.value, FrameType.USER_REMOVE.value})


def iso_ts_ms(value: object) -> int:
    """`value`, an ISO-8601 UTC time as G101 writes it, in integer ms since the epoch.
    Raise MalformedFrame for anything else (any other shape, or out of range)."""
    if not isinstance(value, str) or not _ISO_UTC.fullmatch(value):
        raise MalformedFrame("field 'ts' must be an integer or an ISO-8601 UTC time (G101)")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:   # 2026-13-45T…: the shape fits, the date does not
        raise MalformedFrame("field 'ts' is not a valid ISO-8601 time") from exc
    ms = round((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)
    if not 0 <= ms <= limits.MAX_TS:
        raise MalformedFrame("field 'ts' is out of range")
    return ms


def _ms(value: Any) -> Any:
    return iso_ts_ms(value) if isinstance(value, str) else value


def reference_form(raw: dict[str, Any], listens_at: tuple[str, int] | None = None) -> dict[str, Any]:
    """A frame from an opted-in G101 link, as the reference writes it: `ts` (envelope
    and payload) in integer ms, `to` "*" where it names no one, the server in `from`
    as `server_id` of its presence frames, and, for its SERVER_HELLO_JOIN (which
    names no address), `host` and `port` from `listens_at`: where the operator's
    bootstrap entry for it says it listens. Everything else is kept as sent (`raw`
    itself is left unchanged: its transport signature is over it as sent)."""
    frame = dict(raw)
    frame["ts"] = _ms(frame.get("ts"))
    if frame.get("to") is None:
        frame["to"] = "*"
    payload = frame.get("payload")
    if isinstance(payload, dict):
        payload = dict(payload)
        if "ts" in payload:
            payload["ts"] = _ms(payload["ts"])
        if frame.get("type") in _PRESENCE_TYPES and "server_id" not in payload:
            payload["server_id"] = frame.get("from")
        if frame.get("type") == FrameType.SERVER_DELIVER.value and "user_id" not in payload:
            payload["user_id"] = frame["to"]   # its relay names the recipient in `to`
        if frame.get("type") == FrameType.SERVER_HELLO_JOIN.value and listens_at is not None:
            payload.setdefault("host", listens_at[0])
            payload.setdefault("port", listens_at[1])
        frame["payload"] = payload
    return frame


def its_deliver(frame: Envelope) -> Envelope:
    """Our SERVER_DELIVER as G101 relays one: from the sender to the recipient, who and
    when also in the payload (its server hands `to`'s user the frame's `from` and
    payload as they are; its client reads a DM only when the payload names `from`
    and `to`, and checks content_sig over its `ts`)."""
    payload = frame.payload
    sender, recipient = payload.get("sender") or frame.from_, payload["user_id"]
    named = {"from": sender, "to": recipient, "ts": payload.get("ts", frame.ts)}
    return Envelope(type=frame.type, from_=sender, to=recipient, ts=frame.ts, payload={**payload, **named})


def whole_envelope_bytes(frame: dict[str, Any]) -> bytes:
    """What G101 signs and verifies: the envelope minus `sig`, canonical (sorted keys,
    no whitespace, ensure_ascii=False; its utils.json_canonicalize)."""
    return canonical_json({key: value for key, value in frame.items() if key != "sig"})


def sign_whole_envelope(private_key: PrivateKey, frame: Envelope) -> Envelope:
    """`frame` signed the way G101 checks a link opening (`whole_envelope_bytes`).
    We verify that form from anyone (signing.verify_transport); we emit it only on a
    link to a G101 peer the operator opted in."""
    unsigned = frame.with_sig("")
    return frame.with_sig(b64url_encode(sign_pss(private_key, whole_envelope_bytes(unsigned.to_dict()))))
