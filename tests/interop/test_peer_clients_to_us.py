"""What peers' own clients sent to a `socp chat` user through our node (issue #14).

`recorded/<peer>-client.jsonl`: frames between peers' clients and our node, one JSON
object per line, {"dir": "client->node" | "node->client", "conn": n, "frame": {...}}.
Recorded data only, no peer code. Each test takes a frame a peer's client sent to one
of our `socp chat` users (a UUID) and hands it to a session with that user's id, as
our node delivers it. The session has a test key, not the run's, so ciphertexts stay
undecryptable here; what is checked needs no private key: signatures, sender, ts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from socp.client import dialects
from socp.client.events import FileFailed, FileProgress, FileReceived, MessageReceived, MessageRejected
from socp.client.render import event_text
from socp.client.session import ClientSession
from socp.client.trust import PinStore
from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_encode, canonical_json
from socp.protocol.envelope import Envelope
from socp.protocol.ids import is_uuid4, new_id

RECORDED = Path(__file__).parent / "recorded"
NODE_ID = new_id()


def _sent_by_client(peer: str, kind: str, *, to_us: bool = True) -> list[dict[str, Any]]:
    """Frames of `kind` a peer's client sent to our node (to a socp chat user: a UUID)."""
    with open(RECORDED / f"{peer}-client.jsonl", encoding="utf-8") as source:
        lines = [json.loads(line) for line in source if line.strip()]
    return [line["frame"] for line in lines if line["dir"] == "client->node" and line["frame"].get("type") == kind
            and (is_uuid4(line["frame"].get("to")) or not to_us)]


def _session(user_id: str, key, tmp_path: Path) -> ClientSession:
    return ClientSession(user_id, key, pins=PinStore(tmp_path / "pins.json"), downloads_dir=tmp_path / "downloads")


def _as_delivered(frame: dict[str, Any]) -> str:
    """A MSG_DIRECT as our node hands it on: USER_DELIVER, the sender's payload plus `sender`."""
    payload = {**frame["payload"], "sender": frame["from"]}
    return Envelope("USER_DELIVER", NODE_ID, frame["to"], frame["ts"], payload).to_wire()


# --- G101: a DM signed over payload.from/to/ts ----------------------------------------


def test_g101_client_dm_verifies_over_its_payload_ts(keys, tmp_path):
    [frame] = _sent_by_client("g101", "MSG_DIRECT")
    payload = frame["payload"]
    assert payload["ts"] != frame["ts"]                   # G101's client: two different ts
    session = _session(frame["to"], keys[0], tmp_path)
    events = session.handle(_as_delivered(frame))
    assert not [e for e in events if isinstance(e, MessageRejected)], events   # before: "does not verify"
    [message] = [e for e in events if isinstance(e, MessageReceived)]
    assert message.sender == frame["from"] == payload["from"] and message.verified
    assert message.ts == payload["ts"]                   # the ts the signature covers is the one shown


def test_g101_form_counts_only_when_its_payload_names_us(keys, tmp_path):
    """The same signed DM handed to another user (payload.to is not them) is rejected."""
    [frame] = _sent_by_client("g101", "MSG_DIRECT")
    session = _session(new_id(), keys[0], tmp_path)
    events = session.handle(_as_delivered({**frame, "to": session.me.user_id}))
    assert [e for e in events if isinstance(e, MessageRejected)] and not [
        e for e in events if isinstance(e, MessageReceived)]


def test_g101_form_with_a_payload_from_that_is_not_the_sender_is_rejected(keys, tmp_path):
    """A payload naming another sender than the one we attribute the DM to does not verify."""
    sender_key, me = keys[1], new_id()
    ciphertext = b64url_encode(crypto.oaep_encrypt(keys[0].public_key(), b"hi"))
    real, claimed = new_id(), new_id()
    sig = signing.sign_dm(sender_key, ciphertext, real, me, 1_000)
    payload = {"ciphertext": ciphertext, "sender_pub": crypto.encode_public_key(sender_key), "content_sig": sig,
               "from": real, "to": me, "ts": 1_000, "sender": claimed}
    session = _session(me, keys[0], tmp_path)
    events = session.handle(Envelope("USER_DELIVER", NODE_ID, me, 1_005, payload).to_wire())
    assert not [e for e in events if isinstance(e, MessageReceived)]


