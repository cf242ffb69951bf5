"""Every frame example of the reference (SOCP §5–§7, interop table) as JSON text.

Each example is written the way a peer would send it, with real UUID v4 ids and real
base64url keys, ciphertexts and signatures. It must parse, our builder must produce
the same envelope, and the builder's output must survive to_wire -> parse unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from string import Template
from typing import TYPE_CHECKING

import pytest

from socp.protocol import frames
from socp.protocol.envelope import Envelope, parse
from socp.protocol.errors import ErrorCode
from socp.protocol.frame_types import LIST_REQUEST_TYPES, FrameType

if TYPE_CHECKING:  # the `wire` fixture's type, from tests/protocol/conftest.py
    from tests.protocol.conftest import WireValues


@dataclass(frozen=True)
class Example:
    name: str
    json_text: str                                 # string.Template over WireValues fields
    build: Callable[[WireValues], Envelope]
    payload_keys: frozenset[str]                   # keys the reference gives what we emit


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


EXAMPLES = [
    # --- §6 server <-> server ---------------------------------------------------------
    Example(
        "SERVER_HELLO_JOIN",
        '{"type":"SERVER_HELLO_JOIN","from":"$server_b","to":"127.0.0.1:8765","ts":$ts,'
        '"payload":{"host":"127.0.0.1","port":8766,"pubkey":"$pub_server"},"sig":""}',
        lambda w: frames.server_hello_join(w.server_b, "127.0.0.1:8765", w.ts, "127.0.0.1", 8766, w.pub_server),
        _keys("host", "port", "pubkey"),
    ),
    Example(
        "SERVER_WELCOME",
        '{"type":"SERVER_WELCOME","from":"$server_a","to":"$server_b","ts":$ts,'
        '"payload":{"assigned_id":"$server_b",'
        '"servers":[{"server_id":"$server_a","host":"127.0.0.1","port":8765,"pubkey":"$pub_server"}],'
        '"clients":[{"user_id":"$server_a","host":"127.0.0.1","port":8765,"pubkey":"$pub_server"}]},'
        '"sig":"$sig"}',
        lambda w: frames.server_welcome(
            w.server_a, w.server_b, w.ts, w.server_b,
            [{"server_id": w.server_a, "host": "127.0.0.1", "port": 8765, "pubkey": w.pub_server}],
        ),
        _keys("assigned_id", "servers", "clients"),
    ),
    Example(
        "SERVER_ANNOUNCE",
        '{"type":"SERVER_ANNOUNCE","from":"$server_b","to":"*","ts":$ts,'
        '"payload":{"host":"10.0.0.7","port":9000,"pubkey":"$pub_server"},"sig":"$sig"}',
        lambda w: frames.server_announce(w.server_b, w.ts, "10.0.0.7", 9000, w.pub_server),
        _keys("host", "port", "pubkey"),
    ),
    Example(
        "SERVER_HELLO_LINK",
        '{"type":"SERVER_HELLO_LINK","from":"$server_b","to":"$server_a","ts":$ts,'
        '"payload":{"host":"10.0.0.7","port":9000,"pubkey":"$pub_server"},"sig":"$sig"}',
        lambda w: frames.server_hello_link(w.server_b, w.server_a, w.ts, "10.0.0.7", 9000, w.pub_server),
        _keys("host", "port", "pubkey"),
    ),
    Example(
        "USER_ADVERTISE",
        '{"type":"USER_ADVERTISE","from":"$server_a","to":"*","ts":$ts,'
        '"payload":{"user_id":"$user_a","server_id":"$server_a",'
        '"meta":{"pubkey":"$pub_a","display_name":"Alice"}},"sig":"$sig"}',
        lambda w: frames.user_advertise(w.server_a, w.ts, w.user_a, {"pubkey": w.pub_a, "display_name": "Alice"}),
        _keys("user_id", "server_id", "meta"),
    ),
    Example(
        "USER_REMOVE",
        '{"type":"USER_REMOVE","from":"$server_a","to":"*","ts":$ts,'
        '"payload":{"user_id":"$user_a","server_id":"$server_a"},"sig":"$sig"}',
        lambda w: frames.user_remove(w.server_a, w.ts, w.user_a),
        _keys("user_id", "server_id"),
    ),
    Example(
        "SERVER_DELIVER",
        '{"type":"SERVER_DELIVER","from":"$server_a","to":"$server_b","ts":$ts,'
        '"payload":{"user_id":"$user_b","ciphertext":"$ciphertext","sender":"$user_a",'
        '"sender_pub":"$pub_a","content_sig":"$content_sig"},"sig":"$sig"}',
        lambda w: frames.server_deliver(
            w.server_a, w.server_b, w.ts, w.user_b, w.ciphertext, w.user_a, w.pub_a, w.content_sig
        ),
        _keys("user_id", "ciphertext", "sender", "sender_pub", "content_sig"),
    ),
    Example(
        "HEARTBEAT",
        '{"type":"HEARTBEAT","from":"$server_a","to":"$server_b","ts":$ts,"payload":{},"sig":"$sig"}',
        lambda w: frames.heartbeat(w.server_a, w.server_b, w.ts),
        _keys(),
    ),
    # --- §7 user <-> server -----------------------------------------------------------
    Example(
        "USER_HELLO",
        '{"type":"USER_HELLO","from":"$user_a","to":"$server_a","ts":$ts,'
        '"payload":{"client":"cli-v1","pubkey":"$pub_a","enc_pubkey":"$pub_a"},"sig":""}',
        lambda w: frames.user_hello(w.user_a, w.server_a, w.ts, w.pub_a, client="cli-v1"),
        _keys("client", "pubkey", "enc_pubkey"),
    ),
    Example(
        "MSG_DIRECT",
        '{"type":"MSG_DIRECT","from":"$user_a","to":"$user_b","ts":$ts,'
        '"payload":{"ciphertext":"$ciphertext","sender_pub":"$pub_a","content_sig":"$content_sig"},'
        '"sig":"$sig"}',
        lambda w: frames.msg_direct(w.user_a, w.user_b, w.ts, w.ciphertext, w.pub_a, w.content_sig),
        _keys("ciphertext", "sender_pub", "content_sig"),
    ),
    Example(
        "USER_DELIVER",
        '{"type":"USER_DELIVER","from":"$server_a","to":"$user_b","ts":$ts,'
        '"payload":{"ciphertext":"$ciphertext","sender":"$user_a","sender_pub":"$pub_a",'
        '"content_sig":"$content_sig"},"sig":"$sig"}',
        lambda w: frames.user_deliver(w.server_a, w.user_b, w.ts, w.ciphertext, w.user_a, w.pub_a, w.content_sig),
        _keys("ciphertext", "sender", "sender_pub", "content_sig"),
    ),
    Example(
        "PUBLIC_CHANNEL_ADD",
        '{"type":"PUBLIC_CHANNEL_ADD","from":"$server_a","to":"*","ts":$ts,'
        '"payload":{"add":["$user_a"],"if_version":1},"sig":"$sig"}',
        lambda w: frames.public_channel_add(w.server_a, w.ts, [w.user_a], 1),
        _keys("add", "if_version"),
    ),
    Example(
        "PUBLIC_CHANNEL_UPDATED",
        '{"type":"PUBLIC_CHANNEL_UPDATED","from":"$server_a","to":"*","ts":$ts,'
        '"payload":{"version":2,"wraps":[{"member_id":"$user_a","wrapped_key":"$wrapped_key"}]},"sig":"$sig"}',
        lambda w: frames.public_channel_updated(
            w.server_a, w.ts, 2, [{"member_id": w.user_a, "wrapped_key": w.wrapped_key}]
        ),
        _keys("version", "wraps"),
    ),
    Example(
        "PUBLIC_CHANNEL_KEY_SHARE",
        '{"type":"PUBLIC_CHANNEL_KEY_SHARE","from":"$server_a","to":"*","ts":$ts,'
        '"payload":{"shares":[{"member":"$user_b","wrapped_public_channel_key":"$wrapped_key"}],'
        '"creator_pub":"$pub_a","content_sig":"$content_sig"},"sig":"$sig"}',
        lambda w: frames.public_channel_key_share(
            w.server_a, w.ts, [{"member": w.user_b, "wrapped_public_channel_key": w.wrapped_key}],
            w.pub_a, w.content_sig,
        ),
        _keys("shares", "creator_pub", "content_sig"),
    ),
    Example(
        "MSG_PUBLIC_CHANNEL",
        '{"type":"MSG_PUBLIC_CHANNEL","from":"$user_a","to":"public","ts":$ts,'
        '"payload":{"ciphertext":"$ciphertext","sender_pub":"$pub_a","content_sig":"$content_sig"},'
        '"sig":"$sig"}',
        lambda w: frames.msg_public_channel(w.user_a, w.ts, w.ciphertext, w.pub_a, w.content_sig),
        _keys("ciphertext", "sender_pub", "content_sig"),
    ),
    Example(
        "FILE_START",
        '{"type":"FILE_START","from":"$user_a","to":"$user_b","ts":$ts,'
        '"payload":{"file_id":"$file_id","name":"report.pdf","size":1234567,'
        '"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","mode":"dm"},"sig":"$sig"}',
        lambda w: frames.file_start(
            w.user_a, w.user_b, w.ts, w.file_id, "report.pdf", 1234567,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "dm",
        ),
        _keys("file_id", "name", "size", "sha256", "mode"),
    ),
    Example(
        "FILE_CHUNK",
        '{"type":"FILE_CHUNK","from":"$user_a","to":"public","ts":$ts,'
        '"payload":{"file_id":"$file_id","index":0,"ciphertext":"$ciphertext"},"sig":"$sig"}',
        lambda w: frames.file_chunk(w.user_a, "public", w.ts, w.file_id, 0, w.ciphertext),
        _keys("file_id", "index", "ciphertext"),
    ),
    Example(
        "FILE_END",
        '{"type":"FILE_END","from":"$user_a","to":"$user_b","ts":$ts,"payload":{"file_id":"$file_id"},"sig":"$sig"}',
        lambda w: frames.file_end(w.user_a, w.user_b, w.ts, w.file_id),
        _keys("file_id"),
    ),
    Example(
        "ACK",
        '{"type":"ACK","from":"$server_a","to":"$user_a","ts":$ts,"payload":{"msg_ref":"$msg_id"},"sig":"$sig"}',
        lambda w: frames.ack(w.server_a, w.user_a, w.ts, w.msg_id),
        _keys("msg_ref"),
    ),
    Example(
        "ERROR",
        '{"type":"ERROR","from":"$server_a","to":"$user_a","ts":$ts,'
        '"payload":{"code":"USER_NOT_FOUND","detail":"no such user"},"sig":"$sig"}',
        lambda w: frames.error(w.server_a, w.user_a, w.ts, ErrorCode.USER_NOT_FOUND, "no such user"),
        _keys("code", "detail"),
    ),
    Example(
        "CTRL_CLOSE",
        '{"type":"CTRL_CLOSE","from":"$user_a","to":"$server_a","ts":$ts,"payload":{},"sig":""}',
        lambda w: frames.ctrl_close(w.user_a, w.server_a, w.ts),
        _keys(),
    ),
    Example(
        "LIST_REQUEST",
        '{"type":"LIST_REQUEST","from":"$user_a","to":"$server_a","ts":$ts,"payload":{},"sig":""}',
        lambda w: frames.list_request(w.user_a, w.server_a, w.ts),
        _keys(),
    ),
    Example(
        "LIST_RESPONSE",
        '{"type":"LIST_RESPONSE","from":"$server_a","to":"$user_a","ts":$ts,'
        '"payload":{"users":["$user_a","$user_b"],"online_users":["$user_a","$user_b"]},"sig":"$sig"}',
        # given unsorted on purpose: the builder must sort
        lambda w: frames.list_response(w.server_a, w.user_a, w.ts, [w.user_b, w.user_a]),
        _keys("users", "online_users"),
    ),
    # --- peers' list reply and key lookups (interop table; issue #14) ----------------
    Example(
        "USER_LIST",
        '{"type":"USER_LIST","from":"$server_a","to":"$user_a","ts":$ts,'
        '"payload":{"users":["$user_a","$user_b"]},"sig":"$sig"}',
        lambda w: frames.user_list(w.server_a, w.user_a, w.ts, [w.user_b, w.user_a]),
        _keys("users"),
    ),
    Example(
        "PUBKEY_REQUEST",
        '{"type":"PUBKEY_REQUEST","from":"$user_a","to":"$server_a","ts":$ts,"payload":{"user_id":"$user_b"},"sig":""}',
        lambda w: frames.pubkey_request(w.user_a, w.server_a, w.ts, w.user_b),
        _keys("user_id"),
    ),
    Example(
        "PUBKEY_RESPONSE",
        '{"type":"PUBKEY_RESPONSE","from":"$server_a","to":"$user_a","ts":$ts,'
        '"payload":{"user_id":"$user_b","pubkey":"$pub_b"},"sig":"$sig"}',
        lambda w: frames.pubkey_response(w.server_a, w.user_a, w.ts, w.user_b, w.pub_b),
        _keys("user_id", "pubkey"),
    ),
    Example(
        "USER_DB_GET",
        '{"type":"USER_DB_GET","from":"$user_a","to":"$server_a","ts":$ts,"payload":{"user_id":"$user_b"},"sig":""}',
        lambda w: frames.user_db_get(w.user_a, w.server_a, w.ts, w.user_b),
        _keys("user_id"),
    ),
    Example(
        "USER_DB_USER",
        '{"type":"USER_DB_USER","from":"$server_a","to":"$user_a","ts":$ts,'
        '"payload":{"user_id":"$user_b","found":true,"pubkey":"$pub_b"},"sig":"$sig"}',
        lambda w: frames.user_db_user(w.server_a, w.user_a, w.ts, w.user_b, w.pub_b),
        _keys("user_id", "found", "pubkey"),
    ),
    # --- G45's directory between servers (issue #14, server links) -------------------
    Example(
        "DB_REGISTER",
        '{"type":"DB_REGISTER","from":"$server_a","to":"$server_b","ts":$ts,'
        '"payload":{"user_id":"$user_a","pubkey":"$pub_a"},"sig":"$sig"}',
        lambda w: frames.db_register(w.server_a, w.server_b, w.ts, w.user_a, w.pub_a),
        _keys("user_id", "pubkey"),
    ),
    Example(
        "DB_GET_USER",
        '{"type":"DB_GET_USER","from":"$server_a","to":"$server_b","ts":$ts,'
        '"payload":{"user_id":"$user_b","req_id":"key-$user_b"},"sig":"$sig"}',
        lambda w: frames.db_get_user(w.server_a, w.server_b, w.ts, w.user_b, f"key-{w.user_b}"),
        _keys("user_id", "req_id"),
    ),
    Example(
        "DB_USER",
        '{"type":"DB_USER","from":"$server_b","to":"$server_a","ts":$ts,'
        '"payload":{"user_id":"$user_b","found":true,"pubkey":"$pub_b","req_id":"key-$user_b"},"sig":"$sig"}',
        lambda w: frames.db_user(w.server_b, w.server_a, w.ts, w.user_b, w.pub_b, f"key-{w.user_b}"),
        _keys("user_id", "found", "pubkey", "req_id"),
    ),
    Example(
        "PUBLIC_MEMBERS_SNAPSHOT",
        '{"type":"PUBLIC_MEMBERS_SNAPSHOT","from":"$server_a","to":"$user_a","ts":$ts,'
        '"payload":{"members":["$user_a","$user_b"],"version":3},"sig":"$sig"}',
        lambda w: frames.public_members_snapshot(w.server_a, w.user_a, w.ts, [w.user_b, w.user_a], 3),
        _keys("members", "version"),
    ),
    # --- G17's register and password login (docs/store-and-login.md) ----------------
    Example(
        "LOCAL_REGISTER",
        '{"type":"LOCAL_REGISTER","from":"$user_a","to":"$server_a","ts":$ts,"payload":{"pubkey":"$pub_a",'
        '"privkey_store":"U0MxYmxvYg","pake_password":"$$argon2id$$v=19$$m=65536,t=3,p=4$$c2FsdA$$aGFzaA"},'
        '"sig":""}',
        lambda w: frames.peer_register(w.user_a, w.server_a, w.ts, w.pub_a, "U0MxYmxvYg",
                                       "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"),
        _keys("pubkey", "privkey_store", "pake_password"),
    ),
    Example(
        "REGISTER",
        '{"type":"REGISTER","from":"$user_a","to":"$server_a","ts":$ts,"payload":{"pubkey":"$pub_a",'
        '"privkey_store":"U0MxYmxvYg","pake_password":"$$argon2id$$v=19$$m=65536,t=3,p=4$$c2FsdA$$aGFzaA"},'
        '"sig":""}',
        lambda w: frames.peer_register(w.user_a, w.server_a, w.ts, w.pub_a, "U0MxYmxvYg",
                                       "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", FrameType.REGISTER),
        _keys("pubkey", "privkey_store", "pake_password"),
    ),
    Example(
        "LOGIN_SUCCESS",
        '{"type":"LOGIN_SUCCESS","from":"$server_a","to":"$user_a","ts":$ts,'
        '"payload":{"pubkey":"$pub_a","privkey_store":"U0MxYmxvYg"},"sig":"$sig"}',
        lambda w: frames.login_success(w.server_a, w.user_a, w.ts, w.pub_a, "U0MxYmxvYg"),
        _keys("pubkey", "privkey_store"),
    ),
    Example(
        "LOGIN_FAIL",
        '{"type":"LOGIN_FAIL","from":"$server_a","to":"$user_a","ts":$ts,'
        '"payload":{"code":"FORBIDDEN","detail":"login failed"},"sig":"$sig"}',
        lambda w: frames.login_fail(w.server_a, w.user_a, w.ts, "FORBIDDEN", "login failed"),
        _keys("code", "detail"),
    ),
    # --- project additions: directory and login (docs/store-and-login.md) ------------
    Example(
        "DIRECTORY_GET",
        '{"type":"DIRECTORY_GET","from":"$user_a","to":"$server_a","ts":$ts,"payload":{"user_id":"$user_b"},"sig":""}',
        lambda w: frames.directory_get(w.user_a, w.server_a, w.ts, w.user_b),
        _keys("user_id"),
    ),
    Example(
        "DIRECTORY_ENTRY",
        '{"type":"DIRECTORY_ENTRY","from":"$server_a","to":"$user_a","ts":$ts,"payload":{"user_id":"$user_b",'
        '"pubkey":"$pub_b","server_id":"$server_b","remote":true,"version":3,"revoked":false},"sig":"$sig"}',
        lambda w: frames.directory_entry(w.server_a, w.user_a, w.ts, w.user_b, w.pub_b, w.server_b, True, 3, False),
        _keys("user_id", "pubkey", "server_id", "remote", "version", "revoked"),
    ),
    Example(
        "LOGIN_REGISTER",
        '{"type":"LOGIN_REGISTER","from":"$user_a","to":"$server_a","ts":$ts,"payload":'
        '{"privkey_store":"socp-aesgcm-v1$$bm9uY2U$$Y3Q","pake_password":"socp-scrypt-v1$$32768$$8$$1$$c2FsdA$$a2V5"},'
        '"sig":"$content_sig"}',
        lambda w: frames.login_register(w.user_a, w.server_a, w.ts, "socp-aesgcm-v1$bm9uY2U$Y3Q",
                                        "socp-scrypt-v1$32768$8$1$c2FsdA$a2V5"),
        _keys("privkey_store", "pake_password"),
    ),
    Example(
        "LOGIN_REQUEST",
        '{"type":"LOGIN_REQUEST","from":"$user_a","to":"$server_a","ts":$ts,"payload":{"user_id":"$user_a"},"sig":""}',
        lambda w: frames.login_request(w.user_a, w.server_a, w.ts),
        _keys("user_id"),
    ),
    Example(
        "LOGIN_CHALLENGE",
        '{"type":"LOGIN_CHALLENGE","from":"$server_a","to":"$user_a","ts":$ts,"payload":{"nonce":"bm9uY2U",'
        '"salt":"c2FsdA","params":{"kdf":"scrypt","n":32768,"r":8,"p":1}},"sig":"$sig"}',
        lambda w: frames.login_challenge(w.server_a, w.user_a, w.ts, "bm9uY2U", "c2FsdA",
                                         {"kdf": "scrypt", "n": 32768, "r": 8, "p": 1}),
        _keys("nonce", "salt", "params"),
    ),
    Example(
        "LOGIN_PROOF",
        '{"type":"LOGIN_PROOF","from":"$user_a","to":"$server_a","ts":$ts,"payload":{"user_id":"$user_a",'
        '"proof":"cHJvb2Y"},"sig":""}',
        lambda w: frames.login_proof(w.user_a, w.server_a, w.ts, "cHJvb2Y"),
        _keys("user_id", "proof"),
    ),
    Example(
        "LOGIN_BLOB",
        '{"type":"LOGIN_BLOB","from":"$server_a","to":"$user_a","ts":$ts,"payload":{"user_id":"$user_a",'
        '"privkey_store":"socp-aesgcm-v1$$bm9uY2U$$Y3Q","pubkey":"$pub_a"},"sig":"$sig"}',
        lambda w: frames.login_blob(w.server_a, w.user_a, w.ts, "socp-aesgcm-v1$bm9uY2U$Y3Q", w.pub_a),
        _keys("user_id", "privkey_store", "pubkey"),
    ),
]


def _fill(template: str, wire: WireValues) -> str:
    return Template(template).substitute(vars(wire))


def test_examples_cover_every_frame_type() -> None:
    covered = {example.name for example in EXAMPLES}
    # The other /list request names are covered by test_list_request_variants_parse.
    assert covered | {t.value for t in LIST_REQUEST_TYPES} == {t.value for t in FrameType}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_reference_example_parses_and_equals_builder(example: Example, wire: WireValues) -> None:
    text = _fill(example.json_text, wire)
    json.loads(text)  # the example itself is valid JSON
    parsed = parse(text)
    built = example.build(wire)
    assert parsed.type == example.name
    # Builders make unsigned envelopes; signing is a separate step.
    assert built.sig == ""
    assert built.with_sig(parsed.sig) == parsed


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_builder_round_trips_through_the_wire(example: Example, wire: WireValues) -> None:
    built = example.build(wire)
    assert parse(built.to_wire()) == built
    assert parse(built.to_wire().encode("utf-8")) == built


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_builder_emits_exactly_the_reference_payload_keys(example: Example, wire: WireValues) -> None:
    built = example.build(wire)
    assert set(built.payload) == example.payload_keys
    # §5: exactly these top-level fields on the wire.
    assert set(json.loads(built.to_wire())) == {"type", "from", "to", "ts", "payload", "sig"}


def test_server_welcome_entries_match_the_interop_table(wire: WireValues) -> None:
    servers = [
        {"server_id": wire.server_b, "host": "10.0.0.8", "port": 9001, "pubkey": wire.pub_server},
        {"server_id": wire.server_a, "host": "127.0.0.1", "port": 8765, "pubkey": wire.pub_server},
    ]
    payload = frames.server_welcome(wire.server_a, wire.server_b, wire.ts, wire.server_b, servers).payload
    assert [set(e) for e in payload["servers"]] == [{"server_id", "host", "port", "pubkey"}] * 2
    assert [set(e) for e in payload["clients"]] == [{"user_id", "host", "port", "pubkey"}] * 2
    assert [e["user_id"] for e in payload["clients"]] == [e["server_id"] for e in payload["servers"]]


def test_standard_literal_server_welcome_with_clients_only_parses(wire: WireValues) -> None:
    # §6.1 as the standard writes it: only `clients`, with "port": 0 in the example.
    text = _fill(
        '{"type":"SERVER_WELCOME","from":"$server_a","to":"$server_b","ts":$ts,'
        '"payload":{"assigned_id":"$server_b","clients":['
        '{"user_id":"$server_a","host":"10.0.0.1","port":8765,"pubkey":"$pub_server"},'
        '{"user_id":"$user_a","host":"10.0.0.2","port":0,"pubkey":"$pub_a"}]},"sig":"$sig"}',
        wire,
    )
    servers = frames.welcome_servers(parse(text))
    # The port-0 entry names nothing dialable; the other is read from `clients`.
    assert servers == [{"server_id": wire.server_a, "host": "10.0.0.1", "port": 8765, "pubkey": wire.pub_server}]


def test_server_welcome_with_neither_list_parses(wire: WireValues) -> None:
    text = _fill(
        '{"type":"SERVER_WELCOME","from":"$server_a","to":"$server_b","ts":$ts,'
        '"payload":{"assigned_id":"$server_b"},"sig":"$sig"}',
        wire,
    )
    assert frames.welcome_servers(parse(text)) == []


def test_bare_ctrl_close_parses() -> None:
    # §4: {"type":"CTRL_CLOSE"} alone is a valid frame.
    parsed = parse('{"type":"CTRL_CLOSE"}')
    assert parsed == Envelope(type="CTRL_CLOSE", from_="", to="", ts=0, payload={}, sig="")
    assert parsed == frames.ctrl_close("", "", 0)


@pytest.mark.parametrize("frame_type", sorted(t.value for t in LIST_REQUEST_TYPES))
def test_list_request_variants_parse(frame_type: str, wire: WireValues) -> None:
    text = _fill(
        '{"type":"%s","from":"$user_a","to":"$server_a","ts":$ts,"payload":{},"sig":""}' % frame_type, wire
    )
    parsed = parse(text)
    assert parsed.type == frame_type
    assert parsed.payload == {}
    assert parsed == Envelope(type=frame_type, from_=wire.user_a, to=wire.server_a, ts=wire.ts)


def test_list_response_sorts_users_and_carries_details(wire: WireValues) -> None:
    users = ["f" + wire.user_a[1:], wire.user_b, wire.user_a]
    details = [{"user_id": wire.user_a, "display_name": "Alice"}]
    built = frames.list_response(wire.server_a, wire.user_a, wire.ts, users, details)
    assert built.payload["users"] == sorted(users)
    assert built.payload["online_users"] == sorted(users)
    assert built.payload["details"] == details
    assert parse(built.to_wire()) == built


def test_user_hello_without_a_known_server_goes_to_broadcast(wire: WireValues) -> None:
    built = frames.user_hello(wire.user_a, None, wire.ts, wire.pub_a, display_name="Alice")
    assert built.to == "*"
    assert built.payload["pubkey"] == built.payload["enc_pubkey"] == wire.pub_a
    assert built.payload["meta"] == {"display_name": "Alice"}
    assert parse(built.to_wire()) == built


def test_split_message_part_field_round_trips(wire: WireValues) -> None:
    part = {"id": wire.msg_id, "index": 1, "count": 3}
    built = frames.msg_direct(wire.user_a, wire.user_b, wire.ts, wire.ciphertext, wire.pub_a, wire.content_sig, part)
    assert parse(built.to_wire()).payload["part"] == part


def test_peer_error_with_reason_is_read(wire: WireValues) -> None:
    text = _fill('{"type":"ERROR","from":"$server_a","to":"$user_a","ts":$ts,'
                 '"payload":{"reason":"bad things"},"sig":""}', wire)
    assert frames.error_text(parse(text)) == ("ERROR", "bad things")
    ours = frames.error(wire.server_a, wire.user_a, wire.ts, ErrorCode.NAME_IN_USE, "taken")
    assert frames.error_text(ours) == ("NAME_IN_USE", "taken")


@pytest.mark.parametrize(
    ("payload_extra", "from_server", "expected"),
    [
        ({"sender": "user_a"}, True, "user_a"),
        ({"from": "user_a"}, True, "user_a"),
        ({}, False, "user_b"),   # the envelope `from` is the user itself
        ({}, True, None),        # the envelope `from` is a server: no sender known
    ],
)
def test_deliver_sender_reads_peer_variants(
    payload_extra: dict[str, str], from_server: bool, expected: str | None, wire: WireValues
) -> None:
    payload = {"ciphertext": wire.ciphertext, "content_sig": wire.content_sig}
    payload.update({key: getattr(wire, value) for key, value in payload_extra.items()})
    sender = wire.server_a if from_server else wire.user_b
    envelope = Envelope(type="USER_DELIVER", from_=sender, to=wire.user_b, ts=wire.ts, payload=payload)
    parse(envelope.to_wire())  # every variant is a valid frame
    result = frames.deliver_sender(envelope, known_servers={wire.server_a})
    assert result == (getattr(wire, expected) if expected else None)
