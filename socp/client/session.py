"""The client's protocol core: no sockets, no asyncio (STYLE §1).

`ClientSession` holds one user's identity, keys, directory and trust state. Local
commands become `Actions` (frames to send, events to show); each incoming frame
becomes a list of events. Drivers (`connection.py`) move the frames and render the
events; tests pair sessions in memory through a fake node.

Rules implemented here:
  §2 / project decision   texts over 446 UTF-8 bytes travel as several frames,
                          each with its own OAEP block and content_sig, joined by
                          `payload.part` on our side
  §7.2, §9                DMs: OAEP to the recipient, sign_dm; verify every form
  §7.3 project decision   public channel sender keys, key shares, peer forms
  §7.4                    files, streamed both ways, verified before placing
  TOFU                    each user's key fingerprint pinned on first sight
  §10 project frames      LOGIN_REGISTER (our encrypted key for password login)
                          and its ACK / ERROR (docs/store-and-login.md)
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from socp.protocol import acks, crypto, frames, signing
from socp.protocol import login as login_values
from socp.protocol.encoding import b64url_decode, b64url_encode, canonical_json, canonical_json_ascii
from socp.protocol.envelope import Envelope, load_json, parse_obj
from socp.protocol.errors import BadKey, InvalidSignature, MalformedFrame, SocpError, UserNotFound
from socp.protocol.frame_types import KNOWN_TYPES
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import BROADCAST, PUBLIC_CHANNEL, is_peer_id, is_uuid4, new_id
from socp.protocol.limits import OAEP_BLOCK_BYTES, OAEP_MAX_PLAINTEXT
from socp.protocol.text import split_utf8

from . import dialects
from .channel_keys import ChannelKeyRing
from .commands import CommandError
from .display import human_bytes
from .downloads import IncomingFile, TransferFailed
from .events import (
    Channel,
    ChannelKeyReceived,
    ContentForm,
    ErrorReceived,
    Event,
    FileFailed,
    FileOffered,
    FileProgress,
    FileReceived,
    FileSent,
    Info,
    KeyChanged,
    ListResult,
    LoginRegistered,
    LoginRegisterFailed,
    MessageReceived,
    MessageRejected,
    MessageSent,
    NotDelivered,
    PresenceChanged,
    Restamped,
    Transfer,
    UserEntry,
    WhoisResult,
)
from .outbox import Outbox, Refusal, Tracked
from .trust import PinStore

CLIENT_NAME = "socp-cli"
KEY_SHARES_PER_FRAME = 32          # ~4 KiB each: keeps a share frame far below 1 MiB
MAX_PENDING_SPLIT_MESSAGES = 128   # partial long texts kept while their parts arrive
MAX_ACTIVE_DOWNLOADS = 16
# A download whose sender sends nothing for this long is dropped (its temporary
# file deleted): each holds one of MAX_ACTIVE_DOWNLOADS slots and up to
# max_file_bytes of disk. Our node forgets an idle upload after 120 s too.
DOWNLOAD_IDLE_TIMEOUT = 120.0
MAX_FAILED_IDS = 1024
# A download cut by a lost connection goes on if its next chunk comes within this
# many seconds (the servers may still carry the rest: a link's backlog is re-sent).
RESUME_GRACE = 30.0
# The same server ERROR (code and detail) again within this many seconds is counted,
# not shown: a node that gives up on a backlog answers once per frame.
REPEATED_ERROR_WINDOW = 10.0
# Files we sent within this many seconds may still be lost downstream (a server's
# backlog given up after its link timeout), and are reported if that is said.
RECENT_FILE_SECONDS = 120.0
MAX_RECENT_FILES = 64
MAX_REMEMBERED_NAMES = 4096  # display names kept for users no longer listed
MAX_SEEN_DELIVERIES = 4096   # (sender, ciphertext digest) of messages shown, to drop re-sent copies
DEFAULT_MAX_FILE_BYTES = 4 * 1024**3
# Incoming files up to this size are saved by themselves; larger ones wait for
# /accept (home config `files.auto_accept`, docs/chat.md).
DEFAULT_AUTO_ACCEPT_BYTES = 16 * 1024**2
LOGIN_REGISTER_ACK = "LOGIN_REGISTER"   # ACK.msg_ref answering a LOGIN_REGISTER
# G17 keeps users' keys only for those who sent its REGISTER {pubkey, privkey_store,
# pake_password} (answered ACK REGISTER_OK), and answers PUBKEY_REQUEST from that:
# on a server that greeted us with its CLIENT_WELCOME, our login is stored that way,
# which is also how the other users there can get our key.
G17_REGISTER = "REGISTER"
G17_REGISTER_ACK = "REGISTER_OK"
# ERROR codes the node answers a LOGIN_REGISTER with (docs/store-and-login.md), plus
# what a server that does not know the frame may say. ERROR carries no reference to
# the frame it answers; while a registration waits, these codes are taken as its answer
# (the client sends nothing else that the node answers with them).
LOGIN_REGISTER_REFUSALS = frozenset({"FORBIDDEN", "MALFORMED", "UNKNOWN_TYPE", "REGISTER_FAIL", "BAD_KEY"})
FILE_READ_BUFFER = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Actions:
    """What a local command produced: frames for the server, events for the user."""

    frames: tuple[Envelope, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    user_id: str
    server_id: str = ""
    display_name: str = ""
    pubkey: str = ""            # normalised base64url DER SPKI, "" if unknown


@dataclass(slots=True)
class _SplitMessage:
    """Parts of one long text (payload.part) collected until all have arrived."""

    count: int
    ts: int
    parts: dict[int, bytes] = field(default_factory=dict)
    forms: set[str] = field(default_factory=set)
    trusted: bool = True


def manifest_signed_bytes(payload: dict[str, Any], sender: str, to: str, ts: int) -> bytes:
    """Project extension: FILE_START may carry `content_sig` (and `sender_pub`) over
    the canonical JSON of the manifest and the envelope fields, so the receiver can
    tie the file's SHA-256, and with it every chunk, to the sender's key. Peers
    ignore the extra fields."""
    return dialects.manifest_forms(payload, sender, to, ts)[0]


class ClientSession:
    def __init__(
        self,
        user_id: str,
        user_key: crypto.PrivateKey,
        *,
        display_name: str = "",
        pins: PinStore | None = None,
        channel_keys: ChannelKeyRing | None = None,
        downloads_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
        server_key: crypto.PublicKey | None = None,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        progress_interval: float = 0.5,
        sign_file_chunks: bool = True,
        download_idle_timeout: float = DOWNLOAD_IDLE_TIMEOUT,
        auto_accept_bytes: int = DEFAULT_AUTO_ACCEPT_BYTES,
        chunk_blocks: int = 1,
    ) -> None:
        if not is_uuid4(user_id):
            raise MalformedFrame("a user id must be a UUID v4")
        self.user_id = user_id
        self.user_key = user_key
        self.display_name = display_name
        self.pubkey = crypto.encode_public_key(user_key)
        self.fingerprint = crypto.fingerprint(user_key.public_key())
        self.pins = pins if pins is not None else PinStore()
        self.channel_keys = channel_keys if channel_keys is not None else ChannelKeyRing(crypto.generate_private_key)
        self.downloads_dir = Path(downloads_dir) if downloads_dir is not None else Path("downloads")
        self.server_key = server_key
        self.max_file_bytes = max_file_bytes
        self.progress_interval = progress_interval
        self.sign_file_chunks = sign_file_chunks
        self.download_idle_timeout = download_idle_timeout
        self.auto_accept_bytes = auto_accept_bytes
        self.chunk_blocks = chunk_blocks        # OAEP blocks per FILE_CHUNK (docs/chat.md, "Files")
        self._clock = clock

        self.directory: dict[str, DirectoryEntry] = {}   # the last LIST_RESPONSE (plus presence gossip)
        self._names: OrderedDict[str, str] = OrderedDict()   # user id -> last display name seen (label)
        self.directory_loaded = False
        # Join and leave lines only once connected: the hello's catch-up of who is
        # online is the starting point, not news (the driver sets it at Ready).
        self.presence_news = False
        self.directory_stale = True                      # membership changed since the last list
        self.server_ids: set[str] = set()
        self.server_id = ""                              # our own server: the one answering our lists
        self.login_register_pending = False              # a LOGIN_REGISTER awaits its ACK or ERROR
        # Peer servers' dialects (issue #14): which list request and key look-up this
        # server answers (None: not found yet), the requests it said it does not know,
        # and the requests sent while finding out (their UNKNOWN_TYPE is expected).
        self.list_dialect: str | None = None
        self.key_lookup: str | None = None
        self.unsupported: set[str] = set()
        self._probes: list[str] = []
        self.hello_signs_envelope = False                # G101: sign the hello's whole envelope
        self.lookup_answers = 0                          # key look-ups answered or refused, ever
        self.registers_g17_style = False                 # the server greeted us with CLIENT_WELCOME (G17)
        self._keys: dict[str, str] = {}                  # user id -> trusted key (normalised)
        self._changed_keys: dict[str, str] = {}          # user id -> a key that differs from the pin
        self._warned: dict[str, str] = {}                # user id -> new fingerprint already reported
        # FIFO of (request type, was it the user's?) for each list request sent.
        self._list_requests: list[tuple[str, bool]] = []
        self._split: OrderedDict[tuple[str, str, str], _SplitMessage] = OrderedDict()
        self._downloads: dict[str, IncomingFile] = {}
        self._failed_files: OrderedDict[str, None] = OrderedDict()
        # Frames we sent and what became of them (ACK, ERROR naming them: outbox.py).
        self.outbox = Outbox()
        self._sent_on_ack: dict[str, FileSent] = {}      # FILE_END msg_ref -> "sent", shown on its ACK
        self._unconfirmed: list[Tracked] = []            # messages to send again after a reconnect
        self._last_error: tuple[str, str, float, int] | None = None   # (code, detail, shown at, repeats since)
        # Files we sent: file id -> (to, name, when FILE_END went, None while sending).
        self._outgoing: OrderedDict[str, tuple[str, str, float | None]] = OrderedDict()
        # Deliveries already shown, by (sender, ciphertext digest): a message sent again
        # after a reconnect or a RESEND keeps its ciphertext (README, "recovery").
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()   # -> the ts first shown

    # --- helpers -------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _sign(self, envelope: Envelope) -> Envelope:
        # §5: every frame carrying user content is signed; we sign all of ours.
        return signing.sign_envelope(self.user_key, envelope)

    def label(self, user_id: str) -> str:
        """A user's display name: from the directory, else the last one it had (a user
        who left is still named in the lines about it), else its id."""
        entry = self.directory.get(user_id)
        if entry and entry.display_name:
            self._names[user_id] = entry.display_name
            self._names.move_to_end(user_id)
            while len(self._names) > MAX_REMEMBERED_NAMES:
                self._names.popitem(last=False)
            return entry.display_name
        return self._names.get(user_id, user_id)

    def connection_lost(self, *, resumable: bool = False) -> list[Event]:
        """The connection ended: say what it interrupted (issue #16: nothing vanishes
        silently). Downloads in progress wait RESUME_GRACE seconds for the rest when
        the driver reconnects (`resumable`: a server may still carry it, and a gap
        fails the file at once), else they are dropped and reported; files whose
        "sent" waited for the server's ACK are reported as unconfirmed; messages the
        server had not acknowledged are kept to send again after a reconnect
        (`take_unconfirmed`), byte for byte: a server that has them answers REPLAY,
        and receivers drop a copy they already showed."""
        events: list[Event] = []
        for incoming in [i for i in self._downloads.values() if not i.complete]:
            shown = f"{human_bytes(incoming.done)} of {human_bytes(incoming.size)}"
            if resumable:
                incoming.interrupted, incoming.last_activity = True, self._clock()
                events.append(Info(f"the transfer of {incoming.name} from {self.label(incoming.sender)} was cut at "
                                   f"{shown} by the lost connection; it goes on if the rest comes within "
                                   f"{RESUME_GRACE:g} s of reconnecting, else it is dropped and you are told"))
                continue
            events += self._abort(incoming, f"interrupted at {shown}: the connection to the server was lost and "
                                            f"the partial file was deleted; ask {self.label(incoming.sender)} to "
                                            "send it again")
        unconfirmed = self.outbox.connection_reset()
        for sent in self._sent_on_ack.values():
            events.append(FileFailed(sent.file_id, self.user_id, sent.name,
                                     "the connection was lost before the server confirmed the whole file, so it "
                                     "may not have arrived; send it again with /file", outgoing=True))
        self._sent_on_ack.clear()
        if self.outbox.server_acks:
            self._unconfirmed = [t for t in unconfirmed if t.kind in ("dm", "public")]
        return events

    def reconnected(self) -> None:
        """A new connection is up: the downloads waiting to resume get their grace from now."""
        now = self._clock()
        for incoming in self._downloads.values():
            if incoming.interrupted:
                incoming.last_activity = now

    def take_unconfirmed(self) -> tuple[Envelope, ...]:
        """Messages sent on the lost connection and never acknowledged nor refused:
        the same frames, to send again on the new one."""
        out, self._unconfirmed = self._unconfirmed, []
        for tracked in out:
            self.outbox.track(tracked)
        return tuple(tracked.frame for tracked in out)

    def connection_reset(self) -> None:
        """A new connection: re-share our channel key, forget half-received data.
        The dialects found stay: it is the same server."""
        self.channel_keys.shared_with.clear()
        self._list_requests.clear()
        self._probes.clear()
        self.login_register_pending = False
        self.directory_stale = True
        for incoming in [i for i in self._downloads.values() if not i.interrupted and not i.complete]:
            incoming.abort()
            del self._downloads[incoming.file_id]
        self._split.clear()

    # --- directory and user resolution ------------------------------------------------

    def resolve(self, target: str) -> str:
        """A user id from an id, a unique id prefix or a display name."""
        target = target.strip()
        if target == self.user_id or target in self.directory or target in self._keys:
            return target
        named = [uid for uid, entry in self.directory.items() if entry.display_name == target]
        if not named:
            folded = target.casefold()
            named = [uid for uid, entry in self.directory.items() if entry.display_name.casefold() == folded]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise CommandError(f"several users are called {target!r}; use an id: {', '.join(sorted(named))}")
        prefixed = sorted({uid for uid in (*self.directory, *self._keys) if uid.startswith(target)})
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            raise CommandError(f"{target!r} matches several users: {', '.join(prefixed)}")
        if is_uuid4(target):
            return target
        raise UserNotFound(f"no user {target!r} in the last /list")

    def knows_key(self, target: str) -> bool:
        """True when `target` resolves to a user whose key we have (no /list needed)."""
        try:
            user_id = self.resolve(target)
        except SocpError:
            return False
        return user_id in self._keys or user_id in self._changed_keys

    def _recipient_key(self, user_id: str) -> crypto.PublicKey:
        if user_id in self._changed_keys:
            raise CommandError(
                f"the key of {self.label(user_id)} changed (now {crypto.fingerprint(self._changed_keys[user_id])}); "
                f"check it with /whois and accept it with /trust {user_id}"
            )
        key = self._keys.get(user_id)
        if key is None:
            raise UserNotFound(f"no key known for {user_id}; is the user online? (/list)")
        return crypto.decode_public_key(key)

    def _check_pin(self, user_id: str, key_text: str) -> tuple[bool, list[Event]]:
        """TOFU: pin a first-seen key; report a different one once; say if trusted."""
        fp = crypto.fingerprint(key_text)
        pinned = self.pins.get(user_id)
        if pinned is None:
            self.pins.pin(user_id, fp)
            pinned = fp
        if pinned == fp:
            self._keys[user_id] = crypto.normalise_public_key(key_text)
            self._changed_keys.pop(user_id, None)
            return True, []
        self._changed_keys[user_id] = crypto.normalise_public_key(key_text)
        if self._warned.get(user_id) == fp:
            return False, []
        self._warned[user_id] = fp
        return False, [KeyChanged(user=user_id, label=self.label(user_id), old_fingerprint=pinned, new_fingerprint=fp)]

    # --- outgoing frames ---------------------------------------------------------------

    def hello(self, server_id: str | None = None) -> Envelope:
        """§7.1, interop table: signed over the canonical payload, `to` = "*". A server
        that checks the signature over the envelope minus `sig` (G101) refuses that;
        after such a refusal `hello_signs_envelope` is set and the hello is signed so."""
        hello = frames.user_hello(self.user_id, server_id, self.now_ms(), self.pubkey,
                                  client=CLIENT_NAME, display_name=self.display_name or None)
        if not self.hello_signs_envelope:
            return self._sign(hello)
        whole = hello.to_dict()
        del whole["sig"]
        return hello.with_sig(b64url_encode(crypto.sign_pss(self.user_key, canonical_json(whole))))

    def list_request(self, *, requested: bool = True, dialect: str | None = None) -> Envelope | None:
        """The list request this server answers (LIST_REQUEST until we know better;
        `dialect` to try another). None when it has none (G56): the presence cache
        is the list then, and `presence_list` shows it."""
        kind = dialect or self.list_dialect or dialects.LIST_DIALECTS[0]
        if kind == dialects.PRESENCE_ONLY:
            return None
        if self.list_dialect != kind:
            self._probes.append(kind)
        self._list_requests.append((kind, requested))
        return self._sign(Envelope(kind, self.user_id, self._server_to(), self.now_ms(), {}))

    def _server_to(self) -> str:
        return self.server_id or (next(iter(self.server_ids)) if len(self.server_ids) == 1 else BROADCAST)

    def no_list_request(self) -> None:
        """Every list dialect was tried and none answered: use the presence cache."""
        self.list_dialect = dialects.PRESENCE_ONLY
        self.directory_loaded, self.directory_stale = True, False
        self._list_requests.clear()

    def presence_list(self, *, requested: bool = True) -> ListResult:
        return ListResult(self.user_entries(), requested=requested)

    def key_lookups(self, target: str) -> tuple[Envelope, ...]:
        """Ask the server for a user's key in each look-up it may answer (all of them
        until one has answered; those it refused are not asked again)."""
        kinds = [self.key_lookup] if self.key_lookup else [k for k in dialects.KEY_LOOKUPS if k not in self.unsupported]
        out = []
        for kind in kinds:
            if kind != self.key_lookup:
                self._probes.append(kind)
            out.append(self._sign(Envelope(kind, self.user_id, self._server_to(), self.now_ms(), {"user_id": target})))
        return tuple(out)

    def login_register(self, registration: login_values.Registration) -> Envelope:
        """LOGIN_REGISTER: our key encrypted under the password, and the password
        verifier (`socp.protocol.login.register`, run by the driver: it is scrypt).
        Valid only on a connection opened with a signed hello, which ours always is."""
        self.login_register_pending = True
        server = self.server_id or BROADCAST
        if self.registers_g17_style:
            return self._sign(Envelope(G17_REGISTER, self.user_id, server, self.now_ms(),
                                       {"pubkey": self.pubkey, "privkey_store": registration.privkey_store,
                                        "pake_password": registration.pake_password}))
        return self._sign(frames.login_register(self.user_id, server, self.now_ms(), registration.privkey_store,
                                                registration.pake_password))

    def close_frame(self) -> Envelope:
        return frames.ctrl_close(self.user_id, BROADCAST, self.now_ms())

    def tell(self, target: str, text: str) -> Actions:
        """§7.2 and the long-text decision: one MSG_DIRECT per ≤446-byte part."""
        recipient = self.resolve(target)
        if recipient == self.user_id:
            raise CommandError("that is you")
        key = self._recipient_key(recipient)
        parts = split_utf8(text)
        part_id = new_id() if len(parts) > 1 else None
        out = []
        for index, data in enumerate(parts):
            ts = self.now_ms()
            ciphertext = b64url_encode(crypto.oaep_encrypt(key, data))
            content_sig = signing.sign_dm(self.user_key, ciphertext, self.user_id, recipient, ts)
            part = {"id": part_id, "index": index, "count": len(parts)} if part_id else None
            frame = self._sign(frames.msg_direct(self.user_id, recipient, ts, ciphertext, self.pubkey,
                                                 content_sig, part=part))
            self.outbox.track(Tracked(frame, part_id or "", "dm", recipient, text))
            out.append(frame)
        sent = MessageSent(recipient=recipient, label=self.label(recipient), channel="dm", text=text,
                           parts=len(parts), message_id=part_id)
        return Actions(frames=tuple(out), events=(sent,))

    def key_shares(self) -> Actions:
        """§7.3: give our channel sending key to every member that lacks it."""
        pending, skipped = [], []
        for uid in sorted(self.directory):
            if uid == self.user_id or uid in self.channel_keys.shared_with:
                continue
            if uid in self._changed_keys:
                skipped.append(uid)
            elif uid in self._keys:
                pending.append(uid)
        events: list[Event] = [
            Info(f"not sharing the channel key with {self.label(uid)}: its key changed (/whois, /trust)")
            for uid in skipped
        ]
        if not pending:
            return Actions(events=tuple(events))
        own_der = crypto.private_key_der(self.channel_keys.own())
        out = []
        for start in range(0, len(pending), KEY_SHARES_PER_FRAME):
            batch = pending[start : start + KEY_SHARES_PER_FRAME]
            shares = [
                {"member": uid,
                 "wrapped_public_channel_key": b64url_encode(
                     crypto.wrap_blocks(crypto.decode_public_key(self._keys[uid]), own_der))}
                for uid in batch
            ]
            content_sig = signing.sign_key_share(self.user_key, shares, self.pubkey)
            out.append(self._sign(frames.public_channel_key_share(self.user_id, self.now_ms(), shares,
                                                                  self.pubkey, content_sig)))
        self.channel_keys.shared_with.update(pending)
        return Actions(frames=tuple(out), events=tuple(events))

    def post_public(self, text: str) -> Actions:
        """§7.3: key shares first, then one OAEP block per part under our sending key."""
        shares = self.key_shares()
        channel_pub = self.channel_keys.own().public_key()
        parts = split_utf8(text)
        part_id = new_id() if len(parts) > 1 else None
        out = list(shares.frames)
        for index, data in enumerate(parts):
            ts = self.now_ms()
            ciphertext = b64url_encode(crypto.oaep_encrypt(channel_pub, data))
            content_sig = signing.sign_public(self.user_key, ciphertext, self.user_id, ts)
            part = {"id": part_id, "index": index, "count": len(parts)} if part_id else None
            frame = self._sign(frames.msg_public_channel(self.user_id, ts, ciphertext, self.pubkey,
                                                         content_sig, part=part))
            self.outbox.track(Tracked(frame, part_id or "", "public", PUBLIC_CHANNEL, text))
            out.append(frame)
        sent = MessageSent(recipient=PUBLIC_CHANNEL, label=PUBLIC_CHANNEL, channel="public", text=text,
                           parts=len(parts), message_id=part_id)
        return Actions(frames=tuple(out), events=(*shares.events, sent))

    def send_file(self, target: str, path: Path) -> Iterator[Actions]:
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
            to, channel = self.resolve(target), "dm"
            if to == self.user_id:
                raise CommandError("that is you")
            encrypt_key = self._recipient_key(to)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise CommandError(f"{path} is not a regular file", "FILE_NOT_FOUND")
            digest = _sha256_file(path)
        except FileNotFoundError as exc:
            raise CommandError(f"no file {path}", "FILE_NOT_FOUND") from exc
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}", "FILE_UNREADABLE") from exc
        return self._file_frames(path, to, channel, encrypt_key, size, digest)

    def _file_frames(self, path: Path, to: str, channel: Channel, encrypt_key: crypto.PublicKey | None,
                     size: int, digest: str) -> Iterator[Actions]:
        if channel == "public":
            yield self.key_shares()
            encrypt_key = self.channel_keys.own().public_key()
        assert encrypt_key is not None
        file_id, name, started = new_id(), path.name, self._clock()
        ts = self.now_ms()
        start = frames.file_start(self.user_id, to, ts, file_id, name, size, digest, channel)
        payload = dict(start.payload)
        payload["sender_pub"] = self.pubkey
        payload["content_sig"] = b64url_encode(
            crypto.sign_pss(self.user_key, manifest_signed_bytes(payload, self.user_id, to, ts)))
        start = self._sign(Envelope(type=start.type, from_=start.from_, to=to, ts=ts, payload=payload))
        self.outbox.track(Tracked(start, file_id, "file", to, name))
        self._outgoing[file_id] = (to, name, None)
        while len(self._outgoing) > MAX_RECENT_FILES:
            self._outgoing.popitem(last=False)
        yield Actions(frames=(start,),
                      events=(FileProgress(file_id, name, "send", 0, size, 0.0, None),))
        done, index, last_progress = 0, 0, started
        rehash = hashlib.sha256()
        with open(path, "rb", buffering=FILE_READ_BUFFER) as source:
            while True:
                data = source.read(OAEP_MAX_PLAINTEXT * self.chunk_blocks)
                if not data:
                    break
                rehash.update(data)
                ciphertext = b64url_encode(crypto.wrap_blocks(encrypt_key, data))
                chunk = frames.file_chunk(self.user_id, to, self.now_ms(), file_id, index, ciphertext)
                if self.sign_file_chunks:
                    chunk = self._sign(chunk)
                self.outbox.track(Tracked(chunk, file_id, "file", to, name))
                index += 1
                done += len(data)
                now = self._clock()
                events: tuple[Event, ...] = ()
                if now - last_progress >= self.progress_interval or done >= size:
                    last_progress = now
                    events = (_progress(file_id, name, "send", done, size, started, now),)
                yield Actions(frames=(chunk,), events=events)
        end = self._sign(frames.file_end(self.user_id, to, self.now_ms(), file_id))
        end_ref = self.outbox.track(Tracked(end, file_id, "file", to, name))
        self._outgoing[file_id] = (to, name, self._clock())
        if done != size or rehash.hexdigest() != digest:
            yield Actions(frames=(end,), events=(FileFailed(file_id, self.user_id, name,
                                                            "the file changed while it was being sent",
                                                            outgoing=True),))
            return
        sent = FileSent(file_id, to, name, size, digest)
        if self.outbox.was_refused(file_id):
            yield Actions(frames=(end,))            # already reported as not delivered
        elif self.outbox.server_acks:
            # "sent" once the server took the whole file in (the ACK covering FILE_END),
            # not when the last frame left us: a refused chunk says "not delivered" instead.
            self._sent_on_ack[end_ref] = sent
            yield Actions(frames=(end,))
        else:
            yield Actions(frames=(end,), events=(sent,))

    def abandon_file(self, file_id: str, to: str, name: str, reason: str) -> Actions:
        """Stop sending a file: FILE_END now, so the receiver drops it at once
        (it is short of bytes) instead of waiting for chunks that never come."""
        end = self._sign(frames.file_end(self.user_id, to, self.now_ms(), file_id))
        self.outbox.track(Tracked(end, file_id, "file", to, name))   # a refusal of it is about the same file
        self._outgoing.pop(file_id, None)
        failed = FileFailed(file_id, self.user_id, name, reason, outgoing=True, label=self.label(to))
        return Actions(frames=(end,), events=(failed,))

    def whois(self, target: str) -> WhoisResult:
        uid = self.resolve(target)
        entry = self.directory.get(uid, DirectoryEntry(uid))
        if uid == self.user_id:
            return WhoisResult(uid, self.display_name or uid, self.display_name, entry.server_id,
                               self.fingerprint, self.fingerprint, True)
        seen = self._changed_keys.get(uid) or self._keys.get(uid) or entry.pubkey
        seen_fp = crypto.fingerprint(seen) if seen else ""
        pinned = self.pins.get(uid) or ""
        return WhoisResult(uid, self.label(uid), entry.display_name, entry.server_id, seen_fp, pinned,
                           trusted=bool(pinned) and uid not in self._changed_keys)

    def trust(self, target: str) -> list[Event]:
        uid = self.resolve(target)
        new_key = self._changed_keys.pop(uid, None)
        if new_key is None:
            return [Info(f"{self.label(uid)}: nothing to accept, the pinned key is in use")]
        fp = crypto.fingerprint(new_key)
        self.pins.pin(uid, fp)
        self._keys[uid] = new_key
        self._warned.pop(uid, None)
        self.channel_keys.shared_with.discard(uid)  # share our channel key with the new key
        return [Info(f"{self.label(uid)}: now trusting key {fp}")]

    # --- incoming frames ---------------------------------------------------------------

    def handle(self, data: str | bytes) -> list[Event]:
        """One frame from the server -> the events it produces. Peer servers' dialects
        are read too (`dialects`); a frame type we have no use for is ignored."""
        try:
            raw = load_json(data)
            if not isinstance(raw, dict):
                raise MalformedFrame("frame must be a JSON object")
            frame_type = raw.get("type")
            if isinstance(frame_type, str) and frame_type not in KNOWN_TYPES:
                return self._on_unknown_type(frame_type, raw)
            fields = dialects.tolerant_fields(raw)
            if self.server_key is not None and frame_type != T.CTRL_CLOSE:
                # The signature covers the payload as the server wrote it.
                try:
                    signing.verify_transport(self.server_key, parse_obj(fields))
                except InvalidSignature as exc:
                    return [ErrorReceived("INVALID_SIG", f"dropped {frame_type}: {exc.detail}", "client")]
            fields["payload"] = dialects.readable_payload(str(frame_type), fields.get("payload"))
            if dialects.is_plain_public(fields):
                return self._on_plain_public(dialects.parse_plain_public(fields))
            envelope = parse_obj(fields)
        except SocpError as exc:
            return [ErrorReceived(exc.code.value, f"dropped a frame from the server: {exc.detail}", "client")]
        return self.handle_envelope(envelope, transport_checked=True)

    def _on_unknown_type(self, frame_type: str, raw: dict[str, Any]) -> list[Event]:
        """A type outside the reference: G17's CLIENT_WELCOME {server_id} names our
        server; anything else is ignored (a peer's extension is not an error)."""
        payload = raw.get("payload")
        if frame_type == "CLIENT_WELCOME" and isinstance(payload, dict) and is_peer_id(payload.get("server_id")):
            self._note_server(payload["server_id"])
            self.registers_g17_style = True
        return []

    def _note_server(self, server_id: str) -> None:
        if is_peer_id(server_id):
            self.server_ids.add(server_id)
            self.server_id = self.server_id or server_id

    def handle_envelope(self, envelope: Envelope, *, transport_checked: bool = False) -> list[Event]:
        if self.server_key is not None and envelope.type != T.CTRL_CLOSE and not transport_checked:
            try:
                signing.verify_transport(self.server_key, envelope)
            except InvalidSignature as exc:
                return [ErrorReceived("INVALID_SIG", f"dropped {envelope.type}: {exc.detail}", "client")]
        handler = self._HANDLERS.get(envelope.type)
        if handler is None:
            return []
        try:
            return handler(self, envelope)
        except SocpError as exc:
            return [ErrorReceived(exc.code.value, f"dropped {envelope.type}: {exc.detail}", "client")]

    def _requested(self, request: str) -> bool:
        """Whether the user asked for the list this reply answers. Requests of other
        dialects sent before it went unanswered (tried and timed out): forgotten."""
        while self._list_requests:
            kind, requested = self._list_requests.pop(0)
            if kind == request:
                return requested
        return True

    def _answered(self, request: str) -> None:
        if request in self._probes:
            self._probes.remove(request)

    def _on_list(self, envelope: Envelope) -> list[Event]:
        """LIST_RESPONSE (ours, G17), USER_LIST (G45) or WHO (G101): the list, and the
        dialect this server answers."""
        if envelope.type == T.WHO and envelope.from_ not in self.server_ids and envelope.from_ == envelope.to:
            return []   # our own request echoed back
        self._note_server(envelope.from_)
        self.server_id = envelope.from_
        answers: dict[str, T] = {T.LIST_RESPONSE: T.LIST_REQUEST, T.USER_LIST: T.USER_LIST_REQ}
        request = answers.get(envelope.type, T.WHO).value
        self.list_dialect = request
        self._answered(request)
        events: list[Event] = []
        directory: dict[str, DirectoryEntry] = {}
        for uid, detail in dialects.listed_users(envelope.payload):
            if not is_peer_id(uid):
                continue
            key = detail.get("pubkey") if isinstance(detail.get("pubkey"), str) else ""
            if key:
                try:
                    key = crypto.normalise_public_key(key)
                except BadKey:
                    key = ""
            server_id = str(detail.get("server_id") or "")
            if server_id:
                self.server_ids.add(server_id)
            old = self.directory.get(uid)
            # A list without keys (G17, G45) keeps what presence or a look-up taught us.
            key = key or (old.pubkey if old else "")
            name = _text(detail.get("display_name")) or (old.display_name if old else "")
            directory[uid] = DirectoryEntry(uid, server_id or (old.server_id if old else ""), name, key)
        if self.directory_loaded and self.presence_news:
            events += self._presence_diff(self.directory, directory)
        self.directory = directory
        for uid in directory:
            self.label(uid)
        self.directory_loaded, self.directory_stale = True, False
        for uid, entry in directory.items():
            if entry.pubkey and uid != self.user_id:
                events.extend(self._check_pin(uid, entry.pubkey)[1])
        requested = self._requested(request)
        events.append(ListResult(self.user_entries(), requested=requested))
        return events

    def _presence_diff(self, before: dict[str, DirectoryEntry], after: dict[str, DirectoryEntry]
                       ) -> list[Event]:
        def news(entry: DirectoryEntry, joined: bool) -> PresenceChanged:
            return PresenceChanged(entry.user_id, entry.display_name or entry.user_id, entry.server_id, joined)

        events: list[Event] = [news(after[uid], True) for uid in after if uid not in before and uid != self.user_id]
        return events + [news(before[uid], False) for uid in before if uid not in after and uid != self.user_id]

    def user_entries(self) -> tuple[UserEntry, ...]:
        return tuple(
            UserEntry(uid, self.label(uid), entry.display_name, entry.server_id,
                      crypto.fingerprint(entry.pubkey) if entry.pubkey else "", uid == self.user_id)
            for uid, entry in self.directory.items()
        )

    def _on_presence(self, envelope: Envelope) -> list[Event]:
        """Interop table: a presence cache for servers without a list request (G56),
        and keys from `meta.pubkey` in any encoding."""
        payload = envelope.payload
        uid = payload["user_id"]
        self.server_ids.add(payload["server_id"])
        self.server_ids.add(envelope.from_)
        # With no list request, presence is the list: it is never stale.
        self.directory_stale = self.list_dialect != dialects.PRESENCE_ONLY
        if envelope.type == T.USER_REMOVE:
            gone = self.directory.pop(uid, None)
            if gone is None or not self.presence_news or uid == self.user_id:
                return []
            return self._presence_diff({uid: gone}, {})
        is_new = uid not in self.directory
        meta = payload.get("meta") or {}
        key = meta.get("pubkey") if isinstance(meta.get("pubkey"), str) else ""
        try:
            key = crypto.normalise_public_key(key) if key else ""
        except BadKey:
            key = ""
        name = _text(meta.get("display_name")) or _text(meta.get("name"))
        entry = self.directory[uid] = DirectoryEntry(uid, payload["server_id"], name, key)
        events = self._check_pin(uid, key)[1] if key and uid != self.user_id else []
        if is_new and self.presence_news:
            events += self._presence_diff({}, {uid: entry})
        return events

    def _on_key_answer(self, envelope: Envelope) -> list[Event]:
        """DIRECTORY_ENTRY, PUBKEY_RESPONSE (G17) or USER_DB_USER (G45)."""
        request = next(k for k, v in dialects.KEY_LOOKUPS.items() if v == envelope.type)
        self.key_lookup = request
        self.lookup_answers += 1
        self._answered(request)
        found = dialects.looked_up_key(envelope.type, envelope.payload)
        if found is None or envelope.payload.get("revoked") is True:
            return []
        uid, key_text = found
        if uid == self.user_id:
            return []
        try:
            key = crypto.normalise_public_key(key_text)
        except BadKey:
            return []
        old = self.directory.get(uid, DirectoryEntry(uid))
        home = envelope.payload.get("server_id")
        server_id = home if isinstance(home, str) and is_peer_id(home) else old.server_id
        self.directory[uid] = DirectoryEntry(uid, server_id, old.display_name, key)
        return self._check_pin(uid, key)[1]

    def _on_membership(self, envelope: Envelope) -> list[Event]:
        self.server_ids.add(envelope.from_)
        self.directory_stale = self.list_dialect != dialects.PRESENCE_ONLY
        return []

    def _on_error(self, envelope: Envelope) -> list[Event]:
        code, detail = dialects.error_fields(envelope.payload)
        refs = acks.refs_named(envelope.payload)
        if refs and any(self.outbox.knows(ref) for ref in refs):
            return self._on_refusal(refs, code, detail)
        refused = self._refused_probe(detail) if code == dialects.UNKNOWN_TYPE else None
        if refused is not None:
            # A list request or key look-up this server does not know: expected, not shown.
            self._probes.remove(refused)
            self.unsupported.add(refused)
            self.lookup_answers += refused in dialects.KEY_LOOKUPS
            if refused in dialects.LIST_DIALECTS:
                self._list_requests = [entry for entry in self._list_requests if entry[0] != refused]
            return []
        if self.login_register_pending and code in LOGIN_REGISTER_REFUSALS:
            self.login_register_pending = False
            return [LoginRegisterFailed(code, detail)]
        return self._files_lost_downstream(detail, code) + self._unless_repeated(code, detail)

    def _unless_repeated(self, code: str, detail: str) -> list[Event]:
        """The server's ERROR, unless the same one was shown less than
        REPEATED_ERROR_WINDOW seconds ago (then counted, and the count said with the
        next one shown)."""
        now = self._clock()
        last = self._last_error
        if last is not None and last[:2] == (code, detail) and now - last[2] < REPEATED_ERROR_WINDOW:
            self._last_error = (code, detail, last[2], last[3] + 1)
            return []
        events: list[Event] = []
        if last is not None and last[3]:
            events.append(Info(f"the server repeated its last error ({last[0]}) {last[3]} more time(s)"))
        self._last_error = (code, detail, now, 0)
        return events + [ErrorReceived(code, detail, "server")]

    def _files_lost_downstream(self, detail: str, code: str) -> list[Event]:
        """An ERROR that names no frame but says a file frame was not delivered (our
        node, giving up on a backlog for a server that stayed away: those frames had
        been acknowledged): every file we are sending, or sent in the last
        RECENT_FILE_SECONDS, to a user of another server is reported once, as one that
        may not have arrived."""
        if not re.match(r"FILE_(START|CHUNK|END)\b.*not delivered", detail):
            return []
        now, events = self._clock(), list[Event]()
        for file_id, (to, name, ended) in list(self._outgoing.items()):
            home = self.directory.get(to, DirectoryEntry(to)).server_id
            if (ended is not None and now - ended > RECENT_FILE_SECONDS) or (home and home == self.server_id):
                continue
            if self.outbox.mark_reported(file_id):
                self._sent_on_ack = {ref: sent for ref, sent in self._sent_on_ack.items() if sent.file_id != file_id}
                events.append(NotDelivered("file", to, self.label(to), name, code,
                                           f"it may not have arrived: the server says {detail}", file_id))
        return events

    def _refused_probe(self, detail: str) -> str | None:
        """Which of our outstanding dialect probes an UNKNOWN_TYPE answers: the one its
        detail names, else the oldest if the detail names no frame type at all."""
        named = [kind for kind in self._probes if re.search(rf"\b{kind}\b", detail)]
        if named:
            return named[0]
        if self._probes and not any(re.search(rf"\b{kind}\b", detail) for kind in KNOWN_TYPES):
            return self._probes[0]
        return None

    def _on_refusal(self, refs: list[str], code: str, detail: str) -> list[Event]:
        """An ERROR naming frames of ours: RESEND ones go again re-stamped (once), the
        others make their message "not delivered", said once per message."""
        again, refusals = self.outbox.refused(refs, code, detail)
        events: list[Event] = [self._not_delivered(refusal) for refusal in refusals]
        if again:
            events.append(Restamped(tuple(self._restamp(tracked) for tracked in again)))
        return events

    def _not_delivered(self, refusal: Refusal) -> NotDelivered:
        tracked = refusal.tracked
        if tracked.kind == "file":
            self._sent_on_ack = {ref: sent for ref, sent in self._sent_on_ack.items()
                                 if sent.file_id != tracked.message}
        return NotDelivered(tracked.kind, tracked.recipient, self.label(tracked.recipient), tracked.summary,
                            refusal.code, refusal.detail, tracked.message if tracked.kind == "file" else "")

    def _restamp(self, tracked: Tracked) -> Envelope:
        """ERROR RESEND (README, "Acknowledgements and recovery"): the same frame under
        a fresh ts, so new signatures and a new msg_ref; the ciphertext is kept, so a
        recipient can drop a copy it already has."""
        old, ts = tracked.frame, self.now_ms()
        payload = dict(old.payload)
        if old.type == T.MSG_DIRECT:
            payload["content_sig"] = signing.sign_dm(self.user_key, payload["ciphertext"], old.from_, old.to, ts)
        elif old.type == T.MSG_PUBLIC_CHANNEL:
            payload["content_sig"] = signing.sign_public(self.user_key, payload["ciphertext"], old.from_, ts)
        elif old.type == T.FILE_START and "content_sig" in payload:
            payload["content_sig"] = b64url_encode(
                crypto.sign_pss(self.user_key, manifest_signed_bytes(payload, old.from_, old.to, ts)))
        frame = Envelope(type=old.type, from_=old.from_, to=old.to, ts=ts, payload=payload, sig=old.sig)
        if payload != old.payload:
            frame = self._sign(frame)     # the transport sig covers the payload only
        new_ref = self.outbox.track(replace(tracked, frame=frame, restamped=True))
        waiting = self._sent_on_ack.pop(acks.msg_ref(old), None)
        if waiting is not None:
            self._sent_on_ack[new_ref] = waiting
        return frame

    def frames_sent(self, frames_out: tuple[Envelope, ...]) -> None:
        """The driver wrote these frames to the connection, in this order."""
        for frame in frames_out:
            self.outbox.sent(frame)

    def _on_ack(self, envelope: Envelope) -> list[Event]:
        if is_peer_id(envelope.from_) and envelope.from_ != self.user_id:
            self.server_ids.add(envelope.from_)
        ref = envelope.payload.get("msg_ref")
        if isinstance(ref, str):
            covered = {acks.msg_ref(tracked.frame) for tracked in self.outbox.acked(ref)}
            done = [self._sent_on_ack.pop(end) for end in list(self._sent_on_ack) if end in covered]
            if done:
                return list(done)
        if envelope.payload.get("msg_ref") in (LOGIN_REGISTER_ACK, G17_REGISTER_ACK) and self.login_register_pending:
            self.login_register_pending = False
            return [LoginRegistered(envelope.from_)]
        return []

    def _on_close(self, envelope: Envelope) -> list[Event]:
        return [Info("the server is closing the connection")]

    def _on_direct(self, envelope: Envelope) -> list[Event]:
        """§7.2: USER_DELIVER (or a peer's MSG_DIRECT passed on unchanged)."""
        if envelope.type == T.USER_DELIVER:
            # Interop table: payload.sender, else payload.from, else the envelope `from`
            # when it is not a server (G101 puts the sender user there). G56 puts its own
            # id there and no sender: then the owner of sender_pub, whose content_sig
            # over its own id must still verify below.
            sender = frames.deliver_sender(envelope, self.server_ids) or self._owner_of_key(
                envelope.payload.get("sender_pub"))
        else:
            sender = envelope.from_
        if not sender:
            return [MessageRejected("", "dm", "the frame does not say who sent it", envelope.ts)]
        payload = envelope.payload
        key_text = payload.get("sender_pub") or self._keys.get(sender)
        if not key_text:
            return [MessageRejected(sender, "dm", "no key known for the sender", envelope.ts)]
        key = crypto.decode_public_key(key_text)
        ciphertext = payload["ciphertext"]
        ts = self._dm_signed_ts(key, payload, sender, envelope.ts)
        if ts is None:
            if envelope.type == T.USER_DELIVER and _verifies(signing.verify_public, key, payload["content_sig"],
                                                             ciphertext, sender, envelope.ts):
                # G101 fans public messages out as USER_DELIVER to each member.
                return self._public_message(sender, envelope.ts, payload)
            return [MessageRejected(sender, "dm", "content signature does not verify", envelope.ts)]
        if self._seen_before(sender, ciphertext, ts):
            return []
        trusted, events = self._check_pin(sender, key_text)
        plaintext, form = _open(ciphertext, self.user_key)
        return events + self._message(sender, "dm", ts, plaintext, form, trusted, payload.get("part"))

    def _seen_before(self, sender: str, ciphertext: str, ts: int) -> bool:
        """True for a re-stamped copy of a message already shown: the same ciphertext
        under another ts, which only its sender can sign (ERROR RESEND after a node
        crash: the first copy may have gone through). Byte-identical copies are the
        node's to refuse (REPLAY)."""
        seen = (sender, hashlib.sha256(ciphertext.encode()).hexdigest())
        first_ts = self._seen.get(seen)
        if first_ts is not None:
            return first_ts != ts
        self._seen[seen] = ts
        while len(self._seen) > MAX_SEEN_DELIVERIES:
            self._seen.popitem(last=False)
        return False

    def _dm_signed_ts(self, key: crypto.PublicKey, payload: dict[str, Any], sender: str, envelope_ts: int
                      ) -> int | None:
        """The ts a DM's content_sig covers (with this sender and us), None if none does:
        the envelope's (§7.2), else the ts G101's client puts in the payload, which
        counts only when the payload's from/to name this sender and us. The message is
        shown at the ts that verified."""
        signature, ciphertext = payload["content_sig"], payload["ciphertext"]
        if _verifies(signing.verify_dm, key, signature, ciphertext, sender, self.user_id, envelope_ts):
            return envelope_ts
        signed_ts = dialects.payload_dm_ts(payload, sender, self.user_id)
        if signed_ts is not None and signed_ts != envelope_ts and _verifies(
                signing.verify_dm, key, signature, ciphertext, sender, self.user_id, signed_ts):
            return signed_ts
        return None

    def _public_sender(self, envelope: Envelope) -> tuple[str, int]:
        """Who sent a public message, and the ts its content_sig covers. We keep the
        sender's envelope (§7.3 decision); a server that re-wraps it in its own (G45)
        leaves payload.from / payload.ts, or at least the sender's key."""
        payload = envelope.payload
        named = payload.get("from")
        sender: str = named if isinstance(named, str) and is_peer_id(named) else envelope.from_
        ts: int = payload["ts"] if isinstance(payload.get("ts"), int) and "from" in payload else envelope.ts
        if sender in self.server_ids:
            sender = self._owner_of_key(payload.get("sender_pub")) or sender
        return sender, ts

    def _owner_of_key(self, key_text: Any) -> str:
        """The user (we included) whose key this is, "" if none we know."""
        if not isinstance(key_text, str):
            return ""
        try:
            fp = crypto.fingerprint(key_text)
        except BadKey:
            return ""
        if fp == self.fingerprint:
            return self.user_id
        return next((uid for uid, key in self._keys.items() if crypto.fingerprint(key) == fp), "")

    def _on_plain_public(self, envelope: Envelope) -> list[Event]:
        """A plaintext public message from a peer client (G45: payload {channel, text,
        from, ts, sender_pub, content_sig}, signed over the canonical JSON of the first
        four): shown flagged as unencrypted, and as verified only if that signature holds."""
        payload = envelope.payload
        sender, ts = self._public_sender(envelope)
        if sender == self.user_id:
            return []
        text = payload["text"]
        key_text = payload.get("sender_pub") if isinstance(payload.get("sender_pub"), str) else self._keys.get(sender)
        verified, trusted, events = False, False, list[Event]()
        if key_text and isinstance(payload.get("content_sig"), str):
            signed = {"channel": payload.get("channel"), "text": text,
                      "from": payload.get("from"), "ts": payload.get("ts")}
            try:
                key, signature = crypto.decode_public_key(key_text), b64url_decode(payload["content_sig"])
                verified = any(
                    crypto.verify_pss(key, signature, form)
                    for form in (canonical_json(signed), canonical_json_ascii(signed))
                )
            except SocpError:
                verified = False
            if verified:
                trusted, events = self._check_pin(sender, key_text)
        return events + [
            MessageReceived(sender, self.label(sender), text, ts, "public", verified, trusted, "unencrypted")
        ]

    def _on_public(self, envelope: Envelope) -> list[Event]:
        """§7.3: verify over ciphertext‖from‖ts, decrypt with the sender's channel key."""
        sender, ts = self._public_sender(envelope)
        if sender == self.user_id:
            return []
        payload = envelope.payload
        key_text = payload.get("sender_pub") or self._keys.get(sender)
        if not key_text:
            return [MessageRejected(sender, "public", "no key known for the sender", envelope.ts)]
        key = crypto.decode_public_key(key_text)
        if not _verifies(signing.verify_public, key, payload["content_sig"], payload["ciphertext"], sender, ts):
            return [MessageRejected(sender, "public", "content signature does not verify", envelope.ts)]
        return self._public_message(sender, ts, payload)

    def _public_message(self, sender: str, ts: int, payload: dict[str, Any]) -> list[Event]:
        """A public message whose content_sig verified: decrypt with the sender's channel key."""
        if sender == self.user_id:
            return []
        key_text = payload.get("sender_pub") or self._keys[sender]
        if self._seen_before(sender, payload["ciphertext"], ts):
            return []
        trusted, events = self._check_pin(sender, key_text)
        channel_key = self.channel_keys.peer(crypto.fingerprint(key_text))
        plaintext, form = _open(payload["ciphertext"], channel_key)
        return events + self._message(sender, "public", ts, plaintext, form, trusted, payload.get("part"))

    def _message(
        self,
        sender: str,
        channel: Channel,
        ts: int,
        plaintext: bytes | None,
        form: ContentForm,
        trusted: bool,
        part: Any,
    ) -> list[Event]:
        """One frame's text; parts of a long text wait for their siblings (§2 decision)."""
        if not (
            isinstance(part, dict)
            and isinstance(part.get("id"), str)
            and isinstance(part.get("count"), int)
            and part["count"] > 1
        ):
            return [MessageReceived(sender, self.label(sender), _decode(plaintext), ts, channel, True, trusted, form)]
        count, index = part["count"], part.get("index")
        if not isinstance(index, int) or not 0 <= index < count:
            return [MessageRejected(sender, channel, "bad part index", ts)]
        slot = (sender, channel, part["id"])
        pending = self._split.get(slot)
        if pending is None or pending.count != count:
            pending = self._split[slot] = _SplitMessage(count=count, ts=ts)
            while len(self._split) > MAX_PENDING_SPLIT_MESSAGES:
                self._split.popitem(last=False)
        pending.parts[index] = plaintext or b""
        pending.forms.add(form)
        pending.trusted &= trusted
        if len(pending.parts) < count:
            return []
        del self._split[slot]
        whole = b"".join(pending.parts[i] for i in range(count))
        worst: ContentForm = next((f for f in ("undecryptable", "unencrypted") if f in pending.forms), "encrypted")
        text = "" if worst == "undecryptable" else _decode(whole)
        return [
            MessageReceived(
                sender,
                self.label(sender),
                text,
                pending.ts,
                channel,
                True,
                pending.trusted,
                worst,
                parts=count,
                message_id=part["id"],
            )
        ]

    def _on_key_share(self, envelope: Envelope) -> list[Event]:
        """§7.3: a sender key wrapped for us; verified with creator_pub, then stored."""
        payload = envelope.payload
        mine = [s for s in payload["shares"] if s["member"] == self.user_id]
        if not mine:
            return []
        creator_pub = payload["creator_pub"]
        creator_key = crypto.decode_public_key(creator_pub)
        creator_fp = crypto.fingerprint(creator_key)
        owner = self._owner_of(envelope.from_, creator_fp)
        if not _verifies(signing.verify_key_share, creator_key, payload["content_sig"], payload["shares"], creator_pub):
            return [MessageRejected(owner or creator_fp, "public", "key share signature does not verify", envelope.ts)]
        events: list[Event] = []
        if owner:
            events.extend(self._check_pin(owner, creator_pub)[1])
        wrapped = mine[-1]["wrapped_public_channel_key"]
        try:
            channel_key = crypto.load_private_key_der(crypto.unwrap_blocks(self.user_key, b64url_decode(wrapped)))
        except SocpError as exc:
            return events + [
                MessageRejected(owner or creator_fp, "public", f"key share unusable: {exc.detail}", envelope.ts)
            ]
        self.channel_keys.store_peer(creator_fp, wrapped, channel_key)
        label = self.label(owner) if owner else creator_fp
        return events + [ChannelKeyReceived(owner or creator_fp, label, creator_fp)]

    def _owner_of(self, sender: str, fingerprint: str) -> str:
        """Whose user key has this fingerprint. Servers carry shares on with their own
        id in `from` (§7.3), so the key decides; `from` counts only if it is a user
        we know and nothing else matched."""
        for uid, key in self._keys.items():
            if crypto.fingerprint(key) == fingerprint:
                return uid
        for uid, entry in self.directory.items():
            if entry.pubkey and crypto.fingerprint(entry.pubkey) == fingerprint:
                return uid
        if sender in self.directory and sender not in self.server_ids and sender != self.user_id:
            return sender
        return ""

    # --- incoming files (§7.4) ------------------------------------------------------

    def _on_file_start(self, envelope: Envelope) -> list[Event]:
        payload = envelope.payload
        # A server that re-wraps the frame (G45: its own `from` and `ts`, payload.sender
        # added) breaks the manifest signature, which covers the sender's `ts`; with no
        # payload.sender, the sender's key says who sent it.
        rewrapped = envelope.from_ in self.server_ids
        sender = frames.deliver_sender(envelope, self.server_ids) or self._owner_of_key(payload.get("sender_pub"))
        file_id, name, size = payload["file_id"], payload["name"], payload["size"]
        channel: Channel = payload.get("mode") or ("public" if envelope.to == PUBLIC_CHANNEL else "dm")
        if sender == self.user_id:
            return []
        if "sha256" in payload and not isinstance(payload["sha256"], str):
            return self._fail(file_id, sender, name, "its announced SHA-256 is not a text")
        # No sha256 at all (G17's client sends none): accepted, its size checked, and
        # shown as not verified by hash (docs/chat.md, "Files without a SHA-256").
        digest = payload.get("sha256") or ""
        if file_id in self._downloads or file_id in self._failed_files:
            return self._fail(file_id, sender, name, "a transfer with the same id is already under way or failed")
        if size > self.max_file_bytes:
            return self._fail(file_id, sender, name, f"it is {human_bytes(size)}, larger than the most you take "
                                                    f"({human_bytes(self.max_file_bytes)})")
        if len(self._downloads) >= MAX_ACTIVE_DOWNLOADS:
            return self._fail(file_id, sender, name, f"{MAX_ACTIVE_DOWNLOADS} files are already coming in; "
                                                    "ask for it again later")
        key_text = payload.get("sender_pub") if isinstance(payload.get("sender_pub"), str) else None
        key_text = key_text or self._keys.get(sender)
        verified, events = False, list[Event]()
        if key_text and isinstance(payload.get("content_sig"), str):
            try:
                key = crypto.decode_public_key(key_text)
                signature = b64url_decode(payload["content_sig"])
            except SocpError:
                return self._fail(file_id, sender, name, "its signature cannot be read")
            if any(
                crypto.verify_pss(key, signature, form)
                for form in dialects.manifest_forms(payload, sender, envelope.to, envelope.ts)
            ):
                verified, events = self._check_pin(sender, key_text)
            elif not rewrapped:
                return self._fail(file_id, sender, name, "the sender's signature over the file's name, size and "
                                                        "SHA-256 does not verify (forged or changed on the way)")
            # else: the server changed the envelope fields the signature covers; the file
            # is taken as an unsigned one (a server could as well have dropped the
            # signature), and its SHA-256 is still checked.
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
                now=self._clock(),
            )
        except OSError as exc:
            return self._fail(file_id, sender, name, f"cannot write to the downloads directory: {exc.strerror}")
        incoming.accepted = size <= self.auto_accept_bytes
        self._downloads[file_id] = incoming
        offer = FileOffered(file_id, sender, self.label(sender), name, size, channel, incoming.accepted,
                            self.auto_accept_bytes)
        return events + [offer, FileProgress(file_id, name, "receive", 0, size, 0.0, None)]

    def _on_file_chunk(self, envelope: Envelope) -> list[Event]:
        payload = envelope.payload
        incoming = self._downloads.get(payload["file_id"])
        if incoming is None or incoming.complete:
            return []  # unknown or already failed: reported once, at the failure
        if incoming.channel == "public":
            key = self.channel_keys.peer(incoming.creator_fingerprint) if incoming.creator_fingerprint else None
        else:
            key = self.user_key
        plaintext, form = _open(payload["ciphertext"], key, allow_plaintext=False)
        try:
            if plaintext is None:
                raise TransferFailed(f"part {payload['index']} could not be decrypted with your key")
            incoming.write(payload["index"], plaintext)
        except TransferFailed as exc:
            return self._abort(incoming, self._interrupted_reason(incoming, exc.detail))
        except OSError as exc:
            return self._abort(incoming, f"cannot write the file: {exc.strerror}")
        now = incoming.last_activity = self._clock()
        if incoming.interrupted:
            incoming.interrupted = False
            return [
                Info(f"the transfer of {incoming.name} from {self.label(incoming.sender)} goes on after the reconnect"),
                _progress(
                    incoming.file_id, incoming.name, "receive", incoming.done, incoming.size, incoming.started, now
                ),
            ]
        if now - incoming.last_progress < self.progress_interval and incoming.done < incoming.size:
            return []
        incoming.last_progress = now
        return [
            _progress(incoming.file_id, incoming.name, "receive", incoming.done, incoming.size, incoming.started, now)
        ]

    def _on_file_end(self, envelope: Envelope) -> list[Event]:
        incoming = self._downloads.get(envelope.payload["file_id"])
        if incoming is None or incoming.complete:
            return []
        try:
            incoming.check()
        except TransferFailed as exc:
            return self._abort(incoming, self._interrupted_reason(incoming, exc.detail))
        except OSError as exc:
            return self._abort(incoming, f"cannot save the file: {exc.strerror}")
        if not incoming.accepted:
            return [Info(f"{incoming.name} ({human_bytes(incoming.size)}) from {self.label(incoming.sender)} "
                         f"arrived whole and checked; /accept {incoming.name} saves it, /reject "
                         f"{incoming.name} deletes it")]
        return self._place(incoming)

    def _place(self, incoming: IncomingFile) -> list[Event]:
        """A checked file gets its name in the downloads directory."""
        try:
            final = incoming.place(self.downloads_dir)
        except TransferFailed as exc:
            return self._abort(incoming, exc.detail)
        except OSError as exc:
            return self._abort(incoming, f"cannot save the file: {exc.strerror}")
        del self._downloads[incoming.file_id]
        return [
            FileReceived(
                incoming.file_id,
                incoming.sender,
                self.label(incoming.sender),
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
        found = [i for i in self._downloads.values()
                 if wanted in (i.name, i.file_id) or (len(wanted) >= 4 and i.file_id.startswith(wanted))]
        if not found:
            raise CommandError(f"no incoming file called {wanted!r} (/files shows them)")
        if len(found) > 1:
            raise CommandError(f"several incoming files match {wanted!r}; give the file id: "
                               + ", ".join(i.file_id for i in found))
        return found[0]

    def accept(self, wanted: str) -> list[Event]:
        """/accept: save an offered file now (it is complete) or once it is."""
        incoming = self._offered(wanted)
        if incoming.accepted:
            return [Info(f"{incoming.name} is accepted already; it is saved once complete")]
        incoming.accepted = True
        if incoming.complete:
            return self._place(incoming)
        return [Info(f"accepted {incoming.name} from {self.label(incoming.sender)}: saved once complete "
                     f"({human_bytes(incoming.done)} of {human_bytes(incoming.size)} so far)")]

    def reject(self, wanted: str) -> list[Event]:
        """/reject: drop an incoming file, what came of it deleted. The sender is not
        told (SOCP has no such frame): it sends on, and we ignore the rest."""
        incoming = self._offered(wanted)
        return self._abort(incoming, "you refused it (/reject); what had arrived was deleted")

    def incoming_transfers(self) -> tuple[Transfer, ...]:
        def state(incoming: IncomingFile) -> str:
            if incoming.complete:
                return "complete, waiting for /accept"
            if incoming.interrupted:
                return "cut by the lost connection, waiting for the rest"
            return "receiving" if incoming.accepted else "receiving, waiting for /accept"

        return tuple(Transfer(i.file_id, i.name, "receive", self.label(i.sender), i.done, i.size, state(i))
                     for i in self._downloads.values())

    def _interrupted_reason(self, incoming: IncomingFile, detail: str) -> str:
        if not incoming.interrupted:
            return detail
        return (
            f"interrupted at {human_bytes(incoming.done)} of {human_bytes(incoming.size)}: part of it was lost "
            f"while the connection was down ({detail}); the partial file was deleted; ask "
            f"{self.label(incoming.sender)} to send it again"
        )

    def expire_idle_downloads(self) -> list[Event]:
        """Drop the downloads whose sender has sent nothing for `download_idle_timeout`
        seconds (RESUME_GRACE after a lost connection; the driver calls this every few
        seconds); one FileFailed each."""
        now = self._clock()
        events: list[Event] = []
        for incoming in [i for i in self._downloads.values() if not i.complete]:
            if incoming.interrupted and now - incoming.last_activity > RESUME_GRACE:
                events += self._abort(
                    incoming,
                    f"interrupted at {human_bytes(incoming.done)} of "
                    f"{human_bytes(incoming.size)}: the connection to the server was "
                    f"lost and the rest did not come within {RESUME_GRACE:g} s of "
                    "reconnecting; the partial file was deleted; ask "
                    f"{self.label(incoming.sender)} to send it again",
                )
        limit = self.download_idle_timeout
        for incoming in [i for i in self._downloads.values()
                         if not i.complete and now - i.last_activity > limit]:
            idle = now - incoming.last_activity
            events += self._abort(
                incoming,
                f"the sender went silent (nothing for {idle:.1f} s, the limit is "
                f"{limit:g} s); the partial file was deleted",
            )
        return events

    def _abort(self, incoming: IncomingFile, reason: str) -> list[Event]:
        incoming.abort()
        self._downloads.pop(incoming.file_id, None)
        return self._fail(incoming.file_id, incoming.sender, incoming.name, reason)

    def _fail(self, file_id: str, sender: str, name: str, reason: str) -> list[Event]:
        self._failed_files[file_id] = None
        while len(self._failed_files) > MAX_FAILED_IDS:
            self._failed_files.popitem(last=False)
        return [FileFailed(file_id, sender, name, reason, label=self.label(sender) if sender else "")]

    def close(self) -> None:
        """Delete the temporary files of unfinished downloads."""
        for incoming in self._downloads.values():
            incoming.abort()
        self._downloads.clear()

    _HANDLERS: dict[str, Callable[[ClientSession, Envelope], list[Event]]] = {
        T.LIST_RESPONSE: _on_list,
        T.USER_LIST: _on_list,
        T.WHO: _on_list,
        T.DIRECTORY_ENTRY: _on_key_answer,
        T.PUBKEY_RESPONSE: _on_key_answer,
        T.USER_DB_USER: _on_key_answer,
        T.USER_ADVERTISE: _on_presence,
        T.USER_REMOVE: _on_presence,
        T.PUBLIC_CHANNEL_ADD: _on_membership,
        T.PUBLIC_CHANNEL_UPDATED: _on_membership,
        T.ERROR: _on_error,
        T.ACK: _on_ack,
        T.CTRL_CLOSE: _on_close,
        T.USER_DELIVER: _on_direct,
        T.MSG_DIRECT: _on_direct,
        T.MSG_PUBLIC_CHANNEL: _on_public,
        T.PUBLIC_CHANNEL_KEY_SHARE: _on_key_share,
        T.FILE_START: _on_file_start,
        T.FILE_CHUNK: _on_file_chunk,
        T.FILE_END: _on_file_end,
    }


# --- pure helpers ---------------------------------------------------------------------


def _verifies(verify: Callable[..., bool], *args: Any) -> bool:
    try:
        return verify(*args)
    except MalformedFrame:  # e.g. a ciphertext that is not base64url
        return False


def _open(
    ciphertext: str, key: crypto.PrivateKey | None, *, allow_plaintext: bool = True
) -> tuple[bytes | None, ContentForm]:
    """Decrypt whole OAEP blocks; else recognise a plaintext peer (§7.3 decision)."""
    try:
        raw = b64url_decode(ciphertext)
    except MalformedFrame:
        return (ciphertext.encode("utf-8", "replace"), "unencrypted") if allow_plaintext else (None, "undecryptable")
    if key is not None and raw and len(raw) % OAEP_BLOCK_BYTES == 0:
        try:
            return crypto.unwrap_blocks(key, raw), "encrypted"
        except SocpError:
            pass
    if allow_plaintext and len(raw) % OAEP_BLOCK_BYTES != 0:
        try:
            raw.decode("utf-8")
            return raw, "unencrypted"
        except UnicodeDecodeError:
            pass
    return None, "undecryptable"


def _decode(plaintext: bytes | None) -> str:
    return plaintext.decode("utf-8", errors="replace") if plaintext else ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _progress(
    file_id: str, name: str, direction: str, done: int, total: int, started: float, now: float
) -> FileProgress:
    elapsed = max(now - started, 1e-6)
    rate = done / elapsed
    eta = (total - done) / rate if rate > 0 else None
    return FileProgress(file_id, name, direction, done, total, rate, eta)  # type: ignore[arg-type]  # direction: "send" or "receive"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(FILE_READ_BUFFER):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["Actions", "ClientSession", "DirectoryEntry", "manifest_signed_bytes"]
