"""`socp chat` against servers that speak other teams' dialects (issue #14).

Each double is a small WebSocket server on 127.0.0.1 answering the way a peer's
server was seen to answer (tests/interop/recorded/ has the real frames):

  G45   LIST_REQUEST -> ERROR UNKNOWN_TYPE; USER_LIST_REQ -> USER_LIST {users};
        keys only through USER_DB_GET -> USER_DB_USER
  G56   no list request at all (UNKNOWN_TYPE for each); users and keys pushed as
        USER_ADVERTISE {meta.pubkey} in base64url(PEM); PUBLIC_CHANNEL_KEY_SHARE refused
  G101  checks the hello's signature over the envelope minus `sig` and answers a
        payload-signed one with ERROR {reason: HELLO_VERIFY_FAILED…} and a close;
        ACK with an ISO-8601 ts and msg_ref null; WHO -> WHO {users} without ts
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from socp.client import dialects
from socp.client.connection import ChatClient, ConnectionSettings, command_queue
from socp.client.events import ErrorReceived, Event, ListResult, MessageSent, Ready
from socp.protocol import crypto
from socp.protocol.encoding import b64url_decode, b64url_encode, canonical_json
from socp.protocol.ids import new_id

STEP = 10.0
Answer = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass
class Double:
    """A scripted server: `answer(frame)` gives the frames to send back; every frame
    the client sent is kept in `received`. `close_after` closes the connection after
    answering a frame for which it returns True."""

    answer: Answer
    on_hello: Answer = lambda frame: []
    close_after: Callable[[dict[str, Any]], bool] = lambda frame: False
    received: list[dict[str, Any]] = field(default_factory=list)

    async def handler(self, ws: ServerConnection) -> None:
        first = True
        try:
            async for raw in ws:
                frame = json.loads(raw)
                self.received.append(frame)
                replies = self.on_hello(frame) if first else self.answer(frame)
                first = False
                for reply in replies:
                    await ws.send(json.dumps(reply))
                if self.close_after(frame):
                    await ws.close()
                    return
        except ConnectionClosed:
            pass

    def sent_types(self) -> list[str]:
        return [frame["type"] for frame in self.received]


def _frame(kind: str, sender: str, to: str, payload: dict[str, Any], ts: Any = 1_700_000_000_000) -> dict[str, Any]:
    return {"type": kind, "from": sender, "to": to, "ts": ts, "payload": payload, "sig": ""}


async def _until(events: list[Event], matches: Callable[[Event], bool]) -> Event:
    deadline = asyncio.get_running_loop().time() + STEP
    while True:
        found = next((event for event in events if matches(event)), None)
        if found is not None:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not seen within {STEP}s; saw {events[-10:]}")
        await asyncio.sleep(0.01)


async def _run(double: Double, session, commands: list[str], **options) -> tuple[int, list[Event]]:
    """Serve the double, run the client through `commands`, return (exit code, events)."""
    events: list[Event] = []
    async with serve(double.handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        lines = command_queue()
        client = ChatClient(session, f"ws://127.0.0.1:{port}", events.append,
                            ConnectionSettings(connect_attempts=2, linger=0.2, list_probe_timeout=0.5, **options))
        task = asyncio.get_running_loop().create_task(client.run(lines))
        await _until(events, lambda e: isinstance(e, (Ready, ErrorReceived)) and not (
            isinstance(e, ErrorReceived) and e.source == "server"))
        for line in commands:
            await lines.put(line)
        await lines.put(None)
        code = await asyncio.wait_for(task, STEP * 3)
    return code, events


def _server_id() -> str:
    return f"master_server_{new_id()}"   # G45's id shape: not a UUID


# --- G45 ----------------------------------------------------------------------------


def _g45(me: str, other: str, other_key: str, server_id: str) -> Double:
    def answer(frame: dict[str, Any]) -> list[dict[str, Any]]:
        kind = frame["type"]
        if kind == "USER_LIST_REQ":
            return [_frame("USER_LIST", server_id, me, {"users": sorted([me, other])})]
        if kind == "USER_DB_GET":
            found = frame["payload"]["user_id"] == other
            return [
                _frame(
                    "USER_DB_USER",
                    server_id,
                    me,
                    {"user_id": frame["payload"]["user_id"], "found": found, "pubkey": other_key if found else ""},
                )
            ]
        if kind in ("MSG_DIRECT",):
            return []
        return [
            _frame("ERROR", server_id, "server_*", {"code": "UNKNOWN_TYPE", "detail": f"unrecognized type: {kind}"})
        ]

    return Double(answer=answer)


async def test_g45_unknown_list_request_is_not_a_hello_refusal_and_tell_finds_the_key(make_session, keys):
    """Before: "the server refused the hello: UNKNOWN_TYPE" and exit 1; then "no key known"."""
    alice = make_session("alice")
    other = new_id()
    double = _g45(alice.me.user_id, other, crypto.encode_public_key(keys[1]), _server_id())
    code, events = await _run(double, alice, ["/list", f"/tell {other} hello", f"/tell {other} again"])
    assert code == 0, events
    assert not [e for e in events if isinstance(e, ErrorReceived)], events
    lists = [e for e in events if isinstance(e, ListResult) and e.requested]
    assert lists and {u.user_id for u in lists[-1].users} == {alice.me.user_id, other}
    assert alice.users.list_dialect == "USER_LIST_REQ"
    sent = [e for e in events if isinstance(e, MessageSent)]
    assert [e.text for e in sent] == ["hello", "again"]
    types = double.sent_types()
    # G45 reads USER_DB_GET.payload.user_id; asked once, and the second /tell asks nothing.
    lookups = [f for f in double.received if f["type"] == "USER_DB_GET"]
    assert len(lookups) == 1 and lookups[0]["payload"] == {"user_id": other}
    last_direct = max(i for i, kind in enumerate(types) if kind == "MSG_DIRECT")
    first_direct = types.index("MSG_DIRECT")
    assert not [k for k in types[first_direct:last_direct] if k in ("LIST_REQUEST", "USER_LIST_REQ", "WHO")]


# --- G56 ----------------------------------------------------------------------------


def _pem_b64url(key) -> str:
    """G56's key form: base64url of the PEM text, no padding."""
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url_encode(pem)


