"""The client's protocol core: no sockets, no asyncio (STYLE §1).

`ClientSession` is what the drivers (`connection.py` and its parts, `script.py`, the
TUI) hold: the parts below, one per concern, each with its own state, which the
drivers and tests use directly (`session.messages.tell(...)`,
`session.incoming_files.accept(...)`, `session.users.resolve(...)`). The session
itself keeps only what no single part owns: the connection's life (lost, reset,
reconnected: each part told what concerns it), the connection's own frames (the
hello, LOGIN_REGISTER, CTRL_CLOSE), the incoming frame path (the server's
signature on each frame, then the part that reads its type), the ACKs and ERRORs
about our frames (outbox.py), and the few user commands that read several parts
(/whois, /trust). Tests pair sessions in memory through a fake node.

  user_identity.py   me: who we are (user id, key, clock)
  keyring.py         keys: TOFU, each user's key fingerprint pinned on first sight
  roster.py          users: who is on the server, display names, the server's
                     dialect (which list request and key look-up it answers), /list pages
  outbox.py          outbox: the frames we sent and what became of them
  chat_messages.py   messages: §7.2, §7.3 DMs and public messages, both ways; long
                     texts over 446 UTF-8 bytes travel as several frames (§2 decision)
  incoming_files.py  incoming_files: §7.4 files to us: offer, chunks, check, name,
                     resume grace
  outgoing_files.py  outgoing_files: §7.4 files we send, streamed; what became of them
  verify.py          the one path that checks every content_sig (DMs, public
                     messages, key shares, file manifests; chunks via the manifest)

§10 project frames: LOGIN_REGISTER (our encrypted key for password login) and its
ACK / ERROR (docs/store-and-login.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from socp.protocol import acks, crypto, frames, signing
from socp.protocol import login as login_values
from socp.protocol.encoding import b64url_encode, canonical_json
from socp.protocol.envelope import Envelope, load_json, parse_obj
from socp.protocol.errors import InvalidSignature, MalformedFrame, SocpError
from socp.protocol.frame_types import KNOWN_TYPES
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import BROADCAST, is_peer_id, is_uuid4

from . import dialects
from .channel_keys import ChannelKeyRing
from .chat_messages import Messages
from .events import (
    ErrorReceived,
    Event,
    Info,
    LoginRegistered,
    LoginRegisterFailed,
    NotDelivered,
    PartsToRetry,
    Restamped,
    WhoisResult,
)
from .incoming_files import DEFAULT_AUTO_ACCEPT_BYTES, DEFAULT_MAX_FILE_BYTES, DOWNLOAD_IDLE_TIMEOUT, IncomingFiles
from .keyring import TrustedKeys
from .outbox import Outbox, Refusal, Tracked, retry_pause
from .outgoing_files import OutgoingFiles, sign_manifest
from .roster import Directory
from .trust import PinStore
from .user_identity import Identity

CLIENT_NAME = "socp-cli"
# The same server ERROR (code and detail) again within this many seconds is counted,
# not shown: a node that gives up on a backlog answers once per frame.
REPEATED_ERROR_WINDOW = 10.0
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
        self.me = Identity(user_id, user_key, display_name, clock)
        self.pins = pins if pins is not None else PinStore()
        self.channel_keys = channel_keys if channel_keys is not None else ChannelKeyRing(crypto.generate_private_key)
        self.server_key = server_key
        self.keys = TrustedKeys(self.pins, label=lambda user_id: self.users.label(user_id))
        self.users = Directory(self.me, self.keys)
        # Frames we sent and what became of them (ACK, ERROR naming them: outbox.py).
        self.outbox = Outbox()
        self.messages = Messages(self.me, self.users, self.keys, self.channel_keys, self.outbox)
        self.incoming_files = IncomingFiles(
            self.me, self.users, self.keys, self.channel_keys,
            downloads_dir=Path(downloads_dir) if downloads_dir is not None else Path("downloads"),
            max_file_bytes=max_file_bytes, auto_accept_bytes=auto_accept_bytes,
            progress_interval=progress_interval, download_idle_timeout=download_idle_timeout)
        self.outgoing_files = OutgoingFiles(
            self.me, self.users, self.keys, self.channel_keys, self.outbox, self.messages,
            progress_interval=progress_interval, sign_file_chunks=sign_file_chunks, chunk_blocks=chunk_blocks)
        self.login_register_pending = False              # a LOGIN_REGISTER awaits its ACK or ERROR
        self.hello_signs_envelope = False                # G101: sign the hello's whole envelope
        self.registers_g17_style = False                 # the server greeted us with CLIENT_WELCOME (G17)
        self._unconfirmed: list[Tracked] = []            # messages to send again after a reconnect
        self._last_error: tuple[str, str, float, int] | None = None   # (code, detail, shown at, repeats since)
        self._frame_handlers = self._handlers()

    # --- the connection -----------------------------------------------------------------

    def connection_lost(self, *, resumable: bool = False) -> list[Event]:
        """The connection ended: say what it interrupted (issue #16: nothing vanishes
        silently). Downloads in progress wait RESUME_GRACE seconds for the rest when
        the driver reconnects (`resumable`: a server may still carry it, and a gap
        fails the file at once), else they are dropped and reported; files we were
        sending, or whose "sent" waited for the server's ACK, go on after the
        reconnect (`resumable`, file_resume.py) or are reported as failed; messages the
        server had not acknowledged are kept to send again after a reconnect
        (`take_unconfirmed`), byte for byte: a server that has them answers REPLAY,
        and receivers drop a copy they already showed."""
        events = self.incoming_files.connection_lost(resumable=resumable)
        unconfirmed = self.outbox.connection_reset()
        events += self.outgoing_files.connection_lost(resumable=resumable)
        if self.outbox.server_acks:
            self._unconfirmed = [t for t in unconfirmed if t.kind in ("dm", "public")]
        return events

    def reconnected(self) -> None:
        """A new connection is up: the downloads waiting to resume get their grace from now."""
        self.incoming_files.reconnected()

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
        self.users.reset()
        self.login_register_pending = False
        self.incoming_files.reset()
        self.messages.reset()

    def close(self) -> None:
        """Delete the temporary files of unfinished downloads."""
        self.incoming_files.close()

    # --- the connection's own frames ----------------------------------------------------

    def hello(self, server_id: str | None = None) -> Envelope:
        """§7.1, interop table: signed over the canonical payload, `to` = "*". A server
        that checks the signature over the envelope minus `sig` (G101) refuses that;
        after such a refusal `hello_signs_envelope` is set and the hello is signed so."""
        me = self.me
        hello = frames.user_hello(me.user_id, server_id, me.now_ms(), me.pubkey,
                                  client=CLIENT_NAME, display_name=me.display_name or None)
        if not self.hello_signs_envelope:
            return me.sign(hello)
        whole = hello.to_dict()
        del whole["sig"]
        return hello.with_sig(b64url_encode(crypto.sign_pss(me.user_key, canonical_json(whole))))

    def login_register(self, registration: login_values.Registration) -> Envelope:
        """LOGIN_REGISTER: our key encrypted under the password, and the password
        verifier (`socp.protocol.login.register`, run by the driver: it is scrypt).
        Valid only on a connection opened with a signed hello, which ours always is."""
        me = self.me
        self.login_register_pending = True
        server = self.users.server_id or BROADCAST
        if self.registers_g17_style:
            return me.sign(Envelope(G17_REGISTER, me.user_id, server, me.now_ms(),
                                    {"pubkey": me.pubkey, "privkey_store": registration.privkey_store,
                                     "pake_password": registration.pake_password}))
        return me.sign(frames.login_register(me.user_id, server, me.now_ms(), registration.privkey_store,
                                             registration.pake_password))

    def close_frame(self) -> Envelope:
        return frames.ctrl_close(self.me.user_id, BROADCAST, self.me.now_ms())

    # --- what reads several parts -------------------------------------------------------

    def knows_key(self, target: str) -> bool:
        """True when `target` resolves to a user whose key we have (no /list needed)."""
        try:
            user_id = self.users.resolve(target)
        except SocpError:
            return False
        return self.keys.knows(user_id)

    def whois(self, target: str) -> WhoisResult:
        uid = self.users.resolve(target)
        entry = self.users.entry(uid)
        me = self.me
        if uid == me.user_id:
            return WhoisResult(uid, me.display_name or uid, me.display_name, entry.server_id,
                               me.fingerprint, me.fingerprint, True)
        seen = self.keys.seen(uid) or entry.pubkey
        seen_fp = crypto.fingerprint(seen) if seen else ""
        pinned = self.pins.get(uid) or ""
        return WhoisResult(uid, self.users.label(uid), entry.display_name, entry.server_id, seen_fp, pinned,
                           trusted=bool(pinned) and uid not in self.keys.changed)

    def trust(self, target: str) -> list[Event]:
        uid = self.users.resolve(target)
        fp = self.keys.accept_changed(uid)
        if fp is None:
            return [Info(f"{self.users.label(uid)}: nothing to accept, the pinned key is in use")]
        self.channel_keys.shared_with.discard(uid)  # share our channel key with the new key
        return [Info(f"{self.users.label(uid)}: now trusting key {fp}")]

    # --- incoming frames ----------------------------------------------------------------

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
            if self._needs_server_signature(frame_type):
                # The signature covers the payload as the server wrote it.
                refused = self._unsigned_by_server(parse_obj(fields))
                if refused:
                    return refused
            fields["payload"] = dialects.readable_payload(str(frame_type), fields.get("payload"))
            if dialects.is_plain_public(fields):
                return self.messages.on_plain_public(dialects.parse_plain_public(fields))
            envelope = parse_obj(fields)
        except SocpError as exc:
            return [ErrorReceived(exc.code.value, f"dropped a frame from the server: {exc.detail}", "client")]
        return self._dispatch(envelope)

    def handle_envelope(self, envelope: Envelope) -> list[Event]:
        """One parsed frame from the server -> its events; dropped unless the server signed it."""
        if self._needs_server_signature(envelope.type):
            refused = self._unsigned_by_server(envelope)
            if refused:
                return refused
        return self._dispatch(envelope)

    def _needs_server_signature(self, frame_type: object) -> bool:
        """Once the server's key is known, every frame but its CTRL_CLOSE must be signed by it."""
        return self.server_key is not None and frame_type != T.CTRL_CLOSE

    def _unsigned_by_server(self, envelope: Envelope) -> list[Event]:
        """The one check of the server's signature on a frame: [] if it holds, else the
        event that says the frame was dropped."""
        assert self.server_key is not None   # _needs_server_signature said so
        try:
            signing.verify_transport(self.server_key, envelope)
        except InvalidSignature as exc:
            return [ErrorReceived("INVALID_SIG", f"dropped {envelope.type}: {exc.detail}", "client")]
        return []

    def _dispatch(self, envelope: Envelope) -> list[Event]:
        """A frame whose signature held (or needs none) -> the part that reads its type."""
        handler = self._frame_handlers.get(envelope.type)
        if handler is None:
            return []
        try:
            return handler(envelope)
        except SocpError as exc:
            return [ErrorReceived(exc.code.value, f"dropped {envelope.type}: {exc.detail}", "client")]

    def _handlers(self) -> dict[str, Callable[[Envelope], list[Event]]]:
        """Which part reads each frame type."""
        users, messages, files = self.users, self.messages, self.incoming_files
        return {
            T.LIST_RESPONSE: users.on_list,
            T.USER_LIST: users.on_list,
            T.WHO: users.on_list,
            T.DIRECTORY_ENTRY: users.on_key_answer,
            T.PUBKEY_RESPONSE: users.on_key_answer,
            T.USER_DB_USER: users.on_key_answer,
            T.USER_ADVERTISE: users.on_presence,
            T.USER_REMOVE: users.on_presence,
            T.PUBLIC_CHANNEL_ADD: users.on_membership,
            T.PUBLIC_CHANNEL_UPDATED: users.on_membership,
            T.ERROR: self._on_error,
            T.ACK: self._on_ack,
            T.CTRL_CLOSE: self._on_close,
            T.USER_DELIVER: messages.on_direct,
            T.MSG_DIRECT: messages.on_direct,
            T.MSG_PUBLIC_CHANNEL: messages.on_public,
            T.PUBLIC_CHANNEL_KEY_SHARE: messages.on_key_share,
            T.FILE_START: files.on_file_start,
            T.FILE_CHUNK: files.on_file_chunk,
            T.FILE_END: files.on_file_end,
        }

    def _on_unknown_type(self, frame_type: str, raw: dict[str, Any]) -> list[Event]:
        """A type outside the reference: G17's CLIENT_WELCOME {server_id} names our
        server; anything else is ignored (a peer's extension is not an error)."""
        payload = raw.get("payload")
        if frame_type == "CLIENT_WELCOME" and isinstance(payload, dict) and is_peer_id(payload.get("server_id")):
            self.users.note_server(payload["server_id"])
            self.registers_g17_style = True
        return []

    def _on_error(self, envelope: Envelope) -> list[Event]:
        code, detail = dialects.error_fields(envelope.payload)
        refs = acks.refs_named(envelope.payload)
        if refs and any(self.outbox.knows(ref) for ref in refs):
            return self._on_refusal(refs, code, detail)
        if self.users.refused_probe(code, detail):
            return []   # a list request or key look-up this server does not know: expected, not shown
        if self.login_register_pending and code in LOGIN_REGISTER_REFUSALS:
            self.login_register_pending = False
            return [LoginRegisterFailed(code, detail)]
        return self.outgoing_files.lost_downstream(detail, code) + self._unless_repeated(code, detail)

    def _unless_repeated(self, code: str, detail: str) -> list[Event]:
        """The server's ERROR, unless the same one was shown less than
        REPEATED_ERROR_WINDOW seconds ago (then counted, and the count said with the
        next one shown)."""
        now = self.me.now()
        last = self._last_error
        if last is not None and last[:2] == (code, detail) and now - last[2] < REPEATED_ERROR_WINDOW:
            self._last_error = (code, detail, last[2], last[3] + 1)
            return []
        events: list[Event] = []
        if last is not None and last[3]:
            events.append(Info(f"the server repeated its last error ({last[0]}) {last[3]} more time(s)"))
        self._last_error = (code, detail, now, 0)
        return events + [ErrorReceived(code, detail, "server")]

    def _on_refusal(self, refs: list[str], code: str, detail: str) -> list[Event]:
        """An ERROR naming frames of ours: RESEND ones go again re-stamped (once), file
        parts refused for the node's load go again after a pause (outbox.py), the
        others make their message "not delivered", said once per message."""
        outcome = self.outbox.refused(refs, code, detail)
        events: list[Event] = [self._not_delivered(refusal) for refusal in outcome.refusals]
        if outcome.resend:
            events.append(Restamped(tuple(self._restamp(tracked) for tracked in outcome.resend)))
        if outcome.retry:
            for tracked in outcome.retry:
                self.outgoing_files.part_refused(tracked.message, tracked.frame.payload["index"])
            events.append(PartsToRetry(tuple(self._restamp(tracked, retry=True) for tracked in outcome.retry),
                                       retry_pause(detail), code))
        return events

    def _not_delivered(self, refusal: Refusal) -> NotDelivered:
        tracked = refusal.tracked
        if tracked.kind == "file":
            self.outgoing_files.refused(tracked.message)
        return NotDelivered(tracked.kind, tracked.recipient, self.users.label(tracked.recipient), tracked.summary,
                            refusal.code, refusal.detail, tracked.message if tracked.kind == "file" else "")

    def _restamp(self, tracked: Tracked, *, retry: bool = False) -> Envelope:
        """ERROR RESEND (README, "Acknowledgements and recovery"): the same frame under
        a fresh ts, so new signatures and a new msg_ref; the ciphertext is kept, so a
        recipient can drop a copy it already has."""
        me = self.me
        old, ts = tracked.frame, me.now_ms()
        payload = dict(old.payload)
        if old.type == T.MSG_DIRECT:
            payload["content_sig"] = signing.sign_dm(me.user_key, payload["ciphertext"], old.from_, old.to, ts)
        elif old.type == T.MSG_PUBLIC_CHANNEL:
            payload["content_sig"] = signing.sign_public(me.user_key, payload["ciphertext"], old.from_, ts)
        elif old.type == T.FILE_START and "content_sig" in payload:
            payload["content_sig"] = sign_manifest(me, payload, old.to, ts)
        frame = Envelope(type=old.type, from_=old.from_, to=old.to, ts=ts, payload=payload, sig=old.sig)
        if payload != old.payload:
            frame = me.sign(frame)     # the transport sig covers the payload only
        again = replace(tracked, frame=frame, retries=tracked.retries + 1) if retry else \
            replace(tracked, frame=frame, restamped=True)
        new_ref = self.outbox.track(again)
        self.outgoing_files.restamped(acks.msg_ref(old), new_ref)
        return frame

    def _on_ack(self, envelope: Envelope) -> list[Event]:
        if is_peer_id(envelope.from_) and envelope.from_ != self.me.user_id:
            self.users.server_ids.add(envelope.from_)
        ref = envelope.payload.get("msg_ref")
        if isinstance(ref, str):
            done = self.outgoing_files.acked(self.outbox.acked(ref))
            if done:
                return done
        if envelope.payload.get("msg_ref") in (LOGIN_REGISTER_ACK, G17_REGISTER_ACK) and self.login_register_pending:
            self.login_register_pending = False
            return [LoginRegistered(envelope.from_)]
        return []

    def _on_close(self, envelope: Envelope) -> list[Event]:
        return [Info("the server is closing the connection")]


__all__ = ["ClientSession"]
