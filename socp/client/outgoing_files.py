"""Files we send (§7.4), streamed: FILE_START (its manifest signed by us),
≤446-byte FILE_CHUNKs, FILE_END; and what becomes of them: "sent" once the server
acknowledged the whole file, "not delivered" when it refused a frame of it, "may not
have arrived" when a server downstream gave up on it. A file cut by a lost connection
is kept (file_resume.py) to go on after the reconnect, or is reported as failed. The
pace the frames go at is the driver's (sending.py)."""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from socp.protocol import crypto, frames
from socp.protocol.acks import msg_ref
from socp.protocol.encoding import b64url_encode
from socp.protocol.envelope import Envelope
from socp.protocol.errors import SocpError
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import PUBLIC_CHANNEL, new_id
from socp.protocol.limits import OAEP_MAX_PLAINTEXT

from . import dialects
from .channel_keys import ChannelKeyRing
from .chat_messages import Actions, Messages
from .commands import CommandError
from .events import Channel, Event, FileFailed, FileProgress, FileSent, Info, NotDelivered
from .file_resume import UnconfirmedFile, cut_summary, failure_reason, resume_refusal, resume_start
from .keyring import TrustedKeys
from .outbox import Outbox, Tracked
from .roster import Directory
from .user_identity import Identity

# Files we sent within this many seconds may still be lost downstream (a server's
# backlog given up after its link timeout), and are reported if that is said.
RECENT_FILE_SECONDS = 120.0
MAX_RECENT_FILES = 64
FILE_READ_BUFFER = 1024 * 1024


def manifest_signed_bytes(payload: dict[str, Any], sender: str, to: str, ts: int) -> bytes:
    """Project extension: FILE_START may carry `content_sig` (and `sender_pub`) over
    the canonical JSON of the manifest and the envelope fields, so the receiver can
    tie the file's SHA-256, and with it every chunk, to the sender's key. Peers
    ignore the extra fields."""
    return dialects.manifest_forms(payload, sender, to, ts)[0]


def sign_manifest(me: Identity, payload: dict[str, Any], to: str, ts: int) -> str:
    return b64url_encode(crypto.sign_pss(me.user_key, manifest_signed_bytes(payload, me.user_id, to, ts)))


