"""Attack: get a corrupted or partial file accepted or exposed (SOCP §7.4, §13).

Mallory sends the victim a file over the node with one chunk swapped for other
(correctly encrypted) bytes, then one whose first two chunks carry each other's
bytes (each under the other's index: a reorder no index shows), then one whose first
chunk never comes. The victim runs the real client session (`socp.client`) on
what arrives. Blocked when the client refuses all three,
nothing ever appears under the file's final name (checked after every chunk), the
temporary file is private (mode 0600, hidden name), and nothing is left behind.

Chunks that merely arrive out of order, each under its own index, are no attack:
the client puts them back in place (a chunk the node refused for its load comes
again after later ones, docs/chat.md "Files") and the SHA-256 decides; the script
checks that such a file is saved byte for byte.

    python poc/file_integrity.py --url ws://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import hashlib
import stat
import tempfile
from pathlib import Path

from _common import Keys, Peer, Verdict, main, now_ms, show, user
from socp.client.events import FileFailed, FileReceived
from socp.client.session import ClientSession
from socp.protocol import crypto, frames
from socp.protocol.encoding import b64url_encode
from socp.protocol.ids import new_id

CHUNK = 446


def _chunks(data: bytes) -> list[bytes]:
    return [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]


async def transfer(verdict: Verdict, mallory: Peer, victim: Peer, session: ClientSession, downloads: Path,
                   name: str, data: bytes, parts: list[tuple[int, bytes]]) -> list[object]:
    """Send a manifest for `data`, then `parts` as (index, plaintext); feed the victim's client."""
    key = crypto.decode_public_key(victim.pubkey)
    file_id = new_id()
    frames_out = [frames.file_start(mallory.peer_id, victim.peer_id, now_ms(), file_id, name, len(data),
                                    hashlib.sha256(data).hexdigest(), "dm")]
    for index, plain in parts:
        frames_out.append(frames.file_chunk(mallory.peer_id, victim.peer_id, now_ms(), file_id, index,
                                            b64url_encode(crypto.oaep_encrypt(key, plain))))
    frames_out.append(frames.file_end(mallory.peer_id, victim.peer_id, now_ms(), file_id))
    events: list[object] = []
    exposed, loose_tmp = [], []
    for frame in frames_out:
        await mallory.send(frame)
        arrived = await victim.receive(frame.type)
        events += session.handle_envelope(arrived)
        if frame.type == "FILE_END":
            break   # the moment of commit: only a verified file may appear now
        for entry in downloads.iterdir():
            if entry.name == name or not entry.name.startswith("."):
                exposed.append(entry.name)
            elif stat.S_IMODE(entry.stat().st_mode) & 0o077:
                loose_tmp.append(entry.name)
    verdict.check(not exposed, f"visible under a final name before FILE_END: {exposed or 'nothing'}")
    verdict.check(not loose_tmp, f"temporary files readable by others: {loose_tmp or 'none (mode 0600)'}")
    return events


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    mallory = await user(args.url, keys, args.timeout)
    victim = await user(args.url, keys, args.timeout)
    with tempfile.TemporaryDirectory(prefix="socp-poc-") as tmp:
        downloads = Path(tmp) / "downloads"
        downloads.mkdir(mode=0o700)
        session = ClientSession(victim.peer_id, victim.key, downloads_dir=downloads, channel_keys=None)
        data = bytes(range(256)) * 8   # 2048 bytes: five chunks

        verdict.tried("chunk 2 replaced by other bytes (valid encryption, wrong content)")
        parts = list(enumerate(_chunks(data)))
        parts[2] = (2, b"X" * len(parts[2][1]))
        events = await transfer(verdict, mallory, victim, session, downloads, "report.pdf", data, parts)
        failed = [e for e in events if isinstance(e, FileFailed)]
        saved = [e for e in events if isinstance(e, FileReceived)]
        verdict.check(bool(failed) and not saved, f"client: {show(failed[0].reason) if failed else 'ACCEPTED'}")

        verdict.tried("chunks 0 and 1 with each other's bytes (a reorder the indexes do not show)")
        chunks = _chunks(data)
        parts = [(0, chunks[1]), (1, chunks[0]), *list(enumerate(chunks))[2:]]
        events = await transfer(verdict, mallory, victim, session, downloads, "invoice.pdf", data, parts)
        failed = [e for e in events if isinstance(e, FileFailed)]
        saved = [e for e in events if isinstance(e, FileReceived)]
        verdict.check(bool(failed) and not saved, f"client: {show(failed[0].reason) if failed else 'ACCEPTED'}")

        verdict.tried("chunk 0 never sent: the rest held, then the FILE_END")
        events = await transfer(verdict, mallory, victim, session, downloads, "partial.pdf", data,
                                list(enumerate(_chunks(data)))[1:])
        failed = [e for e in events if isinstance(e, FileFailed)]
        saved = [e for e in events if isinstance(e, FileReceived)]
        verdict.check(bool(failed) and not saved, f"client: {show(failed[0].reason) if failed else 'ACCEPTED'}")

        verdict.tried("control: chunks out of order (1 before 0), each under its own index")
        parts = list(enumerate(_chunks(data)))
        parts[0], parts[1] = parts[1], parts[0]
        events = await transfer(verdict, mallory, victim, session, downloads, "in-place.pdf", data, parts)
        saved = [e for e in events if isinstance(e, FileReceived)]
        ok = bool(saved) and Path(saved[0].path).read_bytes() == data
        verdict.note(f"put back in place and saved byte for byte: {ok}")
        for entry in saved:
            Path(entry.path).unlink()

        left = sorted(p.name for p in downloads.iterdir())
        verdict.check(not left, f"left in the downloads directory afterwards: {left or 'nothing'}")

        verdict.tried("control: the same file sent intact is accepted")
        events = await transfer(verdict, mallory, victim, session, downloads, "report.pdf", data,
                                list(enumerate(_chunks(data))))
        saved = [e for e in events if isinstance(e, FileReceived)]
        ok = bool(saved) and Path(saved[0].path).read_bytes() == data
        verdict.note(f"intact file saved and verified: {ok}")
        session.close()
    await mallory.close()
    await victim.close()


if __name__ == "__main__":
    raise SystemExit(main(run, "file integrity: corrupted and reordered chunks"))
