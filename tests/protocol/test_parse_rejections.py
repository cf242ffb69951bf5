"""parse() refuses what the reference does not allow, each with the right ErrorCode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from socp.protocol import limits
from socp.protocol.envelope import parse
from socp.protocol.errors import ErrorCode, MalformedFrame, SocpError, UnknownType

USER = "3f6c1a9e-8d2b-4c7e-9a51-0b8e2d4f6a13"
SERVER = "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c6d"


def _frame(**overrides: Any) -> dict[str, Any]:
    """A valid HEARTBEAT as a dict; tests break one field at a time."""
    frame: dict[str, Any] = {"type": "HEARTBEAT", "from": SERVER, "to": USER, "ts": 1_700_000_000_000,
                             "payload": {}, "sig": ""}
    frame.update(overrides)
    return frame


def _without(key: str) -> dict[str, Any]:
    frame = _frame()
    del frame[key]
    return frame


def _code_of(data: str | bytes) -> ErrorCode:
    with pytest.raises(SocpError) as info:
        parse(data)
    return info.value.code


def test_the_base_frame_is_valid() -> None:
    # Guards every rejection below: each differs from this frame in one way only.
    assert parse(json.dumps(_frame())).type == "HEARTBEAT"


@pytest.mark.parametrize(
    "data",
    [
        "",
        "not json",
        '{"type": "HEARTBEAT"',
        "{'type': 'HEARTBEAT'}",
        b"\xff\xfe{}",
        '{"type":"HEARTBEAT","ts":NaN}',
    ],
    ids=["empty", "words", "truncated", "single-quotes", "bad-utf8", "nan"],
)
def test_not_json_is_malformed(data: str | bytes) -> None:
    assert _code_of(data) is ErrorCode.MALFORMED


@pytest.mark.parametrize("data", ["[]", "[1, 2]", '"HEARTBEAT"', "42", "null", "true"])
def test_not_an_object_is_malformed(data: str) -> None:
    assert _code_of(data) is ErrorCode.MALFORMED


@pytest.mark.parametrize("field", ["type", "from", "to", "ts"])
def test_missing_envelope_field_is_malformed(field: str) -> None:
    assert _code_of(json.dumps(_without(field))) is ErrorCode.MALFORMED


@pytest.mark.parametrize(
    ("frame_type", "payload", "missing"),
    [
        ("MSG_DIRECT", {"sender_pub": "k", "content_sig": "s"}, "ciphertext"),
        ("USER_HELLO", {"client": "cli-v1"}, "pubkey"),
        ("USER_ADVERTISE", {"user_id": USER}, "server_id"),
        ("PUBLIC_CHANNEL_KEY_SHARE", {"shares": [], "creator_pub": "k"}, "content_sig"),
        ("FILE_CHUNK", {"file_id": "f", "index": 0}, "ciphertext"),
        ("ACK", {}, "msg_ref"),
    ],
)
def test_missing_payload_field_is_malformed(frame_type: str, payload: dict[str, Any], missing: str) -> None:
    sender = USER if frame_type in {"MSG_DIRECT", "USER_HELLO", "FILE_CHUNK"} else SERVER
    with pytest.raises(MalformedFrame, match=f"payload.{missing}"):
        parse(json.dumps(_frame(type=frame_type, **{"from": sender}, payload=payload)))


@pytest.mark.parametrize(
    "overrides",
    [
        {"ts": "1700000000000"},
        {"ts": True},
        {"ts": False},
        {"ts": 1.7e12},
        {"ts": -1},
        {"ts": limits.MAX_TS + 1},
        {"payload": []},
        {"payload": "{}"},
        {"payload": 7},
        {"type": 7},
        {"type": ""},
        {"to": 5},
        {"to": None},
        {"sig": 12},
        {"sig": "x" * (limits.MAX_SIG_CHARS + 1)},
        {"from": 42},
    ],
    ids=lambda o: f"{next(iter(o))}={str(next(iter(o.values())))[:20]}",
)
def test_wrong_types_are_malformed(overrides: dict[str, Any]) -> None:
    assert _code_of(json.dumps(_frame(**overrides))) is ErrorCode.MALFORMED


@pytest.mark.parametrize(
    "sender",
    [
        "",
        "x" * 129,                                  # longer than 128 characters
        "Dave Smith",                               # a space
        "3f6c1a9e-8d2b-4c7e-9a51-0b8e2d4f6a13\n",   # a control character
        "caf\u00e9",                                 # not ASCII
        "*",                                        # reserved: broadcast
        "public",                                   # reserved: the public channel
    ],
)
def test_from_must_be_a_printable_id(sender: str) -> None:
    assert _code_of(json.dumps(_frame(**{"from": sender}))) is ErrorCode.MALFORMED


@pytest.mark.parametrize(
    "sender",
    ["alice", "auto", "master_server_3f6c1a9e-8d2b-4c7e-9a51-0b8e2d4f6a13", "127.0.0.1:8865",
     "3f6c1a9e-8d2b-1c7e-9a51-0b8e2d4f6a13", "x" * 128],
)
def test_peer_id_shapes_are_accepted(sender: str) -> None:
    """Interop table: peers' ids (G17 `auto`, G45 `master_server_<uuid>`, G101 host:port)."""
    assert parse(json.dumps(_frame(**{"from": sender}))).from_ == sender


def test_payload_ids_must_be_printable() -> None:
    frame = _frame(type="USER_REMOVE", payload={"user_id": "bob smith", "server_id": SERVER})
    with pytest.raises(MalformedFrame, match="payload.user_id"):
        parse(json.dumps(frame))


