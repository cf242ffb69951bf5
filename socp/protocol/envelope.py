"""The SOCP envelope (§5): one frozen dataclass, `parse()` and `to_wire()`.

`parse` validates everything the reference fixes: the envelope's field types, a
known `type`, ids (`ids.is_peer_id`), and each payload field per type. It raises
only `SocpError` subclasses, each mapping to an `ErrorCode`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from . import limits
from .encoding import dumps
from .errors import MalformedFrame, UnknownType
from .frame_types import KNOWN_TYPES, LIST_REQUEST_TYPES, PEER_REGISTER_TYPES, FrameType
from .ids import is_peer_id

Payload = dict[str, Any]

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


@dataclass(frozen=True, slots=True)
class Envelope:
    type: str
    from_: str
    to: str
    ts: int
    payload: Payload = field(default_factory=dict)
    sig: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "from": self.from_,
            "to": self.to,
            "ts": self.ts,
            "payload": self.payload,
            "sig": self.sig,
        }

    def to_wire(self) -> str:
        return dumps(self.to_dict())

    def with_sig(self, sig: str) -> Envelope:
        return replace(self, sig=sig)


# --- field validators: each returns nothing and raises MalformedFrame --------------

Check = Callable[[str, Any], None]


def _bad(name: str, why: str) -> MalformedFrame:
    return MalformedFrame(f"field '{name}' {why}")


def text(max_chars: int = limits.MAX_TEXT_CHARS, *, non_empty: bool = False) -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, str):
            raise _bad(name, "must be a string")
        if len(value) > max_chars:
            raise _bad(name, f"is longer than {max_chars} characters")
        if non_empty and not value:
            raise _bad(name, "must not be empty")

    return check


def peer_id(name: str, value: Any) -> None:
    if not is_peer_id(value):
        raise _bad(name, "must be an id: 1-128 printable ASCII characters without spaces")


def integer(low: int = 0, high: int = limits.MAX_TS) -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(name, "must be an integer")
        if not low <= value <= high:
            raise _bad(name, f"must be between {low} and {high}")

    return check


def boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _bad(name, "must be true or false")


def obj(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise _bad(name, "must be an object")


def list_of(item: Check, max_items: int = limits.MAX_LIST_ITEMS) -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, list):
            raise _bad(name, "must be a list")
        if len(value) > max_items:
            raise _bad(name, f"has more than {max_items} items")
        for index, entry in enumerate(value):
            item(f"{name}[{index}]", entry)

    return check


def record(fields: dict[str, Check], optional: dict[str, Check] | None = None) -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, dict):
            raise _bad(name, "must be an object")
        _check_fields(value, fields, optional or {}, prefix=f"{name}.")

    return check


def one_of(*choices: str) -> Check:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise _bad(name, f"must be one of {', '.join(choices)}")

    return check


def _check_fields(data: dict[str, Any], required: dict[str, Check], optional: dict[str, Check],
                  prefix: str = "") -> None:
    for key, check in required.items():
        if key not in data:
            raise MalformedFrame(f"field '{prefix}{key}' is missing")
        check(prefix + key, data[key])
    for key, check in optional.items():
        if key in data and data[key] is not None:
            check(prefix + key, data[key])


b64 = text()
key_text = text(limits.MAX_KEY_CHARS, non_empty=True)
signature = text(limits.MAX_SIG_CHARS, non_empty=True)
host = text(255, non_empty=True)
port = integer(1, 65535)
name_text = text(limits.MAX_NAME_CHARS)
id_text = text(limits.MAX_ID_CHARS, non_empty=True)

# §6.1's own SERVER_WELCOME example lists entries with "port": 0; accept them (they are
# not dialable, and frames.welcome_servers skips them) rather than refuse the welcome.
_server_entry = record(
    {"host": host, "port": integer(0, 65535), "pubkey": key_text}, {"server_id": peer_id, "user_id": peer_id}
)
_server_intro: tuple[dict[str, Check], dict[str, Check]] = ({"host": host, "port": port, "pubkey": key_text}, {})
_part = record({"id": id_text, "index": integer(0, 10_000), "count": integer(1, 10_000)})
_content = {"ciphertext": b64, "sender_pub": key_text, "content_sig": signature}

# A list answer cut to fit one frame says how many users there are in all.
_list_cut = {"total": integer(0, 2**31), "truncated": boolean}

# type -> (required payload fields, optional payload fields). SOCP §6, §7, interop table.
PAYLOAD_SCHEMAS: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    FrameType.SERVER_HELLO_JOIN: _server_intro,
    FrameType.SERVER_HELLO_LINK: _server_intro,
    # Interop: G17 also sends SERVER_ANNOUNCE {server_id, user_locations} with no
    # address or key (router.federation reads the fields it finds).
    FrameType.SERVER_ANNOUNCE: (
        {},
        {"host": host, "port": port, "pubkey": key_text, "server_id": peer_id, "user_locations": obj},
    ),
    FrameType.SERVER_WELCOME: (
        {},
        # Interop table: assigned_id may be absent or null (G45, G101, G17); G17 puts
        # the introducer's key in server_pub.
        {
            "assigned_id": peer_id,
            "servers": list_of(_server_entry),
            "clients": list_of(_server_entry),
            "server_pub": key_text,
        },
    ),
    FrameType.USER_ADVERTISE: ({"user_id": peer_id, "server_id": peer_id}, {"meta": obj}),
    # `held_here` (project addition, router/offline.py): its home server holds DMs for the user.
    FrameType.USER_REMOVE: ({"user_id": peer_id, "server_id": peer_id}, {"held_here": boolean}),
    FrameType.SERVER_DELIVER: (
        {"user_id": peer_id, "ciphertext": b64, "content_sig": signature},
        {"sender": peer_id, "sender_pub": key_text, "part": _part},
    ),
    FrameType.HEARTBEAT: ({}, {}),
    FrameType.USER_HELLO: ({"pubkey": key_text}, {"client": name_text, "enc_pubkey": key_text, "meta": obj}),
    FrameType.MSG_DIRECT: (dict(_content), {"part": _part}),
    FrameType.USER_DELIVER: (
        {"ciphertext": b64, "content_sig": signature},
        {"sender": peer_id, "from": peer_id, "sender_pub": key_text, "part": _part},
    ),
    FrameType.PUBLIC_CHANNEL_ADD: ({"add": list_of(peer_id)}, {"if_version": integer()}),
    FrameType.PUBLIC_CHANNEL_UPDATED: (
        {"version": integer()},
        {"wraps": list_of(record({"member_id": peer_id}, {"wrapped_key": b64}))},
    ),
    FrameType.PUBLIC_CHANNEL_KEY_SHARE: (
        {
            "shares": list_of(record({"member": peer_id, "wrapped_public_channel_key": b64})),
            "creator_pub": key_text,
            "content_sig": signature,
        },
        {},
    ),
    # Interop table: peers' clients post plaintext publicly, G45 as `text` with no
    # ciphertext (`_ONE_OF` below asks for one of the two).
    FrameType.MSG_PUBLIC_CHANNEL: (
        {"sender_pub": key_text, "content_sig": signature},
        {"ciphertext": b64, "text": text(), "part": _part},
    ),
    # G17's client sends no sha256 (nor mode); the receiving client checks the hash.
    FrameType.FILE_START: (
        {"file_id": id_text, "name": name_text, "size": integer(0, 2**50)},
        {"sha256": text(64, non_empty=True), "mode": one_of("dm", "public")},
    ),
    FrameType.FILE_CHUNK: ({"file_id": id_text, "index": integer(0, 2**40), "ciphertext": b64}, {}),
    FrameType.FILE_END: ({"file_id": id_text}, {}),
    FrameType.ACK: ({"msg_ref": id_text}, {}),
    # `refused_for` (project addition, router/offline.py): the DM a home server could not hold.
    FrameType.ERROR: ({}, {"code": text(64), "detail": text(1024), "reason": text(1024), "refused_for": obj}),
    FrameType.CTRL_CLOSE: ({}, {}),
    FrameType.LIST_RESPONSE: (
        {"users": list_of(id_text)},
        {"online_users": list_of(id_text), "details": list_of(obj), **_list_cut},
    ),
    **{t: ({}, {}) for t in LIST_REQUEST_TYPES},
    FrameType.WHO: ({}, {"users": list_of(id_text), **_list_cut}),  # G101's request, and our answer to it
    FrameType.USER_LIST: ({"users": list_of(id_text)}, _list_cut),
    FrameType.PUBKEY_REQUEST: ({"user_id": peer_id}, {}),
    FrameType.USER_DB_GET: ({"user_id": peer_id}, {}),
    # An unknown user is answered with pubkey null (G17) or found false and "" (G45).
    FrameType.PUBKEY_RESPONSE: ({"user_id": peer_id}, {"pubkey": key_text}),
    FrameType.USER_DB_USER: ({"user_id": peer_id, "found": boolean}, {"pubkey": text(limits.MAX_KEY_CHARS)}),
    FrameType.DB_REGISTER: ({"user_id": peer_id, "pubkey": key_text}, {}),
    FrameType.DB_GET_USER: ({"user_id": peer_id}, {"req_id": id_text}),
    FrameType.DB_USER: (
        {"user_id": peer_id, "found": boolean},
        {"pubkey": text(limits.MAX_KEY_CHARS), "req_id": id_text},
    ),
    # Project additions: the directory and password login (docs/store-and-login.md).
    FrameType.DIRECTORY_GET: ({"user_id": peer_id}, {}),
    FrameType.DIRECTORY_ENTRY: (
        {
            "user_id": peer_id,
            "pubkey": key_text,
            "server_id": peer_id,
            "remote": boolean,
            "version": integer(0, 2**31),
            "revoked": boolean,
        },
        {},
    ),
    FrameType.LOGIN_REGISTER: (
        {
            "privkey_store": text(limits.MAX_LOGIN_BLOB_CHARS, non_empty=True),
            "pake_password": text(limits.MAX_LOGIN_VERIFIER_CHARS, non_empty=True),
        },
        {},
    ),
    # Ours carries user_id (a challenge follows); G17's the password itself.
    FrameType.LOGIN_REQUEST: ({}, {"user_id": peer_id, "password": text(1024, non_empty=True)}),
    **{
        t: (
            {
                "pubkey": key_text,
                "privkey_store": text(limits.MAX_LOGIN_BLOB_CHARS, non_empty=True),
                "pake_password": text(limits.MAX_LOGIN_VERIFIER_CHARS, non_empty=True),
            },
            {},
        )
        for t in PEER_REGISTER_TYPES
    },
    FrameType.LOGIN_SUCCESS: ({"pubkey": key_text, "privkey_store": text(limits.MAX_LOGIN_BLOB_CHARS)}, {}),
    FrameType.LOGIN_FAIL: ({}, {"code": text(64), "detail": text(1024)}),
    FrameType.PUBLIC_MEMBERS_SNAPSHOT: ({}, {"members": list_of(peer_id), "version": integer()}),
    FrameType.LOGIN_CHALLENGE: (
        {
            "nonce": text(128, non_empty=True),
            "salt": text(128, non_empty=True),
            "params": record(
                {
                    "kdf": text(32, non_empty=True),
                    "n": integer(1, 2**31),
                    "r": integer(1, 2**31),
                    "p": integer(1, 2**31),
                }
            ),
        },
        {},
    ),
    FrameType.LOGIN_PROOF: ({"user_id": peer_id, "proof": text(128, non_empty=True)}, {}),
    FrameType.LOGIN_BLOB: (
        {"user_id": peer_id, "privkey_store": text(limits.MAX_LOGIN_BLOB_CHARS, non_empty=True), "pubkey": key_text},
        {},
    ),
}

# Types whose payload needs at least one of these fields.
_ONE_OF: dict[str, tuple[str, ...]] = {FrameType.MSG_PUBLIC_CHANNEL: ("ciphertext", "text")}

# G56 relays a user's FILE_* to another server as SERVER_DELIVER whose payload is the
# whole original envelope plus `user_id` (issue #14, server links). The inner frame is
# validated as what it is when the router unwraps it (router.federation).
FILE_TYPES = (FrameType.FILE_START.value, FrameType.FILE_CHUNK.value, FrameType.FILE_END.value)
WRAPPED_FILE_DELIVER: tuple[dict[str, Check], dict[str, Check]] = (
    {
        "user_id": peer_id,
        "type": one_of(*FILE_TYPES),
        "from": peer_id,
        "to": peer_id,
        "ts": integer(0, limits.MAX_TS),
        "payload": obj,
    },
    {"sig": text(limits.MAX_SIG_CHARS)},
)

# Types whose `from` may be something other than a UUID v4.
_FREE_FROM = frozenset({FrameType.CTRL_CLOSE, FrameType.ERROR})


def _depth_ok(value: Any, budget: int) -> bool:
    """True if objects/arrays nest at most `budget` levels (scalars add no level)."""
    if isinstance(value, (dict, list)):
        if budget <= 0:
            return False
        children = value.values() if isinstance(value, dict) else value
        return all(_depth_ok(v, budget - 1) for v in children)
    return True


def _has_float(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return isinstance(value, float)


def _int64_only(digits: str) -> int:
    # Beyond 20 characters no integer fits in 64 bits; checking first keeps int() cheap.
    if len(digits) > 20 or not _INT64_MIN <= int(digits) <= _UINT64_MAX:
        raise MalformedFrame("frame has an integer beyond 64 bits")
    return int(digits)


def load_json(data: str | bytes) -> Any:
    """Bounded JSON decode: size and nesting limits, no 64-bit overflow."""
    size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)
    if size > limits.MAX_FRAME_BYTES:
        raise MalformedFrame(f"frame is larger than {limits.MAX_FRAME_BYTES} bytes")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedFrame("frame is not valid JSON") from exc
    if not _depth_ok(value, limits.MAX_JSON_DEPTH):
        raise MalformedFrame(f"frame nests deeper than {limits.MAX_JSON_DEPTH} levels")
    if _has_float(value):
        # orjson silently turns integers beyond 64 bits into floats, which would
        # change the canonical payload a peer signed; re-read exactly to find them.
        try:
            json.loads(data, parse_int=_int64_only)
        except (ValueError, RecursionError) as exc:
            raise MalformedFrame("frame is not valid JSON") from exc
    return value


def parse(data: str | bytes) -> Envelope:
    """Decode and validate one frame; raise MalformedFrame or UnknownType."""
    return parse_obj(load_json(data))


def parse_obj(raw: Any) -> Envelope:
    """Validate an already decoded JSON value as an envelope."""
    if not isinstance(raw, dict):
        raise MalformedFrame("frame must be a JSON object")
    frame_type = raw.get("type")
    if not isinstance(frame_type, str) or not frame_type or len(frame_type) > limits.MAX_TYPE_CHARS:
        raise MalformedFrame("field 'type' must be a non-empty string")
    if frame_type not in KNOWN_TYPES:
        raise UnknownType(f"unknown frame type {frame_type[:64]!r}")
    if frame_type == FrameType.CTRL_CLOSE:
        # §4: the bare {"type":"CTRL_CLOSE"} is valid.
        raw = {"from": "", "to": "", "ts": 0, "payload": {}, **raw}
    elif frame_type in LIST_REQUEST_TYPES:
        # G101's WHO carries neither `to` nor `ts`; a list request is answered, never
        # relayed, so there is nothing to address or to check for replay.
        raw = {"to": "", "ts": 0, **raw}
    sender, to, ts, payload = raw.get("from"), raw.get("to"), raw.get("ts"), raw.get("payload")
    sig = raw.get("sig", "")
    if frame_type in _FREE_FROM:
        text(limits.MAX_ID_CHARS)("from", sender)
    else:
        peer_id("from", sender)
    text(limits.MAX_ID_CHARS)("to", to)
    integer(0, limits.MAX_TS)("ts", ts)
    if payload is None:
        payload = {}
    obj("payload", payload)
    if sig is None:
        sig = ""
    text(limits.MAX_SIG_CHARS)("sig", sig)
    required, optional = PAYLOAD_SCHEMAS[frame_type]
    if frame_type == FrameType.SERVER_DELIVER and isinstance(payload.get("payload"), dict):
        required, optional = WRAPPED_FILE_DELIVER  # G56's file relay (see its schema)
    _check_fields(payload, required, optional, prefix="payload.")
    wanted = _ONE_OF.get(frame_type)
    if wanted and not any(payload.get(name) is not None for name in wanted):
        raise MalformedFrame(f"payload needs one of: {', '.join(wanted)}")
    return Envelope(type=frame_type, from_=sender, to=to, ts=ts, payload=payload, sig=sig)