def _g56(me: str, other: str, other_key_pem64: str, server_id: str) -> Double:
    def on_hello(frame: dict[str, Any]) -> list[dict[str, Any]]:
        # G56 requires `to` to be a UUID, "*" or "public", else it closes the socket.
        assert frame["to"] in ("*", "public")
        advert = {"user_id": other, "server_id": server_id, "meta": {"pubkey": other_key_pem64}}
        return [_frame("USER_ADVERTISE", server_id, "*", advert)]

    def answer(frame: dict[str, Any]) -> list[dict[str, Any]]:
        kind = frame["type"]
        if kind in ("MSG_DIRECT", "MSG_PUBLIC_CHANNEL"):
            return []
        if kind == "PUBLIC_CHANNEL_KEY_SHARE":
            return [
                _frame(
                    "ERROR",
                    server_id,
                    me,
                    {"code": "UNKNOWN_TYPE", "detail": f"Message type {kind} not yet implemented"},
                )
            ]
        return [_frame("ERROR", server_id, me, {"code": "UNKNOWN_TYPE", "detail": f"Unknown message type: {kind}"})]

    return Double(answer=answer, on_hello=on_hello)


async def test_g56_presence_is_the_list_tell_needs_no_list_and_a_refused_all_is_not_sent(make_session, keys):
    """Before: the hello was refused (UNKNOWN_TYPE), and /all said "sent" on a server
    that refused its key share."""
    alice = make_session("alice")
    other = new_id()
    double = _g56(alice.me.user_id, other, _pem_b64url(keys[1]), new_id())
    code, events = await _run(double, alice, ["/list", f"/tell {other} hello", "/all to everyone"])
    assert code == 0, events
    assert alice.users.list_dialect == dialects.PRESENCE_ONLY
    lists = [e for e in events if isinstance(e, ListResult) and e.requested]
    assert lists and other in {u.user_id for u in lists[-1].users}
    assert [e.text for e in events if isinstance(e, MessageSent)] == ["hello"]
    types = double.sent_types()
    assert "MSG_DIRECT" in types
    after_hello_probes = types[types.index("MSG_DIRECT") :]
    assert not [k for k in after_hello_probes if k in ("LIST_REQUEST", "USER_LIST_REQ", "WHO")]
    refusals = [e for e in events if isinstance(e, ErrorReceived) and e.code == "NOT_SENT"]
    assert len(refusals) == 1 and "PUBLIC_CHANNEL_KEY_SHARE" in refusals[0].detail


# --- G101 ---------------------------------------------------------------------------


