"""Files coming to us (§7.4): the offer, the chunks, the check, the name.

A FILE_START's manifest is checked on the one verify path (verify.py) and opens a
private temporary file (downloads.py); chunks are decrypted into it; at FILE_END
the size and SHA-256 are checked before the file gets a name, then (up to
`auto_accept_bytes`, else after /accept) it is placed in the downloads directory.
A failure at any step deletes what came and says why, once (`FileFailed`). Bounds:
MAX_ACTIVE_DOWNLOADS at once, `max_file_bytes` each, `download_idle_timeout` of
silence. A download cut by a lost connection waits RESUME_GRACE seconds after the
reconnect for the rest (a server may still carry it) before it is failed.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from socp.protocol import crypto, frames
from socp.protocol.encoding import b64url_decode
from socp.protocol.envelope import Envelope
from socp.protocol.errors import SocpError
from socp.protocol.ids import PUBLIC_CHANNEL

from . import verify
from .channel_keys import ChannelKeyRing
from .chat_messages import open_sealed
from .commands import CommandError
from .display import human_bytes
from .downloads import IncomingFile, TransferFailed
from .events import Channel, Event, FileFailed, FileOffered, FileProgress, FileReceived, Info, Transfer
from .file_resume import Manifest, join_refusal
from .keyring import TrustedKeys
from .roster import Directory
from .user_identity import Identity

MAX_ACTIVE_DOWNLOADS = 16
# A download whose sender sends nothing for this long is dropped (its temporary
# file deleted): each holds one of MAX_ACTIVE_DOWNLOADS slots and up to
# max_file_bytes of disk. Our node forgets an idle upload after 120 s too.
DOWNLOAD_IDLE_TIMEOUT = 120.0
MAX_FAILED_IDS = 1024
# A download cut by a lost connection goes on if its next chunk comes within this
# many seconds (the servers may still carry the rest: a link's backlog is re-sent).
RESUME_GRACE = 30.0
DEFAULT_MAX_FILE_BYTES = 4 * 1024**3
# Incoming files up to this size are saved by themselves; larger ones wait for
# /accept (home config `files.auto_accept`, docs/chat.md).
DEFAULT_AUTO_ACCEPT_BYTES = 16 * 1024**2


class IncomingFiles:
    def __init__(self, me: Identity, users: Directory, keys: TrustedKeys, channel_keys: ChannelKeyRing, *,
                 downloads_dir: Path, max_file_bytes: int, auto_accept_bytes: int, progress_interval: float,
                 download_idle_timeout: float) -> None:
        self._me = me
        self._users = users
        self._keys = keys
        self._channel_keys = channel_keys
        self.downloads_dir = downloads_dir
        self.max_file_bytes = max_file_bytes
        self.auto_accept_bytes = auto_accept_bytes
        self.progress_interval = progress_interval
        self.download_idle_timeout = download_idle_timeout
        self.downloads: dict[str, IncomingFile] = {}
        self._failed_files: OrderedDict[str, None] = OrderedDict()
        self._received: OrderedDict[str, None] = OrderedDict()   # file ids saved whole (a resume of one is a copy)
        self._joined: dict[str, str] = {}     # a resumed transfer's file id -> the download it goes on with

    # --- the connection -----------------------------------------------------------------

    def connection_lost(self, *, resumable: bool) -> list[Event]:
        """Downloads in progress wait for the rest after a reconnect (`resumable`), else
        they are dropped; each is reported either way."""
        events: list[Event] = []
        for incoming in [i for i in self.downloads.values() if not i.complete]:
            shown = f"{human_bytes(incoming.done)} of {human_bytes(incoming.size)}"
            sender = self._users.label(incoming.sender)
            if resumable:
                incoming.interrupted, incoming.last_activity = True, self._me.now()
                events.append(Info(f"the transfer of {incoming.name} from {sender} was cut at "
                                   f"{shown} by the lost connection; it goes on if the rest comes within "
                                   f"{RESUME_GRACE:g} s of reconnecting, else it is dropped and you are told"))
                continue
            events += self._abort(incoming, f"interrupted at {shown}: the connection to the server was lost and "
                                            f"the partial file was deleted; ask {sender} to send it again")
        return events

    def reconnected(self) -> None:
        """A new connection is up: the downloads waiting to resume get their grace from now."""
        now = self._me.now()
        for incoming in self.downloads.values():
            if incoming.interrupted:
                incoming.last_activity = now

    def reset(self) -> None:
        """A new connection: downloads neither waiting to resume nor complete are gone."""
        for incoming in [i for i in self.downloads.values() if not i.interrupted and not i.complete]:
            incoming.abort()
            del self.downloads[incoming.file_id]

    def close(self) -> None:
        """Delete the temporary files of unfinished downloads."""
        for incoming in self.downloads.values():
            incoming.abort()
        self.downloads.clear()

    # --- frames -------------------------------------------------------------------------

    def on_file_start(self, envelope: Envelope) -> list[Event]:
        payload = envelope.payload
        # A server that re-wraps the frame (G45: its own `from` and `ts`, payload.sender
        # added) breaks the manifest signature, which covers the sender's `ts`; with no
        # payload.sender, the sender's key says who sent it.
        rewrapped = envelope.from_ in self._users.server_ids
        sender = frames.deliver_sender(envelope, self._users.server_ids) or self._keys.owner_of_key(
            payload.get("sender_pub"), (self._me.user_id, self._me.fingerprint))
        file_id, name, size = payload["file_id"], payload["name"], payload["size"]
        channel: Channel = payload.get("mode") or ("public" if envelope.to == PUBLIC_CHANNEL else "dm")
        if sender == self._me.user_id:
            return []
        if "sha256" in payload and not isinstance(payload["sha256"], str):
            return self._fail(file_id, sender, name, "its announced SHA-256 is not a text")
        # No sha256 at all (G17's client sends none): accepted, its size checked, and
        # shown as not verified by hash (docs/chat.md, "Files without a SHA-256").
        digest = payload.get("sha256") or ""
        if file_id in self.downloads or file_id in self._failed_files:
            return self._fail(file_id, sender, name, "a transfer with the same id is already under way or failed")
        if size > self.max_file_bytes:
            return self._fail(file_id, sender, name, f"it is {human_bytes(size)}, larger than the most you take "
                                                    f"({human_bytes(self.max_file_bytes)})")
        key_text = verify.claimed_key(payload, self._keys.get(sender))
        verified, events = False, list[Event]()
        if key_text and isinstance(payload.get("content_sig"), str):
            try:
                key = crypto.decode_public_key(key_text)
                b64url_decode(payload["content_sig"])
            except SocpError:
                return self._fail(file_id, sender, name, "its signature cannot be read")
            if verify.verified_claim(key, payload["content_sig"],
                                     verify.manifest_claims(payload, sender, envelope.to, envelope.ts)):
                verified, events = self._keys.check(sender, key_text)
            elif not rewrapped:
                return self._fail(file_id, sender, name, "the sender's signature over the file's name, size and "
                                                        "SHA-256 does not verify (forged or changed on the way)")
            # else: the server changed the envelope fields the signature covers; the file
            # is taken as an unsigned one (a server could as well have dropped the
            # signature), and its SHA-256 is still checked.
        resumes = payload.get("resumes")
        if isinstance(resumes, str) and resumes != file_id:
            joined = self._join(resumes, file_id, Manifest(sender, name, size, digest.lower(), channel), verified)
            if joined is not None:
                return events + joined
        if len(self.downloads) >= MAX_ACTIVE_DOWNLOADS:
            return self._fail(file_id, sender, name, f"{MAX_ACTIVE_DOWNLOADS} files are already coming in; "
                                                    "ask for it again later")
        creator_fp = crypto.fingerprint(key_text) if key_text else ""
        try:
            incoming = IncomingFile.open(
                self.downloads_dir,
                file_id=file_id,
                sender=sender,
                name=name,
                size=size,
                sha256=digest,
                channel=channel,
                verified=verified,
                creator_fingerprint=creator_fp,
                now=self._me.now(),
            )
        except OSError as exc:
            return self._fail(file_id, sender, name, f"cannot write to the downloads directory: {exc.strerror}")
        incoming.accepted = size <= self.auto_accept_bytes
        incoming.resumes = resumes if isinstance(resumes, str) else ""
        self.downloads[file_id] = incoming
        offer = FileOffered(file_id, sender, self._users.label(sender), name, size, channel, incoming.accepted,
                            self.auto_accept_bytes)
        return events + [offer, FileProgress(file_id, name, "receive", 0, size, 0.0, None)]

    def _join(self, first_id: str, file_id: str, resumed: Manifest, verified: bool) -> list[Event] | None:
        """A FILE_START that goes on with transfer `first_id` after the sender's
        connection was lost (file_resume.py): the events, or None when that transfer
        never reached us (then it is taken as a new one, which must start at part 0)."""
        sender_label = self._users.label(resumed.sender)
        if first_id in self._received:
            self._joined[file_id] = first_id   # it came whole already: the rest is a copy, ignored
            return []
        if first_id in self._failed_files:
            return self._fail(file_id, resumed.sender, resumed.name,
                              f"it goes on with a transfer of it that already failed here; ask {sender_label} "
                              "to send it again")
        earlier = self.downloads.get(first_id)
        if earlier is None:
            return None
        refusal = join_refusal(Manifest(earlier.sender, earlier.name, earlier.size, earlier.sha256, earlier.channel),
                               resumed)
        if refusal:
            return self._fail(file_id, resumed.sender, resumed.name,
                              f"it says it goes on with an earlier transfer of {earlier.name}, but {refusal}")
        self._joined[file_id] = first_id
        if earlier.complete:
            return []
        earlier.joined, earlier.interrupted = True, False
        earlier.verified = earlier.verified and verified
        earlier.last_activity = self._me.now()
        return [Info(f"{earlier.name} from {sender_label} goes on after {sender_label}'s connection was lost "
                     f"({human_bytes(earlier.done)} of {human_bytes(earlier.size)} here already)")]

    def _incoming(self, file_id: str) -> IncomingFile | None:
        """The download a file id belongs to: its own, or the one a resumed transfer joined."""
        return self.downloads.get(file_id) or self.downloads.get(self._joined.get(file_id, ""))

    def on_file_chunk(self, envelope: Envelope) -> list[Event]:
        payload = envelope.payload
        incoming = self._incoming(payload["file_id"])
        if incoming is None or incoming.complete:
            return []  # unknown or already failed: reported once, at the failure
        if payload["index"] > incoming.next_index and incoming.resumes and not incoming.joined:
            return self._abort(incoming, self._resume_gap(incoming, payload["index"]))
        if incoming.channel == "public":
            key = self._channel_keys.peer(incoming.creator_fingerprint) if incoming.creator_fingerprint else None
        else:
            key = self._me.user_key
        plaintext, _ = open_sealed(payload["ciphertext"], key, allow_plaintext=False)
        try:
            if plaintext is None:
                raise TransferFailed(f"part {payload['index']} could not be decrypted with your key")
            if not incoming.write(payload["index"], plaintext):
                return []     # a part we have, or one held until a missing part comes
        except TransferFailed as exc:
            return self._abort(incoming, self._interrupted_reason(incoming, exc.detail))
        except OSError as exc:
            return self._abort(incoming, f"cannot write the file: {exc.strerror}")
        now = incoming.last_activity = self._me.now()
        if incoming.interrupted:
            incoming.interrupted = False
            return [
                Info(f"the transfer of {incoming.name} from {self._users.label(incoming.sender)} goes on after "
                     "the reconnect"),
                self._progress(incoming, now),
            ]
        if now - incoming.last_progress < self.progress_interval and incoming.done < incoming.size:
            return []
        incoming.last_progress = now
        return [self._progress(incoming, now)]

    def on_file_end(self, envelope: Envelope) -> list[Event]:
        incoming = self._incoming(envelope.payload["file_id"])
        if incoming is None or incoming.complete:
            return []
        if incoming.joined and incoming.missing_part is not None:
            return self._abort(incoming, self._resume_gap(incoming, min(incoming.held)))
        try:
            incoming.check()
        except TransferFailed as exc:
            return self._abort(incoming, self._interrupted_reason(incoming, exc.detail))
        except OSError as exc:
            return self._abort(incoming, f"cannot save the file: {exc.strerror}")
        if not incoming.accepted:
            return [Info(f"{incoming.name} ({human_bytes(incoming.size)}) from {self._users.label(incoming.sender)} "
                         f"arrived whole and checked; /accept {incoming.name} saves it, /reject "
                         f"{incoming.name} deletes it")]
        return self._place(incoming)

    # --- the user's say -----------------------------------------------------------------

    def accept(self, wanted: str) -> list[Event]:
        """/accept: save an offered file now (it is complete) or once it is."""
        incoming = self._offered(wanted)
        if incoming.accepted:
            return [Info(f"{incoming.name} is accepted already; it is saved once complete")]
        incoming.accepted = True
        if incoming.complete:
            return self._place(incoming)
        return [Info(f"accepted {incoming.name} from {self._users.label(incoming.sender)}: saved once complete "
                     f"({human_bytes(incoming.done)} of {human_bytes(incoming.size)} so far)")]

    def reject(self, wanted: str) -> list[Event]:
        """/reject: drop an incoming file, what came of it deleted. The sender is not
        told (SOCP has no such frame): it sends on, and we ignore the rest."""
        incoming = self._offered(wanted)
        return self._abort(incoming, "you refused it (/reject); what had arrived was deleted")

    def transfers(self) -> tuple[Transfer, ...]:
        def state(incoming: IncomingFile) -> str:
            if incoming.complete:
                return "complete, waiting for /accept"
            if incoming.interrupted:
                return "cut by the lost connection, waiting for the rest"
            return "receiving" if incoming.accepted else "receiving, waiting for /accept"

        return tuple(Transfer(i.file_id, i.name, "receive", self._users.label(i.sender), i.done, i.size, state(i))
                     for i in self.downloads.values())

    def expire_idle(self) -> list[Event]:
        """Drop the downloads whose sender has sent nothing for `download_idle_timeout`
        seconds (RESUME_GRACE after a lost connection; the driver calls this every few
        seconds); one FileFailed each."""
        now = self._me.now()
        events: list[Event] = []
        for incoming in [i for i in self.downloads.values() if not i.complete]:
            if incoming.interrupted and now - incoming.last_activity > RESUME_GRACE:
                events += self._abort(
                    incoming,
                    f"interrupted at {human_bytes(incoming.done)} of "
                    f"{human_bytes(incoming.size)}: the connection to the server was "
                    f"lost and the rest did not come within {RESUME_GRACE:g} s of "
                    "reconnecting; the partial file was deleted; ask "
                    f"{self._users.label(incoming.sender)} to send it again",
                )
        limit = self.download_idle_timeout
        for incoming in [i for i in self.downloads.values()
                         if not i.complete and now - i.last_activity > limit]:
            idle, sender = now - incoming.last_activity, self._users.label(incoming.sender)
            events += self._abort(
                incoming,
                f"{sender} went silent at {human_bytes(incoming.done)} of {human_bytes(incoming.size)} (nothing "
                f"for {idle:.0f} s, the limit is {limit:g} s): {sender}'s connection, or a server on the way, "
                f"was probably lost; the partial file was deleted; ask {sender} to send it again",
            )
        return events

    # --- inside -------------------------------------------------------------------------

    def _progress(self, incoming: IncomingFile, now: float) -> FileProgress:
        return FileProgress.since(incoming.file_id, incoming.name, "receive", incoming.done, incoming.size,
                                  incoming.started, now)

    def _place(self, incoming: IncomingFile) -> list[Event]:
        """A checked file gets its name in the downloads directory."""
        try:
            final = incoming.place(self.downloads_dir)
        except TransferFailed as exc:
            return self._abort(incoming, exc.detail)
        except OSError as exc:
            return self._abort(incoming, f"cannot save the file: {exc.strerror}")
        self._forget(incoming)
        self._received[incoming.file_id] = None
        while len(self._received) > MAX_FAILED_IDS:
            self._received.popitem(last=False)
        return [
            FileReceived(
                incoming.file_id,
                incoming.sender,
                self._users.label(incoming.sender),
                incoming.name,
                str(final),
                incoming.size,
                incoming.sha256,
                incoming.channel,  # type: ignore[arg-type]  # IncomingFile keeps it as str; always "dm" or "public"
                incoming.verified,
                hashed=bool(incoming.sha256),
            )
        ]

    def _offered(self, wanted: str) -> IncomingFile:
        """The incoming file a /accept or /reject names (its name, or an id prefix)."""
        found = [i for i in self.downloads.values()
                 if wanted in (i.name, i.file_id) or (len(wanted) >= 4 and i.file_id.startswith(wanted))]
        if not found:
            raise CommandError(f"no incoming file called {wanted!r} (/files shows them)")
        if len(found) > 1:
            raise CommandError(f"several incoming files match {wanted!r}; give the file id: "
                               + ", ".join(i.file_id for i in found))
        return found[0]

    def _interrupted_reason(self, incoming: IncomingFile, detail: str) -> str:
        if not incoming.interrupted:
            return detail
        return (
            f"interrupted at {human_bytes(incoming.done)} of {human_bytes(incoming.size)}: part of it was lost "
            f"while the connection was down ({detail}); the partial file was deleted; ask "
            f"{self._users.label(incoming.sender)} to send it again"
        )

    def _resume_gap(self, incoming: IncomingFile, index: int) -> str:
        sender = self._users.label(incoming.sender)
        if incoming.joined:
            lost = (f"it went on after {sender}'s connection was lost, but part {incoming.next_index} never "
                    f"came (lost on the way; part {index} and later ones did)")
        else:
            lost = f"it goes on (from part {index}) with a transfer whose start never reached you"
        return f"{lost}; the partial file was deleted; ask {sender} to send it again"

    def _abort(self, incoming: IncomingFile, reason: str) -> list[Event]:
        incoming.abort()
        self._forget(incoming)
        return self._fail(incoming.file_id, incoming.sender, incoming.name, reason)

    def _forget(self, incoming: IncomingFile) -> None:
        self.downloads.pop(incoming.file_id, None)
        self._joined = {later: first for later, first in self._joined.items() if first != incoming.file_id}

    def _fail(self, file_id: str, sender: str, name: str, reason: str) -> list[Event]:
        self._failed_files[file_id] = None
        while len(self._failed_files) > MAX_FAILED_IDS:
            self._failed_files.popitem(last=False)
        return [FileFailed(file_id, sender, name, reason, label=self._users.label(sender) if sender else "")]