@pytest.mark.parametrize("frame_type", ["NOPE", "heartbeat", "User_Hello", "MSG_GROUP", "x" * 64])
def test_unknown_type_is_unknown_type(frame_type: str) -> None:
    with pytest.raises(UnknownType) as info:
        parse(json.dumps(_frame(type=frame_type)))
    assert info.value.code is ErrorCode.UNKNOWN_TYPE


def test_overlong_type_name_is_malformed_not_echoed() -> None:
    assert _code_of(json.dumps(_frame(type="X" * (limits.MAX_TYPE_CHARS + 1)))) is ErrorCode.MALFORMED


def test_oversized_frame_is_malformed() -> None:
    frame = _frame(payload={"pad": "a" * limits.MAX_FRAME_BYTES})
    with pytest.raises(MalformedFrame, match="larger than"):
        parse(json.dumps(frame))


def test_oversized_frame_counts_utf8_bytes_not_characters() -> None:
    # 0.6 M three-byte characters: under the limit in characters, over it in bytes.
    frame = _frame(payload={"pad": "中" * (limits.MAX_FRAME_BYTES * 6 // 10)})
    with pytest.raises(MalformedFrame, match="larger than"):
        parse(json.dumps(frame, ensure_ascii=False))


def _nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def test_nesting_up_to_max_depth_is_accepted() -> None:
    # The envelope object itself is the first level.
    frame = _frame(payload=_nested(limits.MAX_JSON_DEPTH - 1))
    assert parse(json.dumps(frame)).type == "HEARTBEAT"


def test_nesting_deeper_than_max_depth_is_malformed() -> None:
    frame = _frame(payload=_nested(limits.MAX_JSON_DEPTH))
    with pytest.raises(MalformedFrame, match="nests deeper"):
        parse(json.dumps(frame))


@pytest.mark.parametrize("empty", ["[]", "{}"])
def test_empty_container_past_max_depth_is_malformed(empty: str) -> None:
    text = "[" * limits.MAX_JSON_DEPTH + empty + "]" * limits.MAX_JSON_DEPTH
    with pytest.raises(MalformedFrame, match="nests deeper"):
        parse(text)


def test_very_deep_nesting_is_malformed_not_a_recursion_error() -> None:
    assert _code_of("[" * 100_000 + "]" * 100_000) is ErrorCode.MALFORMED


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30, 10**400])
@pytest.mark.parametrize("where", ["ts", "payload"])
def test_integers_beyond_64_bits_are_malformed(number: int, where: str) -> None:
    frame = _frame(ts=number) if where == "ts" else _frame(payload={"n": number})
    assert _code_of(json.dumps(frame)) is ErrorCode.MALFORMED


@pytest.mark.parametrize("number", [2**64 - 1, -(2**63), 0])
def test_integers_within_64_bits_are_kept_exactly(number: int) -> None:
    parsed = parse(json.dumps(_frame(payload={"n": number, "f": 1.5})))
    assert parsed.payload["n"] == number
    assert type(parsed.payload["n"]) is int


def test_float_payload_values_are_kept() -> None:
    # A frame with floats takes the exact re-read path; floats themselves stay legal.
    assert parse(json.dumps(_frame(payload={"f": 1e300, "g": -0.5}))).payload == {"f": 1e300, "g": -0.5}


@pytest.mark.parametrize(
    "payload",
    [
        {"host": "h", "port": 0, "pubkey": "k"},
        {"host": "h", "port": 65536, "pubkey": "k"},
        {"host": "", "port": 80, "pubkey": "k"},
        {"host": "h", "port": "80", "pubkey": "k"},
        {"host": "h", "port": 80, "pubkey": "k" * (limits.MAX_KEY_CHARS + 1)},
    ],
)
def test_server_hello_join_payload_values_are_checked(payload: dict[str, Any]) -> None:
    frame = _frame(type="SERVER_HELLO_JOIN", to="127.0.0.1:8765", payload=payload)
    assert _code_of(json.dumps(frame)) is ErrorCode.MALFORMED


def test_file_start_mode_must_be_dm_or_public() -> None:
    payload = {"file_id": "f", "name": "a.txt", "size": 1, "sha256": "ab", "mode": "group"}
    frame = _frame(type="FILE_START", **{"from": USER}, payload=payload)
    with pytest.raises(MalformedFrame, match="payload.mode"):
        parse(json.dumps(frame))


def test_list_items_are_checked_inside() -> None:
    frame = _frame(type="PUBLIC_CHANNEL_ADD", payload={"add": [USER, "not an id"]})
    with pytest.raises(MalformedFrame, match=r"payload.add\[1\]"):
        parse(json.dumps(frame))


@pytest.mark.parametrize("assigned", [{}, {"assigned_id": None}])
def test_server_welcome_without_assigned_id_is_accepted(assigned: dict[str, Any]) -> None:
    """Interop table: G45 and G101 send no assigned_id, G17 sends null."""
    frame = _frame(type="SERVER_WELCOME", payload={"server_pub": "k", **assigned})
    assert parse(json.dumps(frame)).payload.get("assigned_id") is None


def test_server_welcome_assigned_id_is_still_checked() -> None:
    frame = _frame(type="SERVER_WELCOME", payload={"assigned_id": "not an id"})
    with pytest.raises(MalformedFrame, match="payload.assigned_id"):
        parse(json.dumps(frame))