def _g101(me: str, server_id: str) -> Double:
    def envelope_signature_ok(frame: dict[str, Any]) -> bool:
        whole = {k: v for k, v in frame.items() if k != "sig"}
        key = crypto.decode_public_key(frame["payload"]["pubkey"])
        return crypto.verify_pss(key, b64url_decode(frame["sig"]), canonical_json(whole))

    def on_hello(frame: dict[str, Any]) -> list[dict[str, Any]]:
        if not envelope_signature_ok(frame):
            return [
                _frame(
                    "ERROR",
                    "server",
                    me,
                    {"reason": "HELLO_VERIFY_FAILED: Signature verify failed"},
                    ts="2026-11-25T21:44:25Z",
                )
            ]
        return [_frame("ACK", "server", me, {"msg_ref": None, "session_token": new_id()}, ts="2026-11-25T21:44:25Z")]

    def answer(frame: dict[str, Any]) -> list[dict[str, Any]]:
        if frame["type"] == "WHO":
            reply = _frame("WHO", server_id, me, {"users": [me]})
            del reply["ts"], reply["sig"]  # as G101 sends it
            return [reply]
        return [_frame("ACK", "server", me, {"msg_ref": "unknown"}, ts="2026-11-25T21:44:26Z")]

    return Double(
        answer=answer,
        on_hello=on_hello,
        close_after=lambda frame: frame["type"] == "USER_HELLO" and not envelope_signature_ok(frame),
    )


async def test_g101_hello_again_signed_over_the_envelope_and_who_is_the_list(make_session):
    """Before: the hello was refused for good (exit 1); ISO ts and WHO without ts were
    dropped as malformed."""
    alice = make_session("alice")
    double = _g101(alice.me.user_id, "127.0.0.1:8865")
    code, events = await _run(double, alice, ["/list"])
    assert code == 0, events
    hellos = [f for f in double.received if f["type"] == "USER_HELLO"]
    assert len(hellos) == 2 and alice.hello_signs_envelope
    assert alice.users.list_dialect == "WHO"
    assert not [e for e in events if isinstance(e, ErrorReceived)], events
    assert [e for e in events if isinstance(e, ListResult) and e.requested]


async def test_a_name_in_use_is_still_a_hello_refusal(make_session):
    alice = make_session("alice")
    double = Double(
        answer=lambda f: [],
        on_hello=lambda f: [_frame("ERROR", "server", f["from"], {"reason": "NAME_IN_USE"})],
        close_after=lambda f: True,
    )
    code, events = await _run(double, alice, [])
    assert code == 1
    assert [e.code for e in events if isinstance(e, ErrorReceived)] == ["NAME_IN_USE"]


@pytest.mark.parametrize(
    "reason, code",
    [
        ("NAME_IN_USE", "NAME_IN_USE"),
        ("HELLO_VERIFY_FAILED: Signature verify failed", "HELLO_VERIFY_FAILED"),
        ("something odd", "ERROR"),
    ],
)
def test_error_reason_is_read_as_a_code(reason, code):
    assert dialects.error_fields({"reason": reason})[0] == code


# --- session level: peers' forms of keys, timestamps and public messages --------------


def _key_forms(key) -> dict[str, str]:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der_b64 = crypto.encode_public_key(key)
    return {
        "der-b64url": der_b64,
        "b64url(pem)": b64url_encode(pem),
        "raw pem": pem.decode(),
        "padded": der_b64 + "=" * (-len(der_b64) % 4),
    }


@pytest.mark.parametrize("form", ["der-b64url", "b64url(pem)", "raw pem", "padded"])
@pytest.mark.parametrize("source", ["USER_ADVERTISE", "PUBKEY_RESPONSE", "USER_DB_USER", "LIST_RESPONSE"])
def test_keys_are_learned_from_every_source_in_any_encoding(make_session, keys, source, form):
    """Before: only LIST_RESPONSE.details[].pubkey taught a key."""
    alice = make_session("alice")
    other, server = new_id(), "auto"
    key_text = _key_forms(keys[1])[form]
    payload = {
        "USER_ADVERTISE": {"user_id": other, "server_id": server, "meta": {"pubkey": key_text}},
        "PUBKEY_RESPONSE": {"user_id": other, "pubkey": key_text},
        "USER_DB_USER": {"user_id": other, "found": True, "pubkey": key_text},
        "LIST_RESPONSE": {"online_users": [other], "details": [{"user_id": other, "pubkey": key_text}]},
    }[source]
    if source in ("PUBKEY_RESPONSE", "USER_DB_USER"):
        alice.users.key_lookups(other)
    events = alice.handle(json.dumps(_frame(source, server, alice.me.user_id, payload)))
    assert not [e for e in events if isinstance(e, ErrorReceived)], events
    assert alice.knows_key(other)
    assert alice.messages.tell(other, "hi").frames[0].to == other


