"""Hypothesis properties of the wire core: canonical JSON, base64url, and parse()
never failing with anything but a SocpError. Example counts come from the profile
loaded in tests/conftest.py (2,000 per test under CI=true)."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from socp.protocol.encoding import b64url_decode, b64url_encode, canonical_json, compact_json
from socp.protocol.envelope import PAYLOAD_SCHEMAS, parse, parse_obj
from socp.protocol.errors import SocpError
from socp.protocol.frame_types import KNOWN_TYPES

_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

# JSON values as Python sees them: any int size, finite floats, any unicode text.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


def _reference_canonical(value: Any) -> bytes:
    """The standard's own recipe (§5)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's insertion order shuffled."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: _shuffled(child, rng) for key, child in items}
    if isinstance(value, list):
        return [_shuffled(child, rng) for child in value]
    return value


@given(value=json_values)
def test_canonical_json_equals_the_standard_recipe(value: Any) -> None:
    assert canonical_json(value) == _reference_canonical(value)


@given(value=json_values, rng=st.randoms(use_true_random=False))
def test_canonical_json_ignores_insertion_order(value: Any, rng: random.Random) -> None:
    assert canonical_json(_shuffled(value, rng)) == canonical_json(value)


@given(payload=st.dictionaries(st.text(max_size=12), json_values, max_size=5))
def test_canonical_json_of_payload_dicts(payload: dict[str, Any]) -> None:
    # The shape every signature covers: an object at the top.
    assert canonical_json(payload) == _reference_canonical(payload)


@given(value=json_values | st.floats() | st.integers(min_value=2**64) | st.text(st.characters(categories=["Cs"])))
def test_compact_json_is_the_stdlib_text(value: Any) -> None:
    # Floats (NaN too), integers beyond 64 bits and lone surrogates take the stdlib path.
    assert compact_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@given(data=st.binary(max_size=2048))
def test_b64url_round_trips_and_never_pads(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text
    assert set(text) <= _B64URL_ALPHABET
    assert b64url_decode(text) == data


@given(data=st.binary(max_size=600))
def test_b64url_decode_accepts_padding_and_the_standard_alphabet(data: bytes) -> None:
    assert b64url_decode(base64.urlsafe_b64encode(data).decode()) == data
    assert b64url_decode(base64.b64encode(data).decode()) == data


# --- parse() never raises anything but SocpError ---------------------------------------


def _parse_outcome(data: str | bytes) -> None:
    try:
        envelope = parse(data)
    except SocpError:
        return
    # Whatever parses must survive our own wire form unchanged.
    assert parse(envelope.to_wire()) == envelope


@given(text=st.text())
def test_parse_arbitrary_text(text: str) -> None:
    _parse_outcome(text)


@given(data=st.binary())
def test_parse_arbitrary_bytes(data: bytes) -> None:
    _parse_outcome(data)


@given(value=json_values)
def test_parse_arbitrary_json_values(value: Any) -> None:
    _parse_outcome(json.dumps(value))
    try:
        parse_obj(value)
    except SocpError:
        pass


# "Valid-ish" frames: a known type, mostly well-formed envelope fields, and a payload
# built from that type's own field names with values mostly of the expected shape, so
# validation goes deep and a fair share of frames parse.
UUIDS = st.uuids(version=4).map(str)
IDS = UUIDS | st.sampled_from(["*", "public", "127.0.0.1:8765", "", "system"]) | st.text(max_size=70)
SHORT_TEXT = st.text(max_size=12)
KEYISH = st.text(min_size=1, max_size=12)
COUNTS = st.integers(min_value=-1, max_value=70_000)


def _entries(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.fixed_dictionaries({}, optional=fields), max_size=3)


_server_entry = {"server_id": UUIDS, "user_id": UUIDS, "host": KEYISH, "port": COUNTS, "pubkey": KEYISH}
EXPECTED_SHAPES: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(["user_id", "server_id", "assigned_id", "sender", "from"], UUIDS),
    **dict.fromkeys(["pubkey", "enc_pubkey", "sender_pub", "creator_pub", "content_sig", "host"], KEYISH),
    **dict.fromkeys(["ciphertext", "client", "name", "code", "detail", "reason", "mode"],
                    SHORT_TEXT | st.sampled_from(["dm", "public"])),
    **dict.fromkeys(["file_id", "msg_ref", "sha256"], KEYISH),
    **dict.fromkeys(["port", "version", "if_version", "size", "index"], COUNTS),
    **dict.fromkeys(["servers", "clients"], _entries(_server_entry)),
    "wraps": _entries({"member_id": UUIDS, "wrapped_key": SHORT_TEXT}),
    "shares": _entries({"member": UUIDS, "wrapped_public_channel_key": SHORT_TEXT}),
    **dict.fromkeys(["add", "users", "online_users"], st.lists(UUIDS, max_size=3)),
    "details": st.lists(st.dictionaries(SHORT_TEXT, SHORT_TEXT, max_size=2), max_size=2),
    "meta": st.dictionaries(SHORT_TEXT, json_scalars, max_size=3),
    "part": st.fixed_dictionaries({}, optional={"id": KEYISH, "index": COUNTS, "count": COUNTS}),
}


def _mostly(shaped: st.SearchStrategy[Any], junk: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nine times in ten the expected shape, else junk: most frames get deep, some parse."""
    return st.integers(0, 9).flatmap(lambda roll: junk if roll == 0 else shaped)


def _field_value(name: str) -> st.SearchStrategy[Any]:
    return _mostly(EXPECTED_SHAPES.get(name, json_values), json_values)


@st.composite
def validish_frames(draw: st.DrawFn) -> dict[str, Any]:
    frame_type = draw(st.sampled_from(sorted(KNOWN_TYPES)))
    required, optional = PAYLOAD_SCHEMAS[frame_type]
    names = sorted(required)
    if optional:
        names += draw(st.lists(st.sampled_from(sorted(optional)), unique=True))
    payload: dict[str, Any] = {name: draw(_field_value(name)) for name in names}
    payload.update(draw(st.dictionaries(SHORT_TEXT, json_values, max_size=2)))
    frame: dict[str, Any] = {
        "type": frame_type,
        "from": draw(_mostly(UUIDS, IDS)),
        "to": draw(_mostly(UUIDS | st.sampled_from(["*", "public", "127.0.0.1:8765"]), IDS)),
        "ts": draw(_mostly(st.integers(min_value=0, max_value=2**53), st.integers() | json_scalars)),
        "payload": payload,
        "sig": draw(_mostly(st.text(max_size=20), json_scalars)),
    }
    # Now and then a field goes missing: that is part of the input space too.
    if draw(st.integers(0, 9)) == 0:
        del frame[draw(st.sampled_from(sorted(frame)))]
    if required and draw(st.integers(0, 9)) == 0:
        del payload[draw(st.sampled_from(sorted(required)))]
    return frame


@given(frame=validish_frames())
def test_parse_validish_frames(frame: dict[str, Any]) -> None:
    _parse_outcome(json.dumps(frame))
    _parse_outcome(json.dumps(frame, ensure_ascii=False).encode("utf-8", "surrogatepass"))
