"""Reading other teams' servers (issue #14; SOCP-v1.3.md, "Interop decisions").

Our client always writes the reference's forms. What it reads is wider, because
servers other teams run answer in their own dialects:

  envelope      `ts` as an ISO-8601 string (G101 ACK), float seconds, or absent
                (G101 WHO); `to` absent or null; `from` "server" (G101)
  hello         refused only by an ERROR that names the hello (NAME_IN_USE,
                BAD_KEY, INVALID_SIG, KEY_MISMATCH, HELLO_* …) or by a close; an
                UNKNOWN_TYPE answering a list request is just "no such request here"
  ERROR         `{code, detail}` or `{reason}` (G101)
  list          LIST_REQUEST → LIST_RESPONSE {users | online_users} (ours, G17),
                USER_LIST_REQ → USER_LIST {users} (G45), WHO → WHO {users} (G101),
                else none at all: a presence cache fed by USER_ADVERTISE (G56)
  key lookups   DIRECTORY_GET (ours), PUBKEY_REQUEST (G17), USER_DB_GET (G45)
  key shares    G17 names the wrapped key `wrapped`
  DM signature  G101's client signs over payload.from/to/ts (`payload_dm_ts`)
  FILE_START    G45's client signs its canonical manifest JSON (`manifest_forms`);
                G17's client sends no sha256 (the session checks the size only)

This module is pure (no sockets): the session uses it to turn a peer's frame into
the shape `socp.protocol.envelope` validates, and the driver to walk the dialects.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from socp.protocol import limits
from socp.protocol.encoding import canonical_json
from socp.protocol.envelope import Envelope, parse_obj
from socp.protocol.errors import MalformedFrame
from socp.protocol.frame_types import FrameType as T

# What each list request is answered with, in the order the client tries them.
LIST_DIALECTS: tuple[str, ...] = (T.LIST_REQUEST.value, T.USER_LIST_REQ.value, T.WHO.value)
PRESENCE_ONLY = "presence"        # the server has no list request: USER_ADVERTISE is the list
LIST_REPLIES = frozenset({T.LIST_RESPONSE.value, T.USER_LIST.value, T.WHO.value})

# Key look-ups, each with the frame that answers it.
KEY_LOOKUPS: dict[str, str] = {
    T.DIRECTORY_GET.value: T.DIRECTORY_ENTRY.value,
    T.PUBKEY_REQUEST.value: T.PUBKEY_RESPONSE.value,
    T.USER_DB_GET.value: T.USER_DB_USER.value,
}

# ERROR codes (or G101 reasons) that can only be about our USER_HELLO (§7.1, §7.5).
HELLO_REFUSAL_CODES = frozenset({
    "NAME_IN_USE", "BAD_KEY", "INVALID_SIG", "KEY_MISMATCH", "MISSING_FROM", "PERSIST_KEYS_FAILED",
    "FORBIDDEN", "BAD_USER_ID",
})
# A refusal that says the hello's signature did not verify: G101 checks it over the
# whole envelope minus `sig`, the form we then sign the next hello with.
_SIGNATURE_REFUSAL = re.compile(r"INVALID_SIG|HELLO_VERIFY|SIGNATURE", re.IGNORECASE)
UNKNOWN_TYPE = "UNKNOWN_TYPE"
# A G101 reason is an upper-case token, sometimes followed by ": detail".
_REASON = re.compile(r"([A-Z][A-Z0-9_]{2,63})(?::\s*(.*))?", re.DOTALL)


def is_hello_refusal(code: str) -> bool:
    return code in HELLO_REFUSAL_CODES or code.startswith("HELLO_")


def asks_for_envelope_signature(code: str, detail: str) -> bool:
    return bool(_SIGNATURE_REFUSAL.search(code) or _SIGNATURE_REFUSAL.search(detail))


def error_fields(payload: dict[str, Any]) -> tuple[str, str]:
    """(code, detail) of an ERROR in `{code, detail}` or G101's `{reason}` form:
    a reason like "NAME_IN_USE" or "HELLO_VERIFY_FAILED: …" becomes the code."""
    code, detail = payload.get("code"), payload.get("detail")
    if isinstance(code, str) and code:
        return code, detail if isinstance(detail, str) else ""
    reason = payload.get("reason")
    if isinstance(reason, str) and reason:
        match = _REASON.fullmatch(reason.strip())
        if match:
            return match.group(1), match.group(2) or reason
        return "ERROR", reason
    return "ERROR", detail if isinstance(detail, str) else ""


def ms_timestamp(value: Any) -> int:
    """A frame's `ts` as integer milliseconds, whatever the server wrote; 0 when unreadable."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # Float seconds (G40) or float milliseconds: 1e11 s is the year 5138.
        return int(value * 1000) if value < 1e11 else int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return 0
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0, int(when.timestamp() * 1000))
    return 0


def tolerant_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """The envelope with peers' header variants read as ours (the payload untouched).
    Only used for frames a server sends to our client."""
    fields = dict(raw)
    fields["ts"] = ms_timestamp(raw.get("ts"))
    if not isinstance(raw.get("to"), str):
        fields["to"] = ""
    if fields.get("sig") is None:
        fields["sig"] = ""
    return fields