class OutgoingFiles:
    def __init__(self, me: Identity, users: Directory, keys: TrustedKeys, channel_keys: ChannelKeyRing,
                 outbox: Outbox, messages: Messages, *, progress_interval: float, sign_file_chunks: bool,
                 chunk_blocks: int) -> None:
        self._me = me
        self._users = users
        self._keys = keys
        self._channel_keys = channel_keys
        self._outbox = outbox
        self._messages = messages
        self.progress_interval = progress_interval
        self.sign_file_chunks = sign_file_chunks
        self.chunk_blocks = chunk_blocks        # OAEP blocks per FILE_CHUNK (docs/chat.md, "Files")
        self._sent_on_ack: dict[str, FileSent] = {}      # FILE_END msg_ref -> "sent", shown on its ACK
        # Files we sent: file id -> (to, name, when FILE_END went, None while sending).
        self._recent: OrderedDict[str, tuple[str, str, float | None]] = OrderedDict()
        # Files not yet confirmed whole by the server, by the id of their attempt going now.
        self._unconfirmed: dict[str, UnconfirmedFile] = {}

    def send(self, target: str, path: Path) -> Iterator[Actions]:
        """§7.4, streamed: FILE_START, ≤446-byte FILE_CHUNKs, FILE_END.

        Reads the file twice (hash, then chunks) and never holds more than a read
        buffer. Errors about the target or the path raise before anything is sent.

        Every frame carries our transport `sig`, as §5 asks of frames with user
        content; `sign_file_chunks=False` (`socp chat --no-sign-chunks`) leaves
        chunks unsigned for servers that accept unsigned user frames (the interop
        table allows it): a chunk's `sig` only ever reaches our own server, since
        every server re-signs what it forwards. What protects the file end to end is the
        FILE_START `content_sig` (the manifest: id, name, size, SHA-256, from, to,
        ts, by the sender's user key) and the receiver's size + SHA-256 check
        before the file gets a name (§13). Tampered or injected chunks therefore
        make the transfer fail; they can never change a saved file. Skipping the
        per-chunk RSA-4096 signature halves the sender's CPU cost (docs/chat.md).
        """
        path = Path(path).expanduser()
        channel: Channel
        if target == PUBLIC_CHANNEL:
            to, channel = PUBLIC_CHANNEL, "public"
            encrypt_key = None  # resolved after the key shares
        else:
            to, channel = self._users.resolve(target), "dm"
            if to == self._me.user_id:
                raise CommandError("that is you")
            encrypt_key = self._keys.for_sending(to)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise CommandError(f"{path} is not a regular file", "FILE_NOT_FOUND")
            digest = _sha256_file(path)
        except FileNotFoundError as exc:
            raise CommandError(f"no file {path}", "FILE_NOT_FOUND") from exc
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}", "FILE_UNREADABLE") from exc
        record = UnconfirmedFile(first_id="", file_id="", to=to, name=path.name, path=path, size=size,
                                 sha256=digest, channel=channel)
        return self._frames(record, encrypt_key)

    def resume(self, cut: UnconfirmedFile) -> Iterator[Actions]:
        """A file cut by a lost connection, again from `resume_start` under a new file
        id whose FILE_START names the first one (`resumes`, file_resume.py). Raises
        CommandError (and forgets the file) if it cannot be sent as it was."""
        try:
            encrypt_key = None if cut.channel == "public" else self._keys.for_sending(cut.to)
            unchanged = _sha256_file(cut.path) == cut.sha256
        except OSError as exc:
            self._forget(cut)
            raise CommandError(f"cannot read {cut.path}: {exc.strerror}", "FILE_UNREADABLE") from exc
        except SocpError:
            self._forget(cut)
            raise
        if not unchanged:
            self._forget(cut)
            raise CommandError(f"{cut.path} changed since it was first sent", "FILE_CHANGED")
        self._unconfirmed.pop(cut.file_id, None)
        cut.cut_at = None
        cut.resumes += 1
        first_index = resume_start(cut.acked_through, cut.retrying)
        cut.retrying.clear()         # this attempt sends them
        return self._frames(cut, encrypt_key, first_index=first_index)

    def _frames(self, record: UnconfirmedFile, encrypt_key: crypto.PublicKey | None,
                first_index: int = 0) -> Iterator[Actions]:
        """FILE_START, the chunks from `first_index` (the ones before are read for the
        hash only), FILE_END; `record` follows the attempt."""
        me = self._me
        path, to, size, digest = record.path, record.to, record.size, record.sha256
        if record.channel == "public":
            yield self._messages.key_shares()
            encrypt_key = self._channel_keys.own().public_key()
        assert encrypt_key is not None
        file_id, name, started = new_id(), record.name, me.now()
        record.file_id, record.first_id = file_id, record.first_id or file_id
        ts = me.now_ms()
        start = frames.file_start(me.user_id, to, ts, file_id, name, size, digest, record.channel)
        payload = dict(start.payload)
        if record.first_id != file_id:
            payload["resumes"] = record.first_id
        payload["sender_pub"] = me.pubkey
        payload["content_sig"] = sign_manifest(me, payload, to, ts)
        start = me.sign(Envelope(type=start.type, from_=start.from_, to=to, ts=ts, payload=payload))
        self._outbox.track(Tracked(start, file_id, "file", to, name))
        self._unconfirmed[file_id] = record
        self._recent[file_id] = (to, name, None)
        while len(self._recent) > MAX_RECENT_FILES:
            self._recent.popitem(last=False)
        chunk_bytes = OAEP_MAX_PLAINTEXT * self.chunk_blocks
        done = min(size, first_index * chunk_bytes)
        record.done = done
        events: tuple[Event, ...] = (FileProgress(file_id, name, "send", done, size, 0.0, None),)
        if first_index or record.resumes:
            chunks = -(-size // chunk_bytes)
            events = (Info(f"{name} to {self._label(record)} goes on after the lost connection, from part "
                           f"{first_index} of {chunks} ({record.percent()} %)"), *events)
        yield Actions(frames=(start,), events=events)
        index, last_progress, sent_from = 0, started, done
        rehash = hashlib.sha256()
        with open(path, "rb", buffering=FILE_READ_BUFFER) as source:
            while True:
                data = source.read(chunk_bytes)
                if not data:
                    break
                rehash.update(data)
                if index < first_index:    # resumed: sent before, read for the hash only
                    index += 1
                    continue
                ciphertext = b64url_encode(crypto.wrap_blocks(encrypt_key, data))
                chunk = frames.file_chunk(me.user_id, to, me.now_ms(), file_id, index, ciphertext)
                if self.sign_file_chunks:
                    chunk = me.sign(chunk)
                self._outbox.track(Tracked(chunk, file_id, "file", to, name))
                index += 1
                done += len(data)
                record.done = done
                now = me.now()
                events = ()
                if now - last_progress >= self.progress_interval or done >= size:
                    last_progress = now
                    events = (FileProgress.since(file_id, name, "send", done, size, started, now, base=sent_from),)
                yield Actions(frames=(chunk,), events=events)
        if self._outbox.server_acks:
            yield Actions(settle=file_id)   # every part taken before the FILE_END (file_sender.py)
        end = me.sign(frames.file_end(me.user_id, to, me.now_ms(), file_id))
        end_ref = self._outbox.track(Tracked(end, file_id, "file", to, name))
        self._recent[file_id] = (to, name, me.now())
        if done != size or rehash.hexdigest() != digest:
            self._forget(record)
            yield Actions(frames=(end,), events=(FileFailed(file_id, me.user_id, name,
                                                            "the file changed while it was being sent",
                                                            outgoing=True, label=self._users.label(to)),))
            return
        sent = FileSent(file_id, to, name, size, digest, resumes=record.resumes)
        if self._outbox.was_refused(file_id):
            self._forget(record)
            yield Actions(frames=(end,))            # already reported as not delivered
        elif self._outbox.server_acks:
            # "sent" once the server took the whole file in (the ACK covering FILE_END),
            # not when the last frame left us: a refused chunk says "not delivered" instead.
            self._sent_on_ack[end_ref] = sent
            yield Actions(frames=(end,))
        else:
            self._forget(record)                     # no ACKs to resume from: "sent" is all we know
            yield Actions(frames=(end,), events=(sent,))

    def abandon(self, file_id: str, to: str, name: str, reason: str) -> Actions:
        """Stop sending a file: FILE_END now, so the receiver drops it at once
        (it is short of bytes) instead of waiting for chunks that never come."""
        me = self._me
        end = me.sign(frames.file_end(me.user_id, to, me.now_ms(), file_id))
        self._outbox.track(Tracked(end, file_id, "file", to, name))   # a refusal of it is about the same file
        self._recent.pop(file_id, None)
        self._unconfirmed.pop(file_id, None)
        failed = FileFailed(file_id, me.user_id, name, reason, outgoing=True, label=self._users.label(to))
        return Actions(frames=(end,), events=(failed,))

    # --- what became of them --------------------------------------------------------------

    def acked(self, covered: list[Tracked]) -> list[Event]:
        """The server acknowledged these frames: the chunks a cut file resumes after;
        files whose FILE_END is among them are "sent"."""
        for tracked in covered:
            record = self._unconfirmed.get(tracked.message)
            if record is not None and tracked.frame.type == T.FILE_CHUNK:
                record.acked_through = max(record.acked_through, tracked.frame.payload["index"])
                record.retrying.discard(tracked.frame.payload["index"])
        refs = {msg_ref(tracked.frame) for tracked in covered}
        done = [self._sent_on_ack.pop(end) for end in list(self._sent_on_ack) if end in refs]
        for sent in done:
            self._unconfirmed.pop(sent.file_id, None)
        return list[Event](done)

    def part_refused(self, file_id: str, index: int) -> None:
        """The node refused part `index` for its load: it goes again (file_sender.py);
        until it is acknowledged, a resume after a cut starts no later than it."""
        record = self._unconfirmed.get(file_id)
        if record is not None:
            record.retrying.add(index)

    def settled(self, file_id: str) -> bool:
        """Has the node taken, or refused for good, every frame of this file sent so far
        (the parts it refused for its load included, once they went again)?"""
        if self._outbox.was_refused(file_id):
            return True
        record = self._unconfirmed.get(file_id)
        return not (record is not None and record.retrying) and not self._outbox.unacknowledged(file_id)

    def part_lost(self, file_id: str, code: str = "OVERLOADED") -> list[Event]:
        """A part the node refused for its load (`code`: OVERLOADED or RATE_LIMITED)
        cannot go again (the file's FILE_END went before it): the file is "not
        delivered", said once. Nothing for a file no longer waiting to be confirmed
        (cancelled, or already reported)."""
        to, name, _ = self._recent.get(file_id, ("", "", None))
        if file_id not in self._unconfirmed or not self._outbox.mark_reported(file_id):
            return []
        self.refused(file_id)
        return [NotDelivered("file", to, self._users.label(to) if to else "", name, code,
                             "the server refused a part of it for its load, and it could not go again", file_id)]

    def refused(self, file_id: str) -> None:
        """A frame of this file was refused: it is "not delivered", never "sent" (nor resumed)."""
        self._sent_on_ack = {ref: sent for ref, sent in self._sent_on_ack.items() if sent.file_id != file_id}
        self._unconfirmed.pop(file_id, None)

    def restamped(self, old_ref: str, new_ref: str) -> None:
        """A frame went again under a new msg_ref (ERROR RESEND): its ACK is awaited instead."""
        waiting = self._sent_on_ack.pop(old_ref, None)
        if waiting is not None:
            self._sent_on_ack[new_ref] = waiting

    def connection_lost(self, *, resumable: bool) -> list[Event]:
        """The connection ended: every file not confirmed whole yet (being sent, or its
        FILE_END not yet acknowledged) is cut. With `resumable` (the driver reconnects)
        it waits to go on (`take_cut`) unless it was cut too often; else it failed. One
        line each, either way."""
        self._sent_on_ack.clear()     # ACKs of the lost connection never come
        now, events = self._me.now(), list[Event]()
        for record in list(self._unconfirmed.values()):
            record.cuts += 1
            record.cut_at = now
            reason = resume_refusal(record, reconnect=resumable, now=now)
            if reason:
                events.append(self._cut_failed(record, reason))
            else:
                events.append(Info(f"{record.name} to {self._label(record)}: {cut_summary(record)}; it goes on "
                                   "after the reconnect"))
        return events

    def take_cut(self) -> tuple[list[UnconfirmedFile], list[Event]]:
        """After a reconnect: the cut files to resume now (`resume`), and a FileFailed
        for each one that waited too long."""
        now = self._me.now()
        resumable, events = [], list[Event]()
        for record in [r for r in self._unconfirmed.values() if r.cut_at is not None]:
            reason = resume_refusal(record, reconnect=True, now=now)
            if reason:
                events.append(self._cut_failed(record, reason))
            else:
                resumable.append(record)
        return resumable, events

    def give_up_cut(self, record: UnconfirmedFile, why: str) -> FileFailed:
        """A cut file that does not go on after all (`why` not)."""
        return self._cut_failed(record, why)

    def give_up_all_cut(self, why: str) -> list[Event]:
        return [self._cut_failed(record, why) for record in list(self._unconfirmed.values())
                if record.cut_at is not None]

    def forget(self, file_id: str) -> None:
        """The driver stopped this file itself (/cancel, /quit): never resumed."""
        self._unconfirmed.pop(file_id, None)

    def _cut_failed(self, record: UnconfirmedFile, why: str) -> FileFailed:
        self._forget(record)
        return FileFailed(record.file_id, self._me.user_id, record.name, failure_reason(record, why),
                          outgoing=True, label=self._label(record))

    def _forget(self, record: UnconfirmedFile) -> None:
        self._unconfirmed.pop(record.file_id, None)

    def _label(self, record: UnconfirmedFile) -> str:
        return "the public channel" if record.to == PUBLIC_CHANNEL else self._users.label(record.to)

    def lost_downstream(self, detail: str, code: str) -> list[Event]:
        """An ERROR that names no frame but says a file frame was not delivered (our
        node, giving up on a backlog for a server that stayed away: those frames had
        been acknowledged): every file we are sending, or sent in the last
        RECENT_FILE_SECONDS, to a user of another server is reported once, as one that
        may not have arrived."""
        if not re.match(r"FILE_(START|CHUNK|END)\b.*not delivered", detail):
            return []
        now, events = self._me.now(), list[Event]()
        for file_id, (to, name, ended) in list(self._recent.items()):
            home = self._users.entry(to).server_id
            if (ended is not None and now - ended > RECENT_FILE_SECONDS) or (home and home == self._users.server_id):
                continue
            if self._outbox.mark_reported(file_id):
                self.refused(file_id)
                events.append(NotDelivered("file", to, self._users.label(to), name, code,
                                           f"it may not have arrived: the server says {detail}", file_id))
        return events


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(FILE_READ_BUFFER):
            digest.update(block)
    return digest.hexdigest()
