"""Attack: inject through what peers are allowed to name or say (SOCP §7, §13).

File names with path components, terminal escape sequences in a display name and
in a message, and frame types the node does not know. Blocked when the victim's
client (`socp.client`) saves inside its downloads directory under a plain
basename, renders no control character, and the node answers unknown types with
UNKNOWN_TYPE without echoing them, keeping the connection.

    python poc/injection.py --url ws://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import unicodedata
from pathlib import Path

from _common import Keys, Verdict, main, now_ms, show, user
from socp.client import render
from socp.client.events import FileReceived
from socp.client.session import ClientSession
from socp.protocol import crypto, frames
from socp.protocol.encoding import b64url_encode
from socp.protocol.ids import new_id

ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31m\u202e\x9b"


def has_controls(text: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cf") and c != "\n" for c in text)


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    mallory = await user(args.url, keys, args.timeout, name="mallory" + ESCAPES)
    victim = await user(args.url, keys, args.timeout)
    with tempfile.TemporaryDirectory(prefix="socp-poc-") as tmp:
        downloads = Path(tmp) / "inbox" / "downloads"
        downloads.mkdir(parents=True, mode=0o700)
        session = ClientSession(victim.peer_id, victim.key, downloads_dir=downloads)
        await victim.send(frames.list_request(victim.peer_id, "*", now_ms()))
        session.handle_envelope(await victim.receive("LIST_RESPONSE"))

        key = crypto.decode_public_key(victim.pubkey)
        for name in ("../../evil.sh", "/etc/passwd", "..\\..\\boot.ini", "..", "a\x1b[8m/../b\x00.txt"):
            verdict.tried(f"a file named {show(name)}")
            data = b"#!/bin/sh\necho owned\n"
            file_id = new_id()
            sent = [frames.file_start(mallory.peer_id, victim.peer_id, now_ms(), file_id, name, len(data),
                                      hashlib.sha256(data).hexdigest(), "dm"),
                    frames.file_chunk(mallory.peer_id, victim.peer_id, now_ms(), file_id, 0,
                                      b64url_encode(crypto.oaep_encrypt(key, data))),
                    frames.file_end(mallory.peer_id, victim.peer_id, now_ms(), file_id)]
            events = []
            for frame in sent:
                await mallory.send(frame)
                events += session.handle_envelope(await victim.receive(frame.type))
            saved = [e for e in events if isinstance(e, FileReceived)]
            if not saved:
                verdict.check(True, "not saved at all")
                continue
            path = Path(saved[0].path).resolve()
            inside = path.parent == downloads.resolve()
            verdict.check(
                inside and not has_controls(path.name), f"saved as {show(path.name)} inside downloads: {inside}"
            )
        outside = sorted(
            p.name
            for p in (Path(tmp)).rglob("*")
            if downloads.resolve() not in p.resolve().parents and p.resolve() != downloads.resolve() and p.is_file()
        )
        verdict.check(not outside, f"files outside the downloads directory: {outside or 'none'}")

        verdict.tried("terminal escape sequences in a display name and in a message")
        await mallory.send(mallory.dm(victim.peer_id, victim.pubkey, ("hi" + ESCAPES + "there").encode()))
        events = session.handle_envelope(await victim.receive("USER_DELIVER"))
        shown = [render.event_text(e) for e in events]
        lines = [t.plain for t in shown if t is not None]
        verdict.check(
            bool(lines) and not any(has_controls(line) for line in lines),
            f"rendered: {show(lines[0]) if lines else 'nothing'}",
        )
        session.close()

    for frame_type in ("EVIL_TYPE", "\x1b[31mRED", "USER_DELIVER"):
        verdict.tried(f"a frame of type {show(frame_type)} from a user")
        await mallory.send(frames.Envelope(type=frame_type, from_=mallory.peer_id, to="*", ts=now_ms(), payload={}))
        code, detail = await mallory.error()
        echoed = "\x1b" in detail
        verdict.check(
            code in ("UNKNOWN_TYPE", "FORBIDDEN", "MALFORMED") and not echoed, f"answer {code or 'none'} {show(detail)}"
        )
    verdict.check(mallory.peer_id in await mallory.list_users(), "the connection still works")
    await mallory.close()
    await victim.close()


if __name__ == "__main__":
    raise SystemExit(main(run, "injection: path names, terminal escapes, unknown types"))