def readable_payload(frame_type: str, payload: Any) -> Any:
    """A peer's payload in the shape our validator reads, for the frames whose
    peer shapes carry the same facts under other names. Others are unchanged."""
    if not isinstance(payload, dict):
        return payload
    if frame_type == T.LIST_RESPONSE and "users" not in payload:
        # G17: {online_users}
        users = payload.get("online_users")
        return {**payload, "users": users if isinstance(users, list) else []}
    if frame_type == T.ACK and not payload.get("msg_ref"):
        # G101 answers a hello with msg_ref null (and a session token).
        return {**payload, "msg_ref": "-"}
    if frame_type == T.PUBLIC_CHANNEL_KEY_SHARE and isinstance(payload.get("shares"), list):
        # G17: shares[].wrapped (its group key, OAEP with a label we do not use).
        shares = [
            {**share, "wrapped_public_channel_key": share.get("wrapped", "")}
            if isinstance(share, dict) and "wrapped_public_channel_key" not in share else share
            for share in payload["shares"]
        ]
        return {**payload, "shares": shares}
    if frame_type == T.USER_DB_USER and "found" not in payload:
        return {**payload, "found": bool(payload.get("pubkey"))}
    return payload


def payload_dm_ts(payload: dict[str, Any], sender: str, me: str) -> int | None:
    """G101's client signs a DM over the `from`, `to` and `ts` its payload carries
    (the envelope's ts is a little later). That ts, when the payload names this
    sender and us (a DM signed for someone else must not read as ours); else None."""
    ts = payload.get("ts")
    if type(ts) is not int or payload.get("from", sender) != sender or payload.get("to", me) != me:
        return None
    return ts


def manifest_forms(payload: dict[str, Any], sender: str, to: str, ts: int) -> list[bytes]:
    """What a FILE_START's content_sig may cover: ours (the manifest with the envelope's
    from/to/ts, outgoing_files.manifest_signed_bytes), and G45's canonical JSON of
    {file_id, name, size, sha256, mode, sender, ts} from its payload, taken only when
    that payload names the sender we read (its chunks are encrypted to us, so a
    manifest meant for someone else cannot bring us a file that opens)."""
    ours = canonical_json({
        "file_id": payload.get("file_id"), "name": payload.get("name"), "size": payload.get("size"),
        "sha256": payload.get("sha256"), "mode": payload.get("mode"), "from": sender, "to": to, "ts": ts,
    })
    forms = [ours]
    if payload.get("sender") == sender and type(payload.get("ts")) is int:
        forms.append(canonical_json({key: payload.get(key) for key in
                                     ("file_id", "name", "size", "sha256", "mode", "sender", "ts")}))
    return forms


def is_plain_public(fields: dict[str, Any]) -> bool:
    """A public message with a plaintext `text` and no ciphertext (G45's clients)."""
    payload = fields.get("payload")
    return (fields.get("type") == T.MSG_PUBLIC_CHANNEL and isinstance(payload, dict)
            and "ciphertext" not in payload and isinstance(payload.get("text"), str))


def parse_plain_public(fields: dict[str, Any]) -> Envelope:
    """Validate such a frame: the envelope as usual, `text` bounded, the other payload
    fields read only when they have the right type."""
    payload = fields["payload"]
    if len(payload["text"]) > limits.MAX_TEXT_CHARS:
        raise MalformedFrame("field 'payload.text' is too long")
    checked = parse_obj({**fields, "type": T.HEARTBEAT.value, "payload": {}})   # the header checks only
    return Envelope(T.MSG_PUBLIC_CHANNEL.value, checked.from_, checked.to, checked.ts, payload, checked.sig)


def listed_users(payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(user id, details) from any list reply: `users` / `online_users` as ids or as
    objects ({user_id | userID | id, pubkey, …}), plus our `details`."""
    details = {d["user_id"]: d for d in payload.get("details") or []
               if isinstance(d, dict) and isinstance(d.get("user_id"), str)}
    seen: dict[str, dict[str, Any]] = {}
    for key in ("users", "online_users"):
        entries = payload.get(key)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if isinstance(entry, str) and entry:
                seen.setdefault(entry, details.get(entry, {}))
            elif isinstance(entry, dict):
                uid = entry.get("user_id") or entry.get("userID") or entry.get("id")
                if isinstance(uid, str) and uid:
                    seen.setdefault(uid, {**entry, **details.get(uid, {})})
    return list(seen.items())


def looked_up_key(envelope_type: str, payload: dict[str, Any]) -> tuple[str, str] | None:
    """(user id, key) from the answer to a key look-up, or None if it found nothing."""
    uid, key = payload.get("user_id"), payload.get("pubkey")
    if envelope_type == T.USER_DB_USER and payload.get("found") is False:
        return None
    if isinstance(uid, str) and isinstance(key, str) and key:
        return uid, key
    return None


__all__ = [
    "KEY_LOOKUPS", "LIST_DIALECTS", "LIST_REPLIES", "PRESENCE_ONLY", "UNKNOWN_TYPE",
    "asks_for_envelope_signature", "error_fields", "is_hello_refusal", "is_plain_public", "listed_users",
    "looked_up_key", "manifest_forms", "ms_timestamp", "parse_plain_public", "payload_dm_ts", "readable_payload",
    "tolerant_fields",
]