def test_iso_and_missing_timestamps_on_server_frames_are_read(make_session):
    """Before: G101's ACK (ts "2026-11-25T21:44:25Z") and WHO (no ts) were dropped."""
    alice = make_session("alice")
    ack = _frame("ACK", "server", alice.me.user_id, {"msg_ref": None, "session_token": "t"}, ts="2026-11-25T21:44:25Z")
    assert alice.handle(json.dumps(ack)) == []
    assert dialects.ms_timestamp("2026-11-25T21:44:25Z") == 1_795_643_065_000
    alice.users.list_request(dialect="WHO")
    who = _frame("WHO", "127.0.0.1:8865", alice.me.user_id, {"users": [alice.me.user_id]})
    del who["ts"]
    assert [type(e) for e in alice.handle(json.dumps(who))] == [ListResult]


def test_unknown_peer_frame_types_are_ignored_and_client_welcome_names_the_server(make_session):
    alice = make_session("alice")
    welcome = _frame("CLIENT_WELCOME", "auto", alice.me.user_id, {"server_id": "auto"})
    assert alice.handle(json.dumps(welcome)) == []
    assert alice.users.server_id == "auto" and "auto" in alice.users.server_ids
    assert alice.handle(json.dumps(_frame("PUBLIC_MEMBERS_SNAPSHOT", "auto", alice.me.user_id, {}))) == []


def test_g45_plaintext_public_message_is_shown_unencrypted_and_verified(make_session, keys):
    """Before: MSG_PUBLIC_CHANNEL without `ciphertext` was dropped as malformed (an
    earlier attempt crashed with KeyError 'ciphertext')."""
    alice = make_session("alice")
    sender_key, sender = keys[1], "Bob"  # G45's user ids are names
    ts = 1_700_000_000_123
    signed = {"channel": "public", "text": "hello all", "from": sender, "ts": ts}
    sig = b64url_encode(crypto.sign_pss(sender_key, json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()))
    payload = {**signed, "sender_pub": crypto.encode_public_key(sender_key), "content_sig": sig}
    events = alice.handle(json.dumps(_frame("MSG_PUBLIC_CHANNEL", "master_server_x", alice.me.user_id, payload)))
    shown = [e for e in events if isinstance(e, type(events[-1])) and getattr(e, "text", None) == "hello all"]
    assert shown and shown[0].form == "unencrypted" and shown[0].verified and shown[0].sender == sender
    forged = dict(payload, text="changed")
    events = alice.handle(json.dumps(_frame("MSG_PUBLIC_CHANNEL", "master_server_x", alice.me.user_id, forged)))
    assert [e.verified for e in events if getattr(e, "text", None) == "changed"] == [False]


def test_g56_placeholder_public_message_is_shown_unencrypted(make_session, keys):
    """G56's /all sends base64url(plaintext) as `ciphertext`, signed over the b64 text."""
    alice = make_session("alice")
    sender = new_id()
    ts = 1_700_000_000_456
    ciphertext = b64url_encode(b"plain words")
    sig = b64url_encode(crypto.sign_pss(keys[1], (ciphertext + sender + str(ts)).encode()))
    payload = {"ciphertext": ciphertext, "sender_pub": _key_forms(keys[1])["b64url(pem)"], "content_sig": sig}
    events = alice.handle(json.dumps(_frame("MSG_PUBLIC_CHANNEL", sender, "*", payload, ts=ts)))
    received = [e for e in events if getattr(e, "text", None) == "plain words"]
    assert received and received[0].form == "unencrypted" and received[0].verified


def test_deliver_sender_falls_back_to_payload_from_then_envelope_from(make_session, keys):
    """Before: a USER_DELIVER without payload.sender was rejected ("does not say who sent it")."""
    bob = make_session("bob")
    alice_key, alice = keys[0], new_id()
    ts = 1_700_000_000_789
    ciphertext = b64url_encode(crypto.oaep_encrypt(keys[1].public_key(), b"hi bob"))
    from socp.protocol import signing

    sig = signing.sign_dm(alice_key, ciphertext, alice, bob.me.user_id, ts)
    base = {"ciphertext": ciphertext, "sender_pub": crypto.encode_public_key(alice_key), "content_sig": sig}
    for envelope_from, payload in ((alice, base), ("server", dict(base, **{"from": alice}))):
        bob.users.server_ids.add("server")
        events = bob.handle(json.dumps(_frame("USER_DELIVER", envelope_from, bob.me.user_id, payload, ts=ts)))
        got = [e for e in events if getattr(e, "text", None) == "hi bob"]
        assert got and got[0].sender == alice and got[0].verified, events