def test_g101_form_in_memory_decrypts_and_shows_the_signed_ts(keys, tmp_path):
    sender_key, sender, me = keys[1], new_id(), new_id()
    ciphertext = b64url_encode(crypto.oaep_encrypt(keys[0].public_key(), b"hello from g101"))
    sig = signing.sign_dm(sender_key, ciphertext, sender, me, 1_700_000_000_000)
    payload = {"ciphertext": ciphertext, "sender": sender, "sender_pub": crypto.encode_public_key(sender_key),
               "content_sig": sig, "from": sender, "to": me, "ts": 1_700_000_000_000}
    deliver = Envelope("USER_DELIVER", NODE_ID, me, 1_700_000_000_004, payload)
    [message] = _session(me, keys[0], tmp_path).handle(deliver.to_wire())
    assert isinstance(message, MessageReceived)
    assert (message.text, message.ts, message.verified) == ("hello from g101", 1_700_000_000_000, True)


# --- G45: FILE_START signed over its canonical manifest --------------------------------


def test_g45_client_manifest_signature_verifies(keys, tmp_path):
    [frame] = _sent_by_client("g45", "FILE_START")
    payload = frame["payload"]
    assert payload["sender"] == frame["from"] and payload["ts"] == frame["ts"]
    session = _session(frame["to"], keys[0], tmp_path)
    events = session.handle(json.dumps(frame))      # our node relays FILE_START as sent
    assert not [e for e in events if isinstance(e, FileFailed)], events    # before: "does not verify"
    assert [e for e in events if isinstance(e, FileProgress)]
    assert session.incoming_files.downloads[payload["file_id"]].verified


def test_g45_manifest_form_with_a_changed_size_is_refused(keys, tmp_path):
    [frame] = _sent_by_client("g45", "FILE_START")
    tampered = {**frame, "payload": {**frame["payload"], "size": frame["payload"]["size"] + 1}}
    events = _session(frame["to"], keys[0], tmp_path).handle(json.dumps(tampered))
    [failed] = [e for e in events if isinstance(e, FileFailed)]
    assert "signature" in failed.reason


def test_manifest_forms_need_the_payload_sender_to_be_the_sender():
    payload = {"file_id": "f", "name": "n", "size": 1, "sha256": "h", "mode": "dm", "sender": "mallory", "ts": 5}
    assert len(dialects.manifest_forms(payload, "alice", "bob", 5)) == 1
    assert dialects.manifest_forms(payload, "mallory", "bob", 5)[1] == canonical_json(
        {k: payload[k] for k in ("file_id", "name", "size", "sha256", "mode", "sender", "ts")})


# --- G17: FILE_START without sha256 ---------------------------------------------------


def test_g17_client_file_start_without_sha256_is_accepted(keys, tmp_path):
    frame = _sent_by_client("g17", "FILE_START")[0]
    assert "sha256" not in frame["payload"]
    session = _session(frame["to"], keys[0], tmp_path)
    events = session.handle(json.dumps(frame))
    assert not [e for e in events if isinstance(e, FileFailed)], events     # before: refused
    assert [e for e in events if isinstance(e, FileProgress)]


def _g17_style_file(keys, me: str, data: bytes, announced: int) -> list[str]:
    """FILE_START {file_id, name, size, sender_pub} (no sha256, no content_sig), then
    chunks encrypted to us, then FILE_END, as G17's client sends them."""
    sender, file_id = new_id(), new_id()
    start = Envelope("FILE_START", sender, me, 1, {"file_id": file_id, "name": "notes.txt", "size": announced,
                                                  "sender_pub": crypto.encode_public_key(keys[1])})
    chunk = frames.file_chunk(sender, me, 2, file_id, 0, b64url_encode(crypto.oaep_encrypt(keys[0].public_key(),
                                                                                           data)))
    return [start.to_wire(), chunk.to_wire(), frames.file_end(sender, me, 3, file_id).to_wire()]


def test_a_file_without_sha256_is_saved_and_shown_as_not_verified_by_hash(keys, tmp_path):
    me = new_id()
    session = _session(me, keys[0], tmp_path)
    events = [e for raw in _g17_style_file(keys, me, b"plain notes", 11) for e in session.handle(raw)]
    [received] = [e for e in events if isinstance(e, FileReceived)]
    assert received.hashed is False and not received.verified
    assert Path(received.path).read_bytes() == b"plain notes"
    assert "NOT VERIFIED BY HASH" in event_text(received).plain


def test_a_file_without_sha256_is_still_checked_for_its_size(keys, tmp_path):
    me = new_id()
    session = _session(me, keys[0], tmp_path)
    events = [e for raw in _g17_style_file(keys, me, b"plain notes", 50) for e in session.handle(raw)]
    [failed] = [e for e in events if isinstance(e, FileFailed)]
    assert "50" in failed.reason and not [e for e in events if isinstance(e, FileReceived)]
    assert not (tmp_path / "downloads").exists() or not [p for p in (tmp_path / "downloads").iterdir()
                                                          if not p.name.startswith(".")]
