"""Texts between users: DMs (§7.2) and the public channel (§7.3), both ways.

Out: one frame per ≤446-byte part (the long-text decision: each part its own OAEP
block and content_sig, joined by `payload.part`), public posts after the key shares
their readers lack. In: each content_sig checked on the one verify path
(verify.py), the sender's key pinned (keyring.py), the text decrypted, parts
joined, and a re-stamped copy of a message already shown dropped.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_decode, b64url_encode
from socp.protocol.envelope import Envelope
from socp.protocol.errors import MalformedFrame, SocpError
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import PUBLIC_CHANNEL, is_peer_id, new_id
from socp.protocol.limits import OAEP_BLOCK_BYTES
from socp.protocol.text import split_utf8

from . import verify
from .channel_keys import ChannelKeyRing
from .commands import CommandError
from .events import (
    Channel,
    ChannelKeyReceived,
    ContentForm,
    Event,
    Info,
    MessageReceived,
    MessageRejected,
    MessageSent,
)
from .keyring import TrustedKeys
from .outbox import Outbox, Tracked
from .roster import Directory
from .user_identity import Identity

KEY_SHARES_PER_FRAME = 32          # ~4 KiB each: keeps a share frame far below 1 MiB
MAX_PENDING_SPLIT_MESSAGES = 128   # partial long texts kept while their parts arrive
MAX_SEEN_DELIVERIES = 4096   # (sender, ciphertext digest) of messages shown, to drop re-sent copies


@dataclass(frozen=True, slots=True)
class Actions:
    """What a local command produced: frames for the server, events for the user."""

    frames: tuple[Envelope, ...] = ()
    events: tuple[Event, ...] = ()
    # A file's step before its FILE_END: the sender waits until the node has taken
    # (ACKed) every part of file `settle` sent so far, sending again the ones it refused
    # for its load, so that the FILE_END never overtakes a part (file_sender.py).
    settle: str = ""


@dataclass(slots=True)
class _SplitMessage:
    """Parts of one long text (payload.part) collected until all have arrived."""

    count: int
    ts: int
    parts: dict[int, bytes] = field(default_factory=dict)
    forms: set[str] = field(default_factory=set)
    trusted: bool = True


class Messages:
    def __init__(self, me: Identity, users: Directory, keys: TrustedKeys, channel_keys: ChannelKeyRing,
                 outbox: Outbox) -> None:
        self._me = me
        self._users = users
        self._keys = keys
        self._channel_keys = channel_keys
        self._outbox = outbox
        self._split: OrderedDict[tuple[str, str, str], _SplitMessage] = OrderedDict()
        # Deliveries already shown, by (sender, ciphertext digest): a message sent again
        # after a reconnect or a RESEND keeps its ciphertext (README, "recovery").
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()   # -> the ts first shown

    def reset(self) -> None:
        """A new connection: parts of long texts still missing will not come."""
        self._split.clear()

    # --- out --------------------------------------------------------------------------

    def tell(self, target: str, text: str) -> Actions:
        """§7.2 and the long-text decision: one MSG_DIRECT per ≤446-byte part."""
        me = self._me
        recipient = self._users.resolve(target)
        if recipient == me.user_id:
            raise CommandError("that is you")
        key = self._keys.for_sending(recipient)
        parts = split_utf8(text)
        part_id = new_id() if len(parts) > 1 else None
        out = []
        for index, data in enumerate(parts):
            ts = me.now_ms()
            ciphertext = b64url_encode(crypto.oaep_encrypt(key, data))
            content_sig = signing.sign_dm(me.user_key, ciphertext, me.user_id, recipient, ts)
            part = {"id": part_id, "index": index, "count": len(parts)} if part_id else None
            frame = me.sign(frames.msg_direct(me.user_id, recipient, ts, ciphertext, me.pubkey, content_sig,
                                              part=part))
            self._outbox.track(Tracked(frame, part_id or "", "dm", recipient, text))
            out.append(frame)
        sent = MessageSent(recipient=recipient, label=self._users.label(recipient), channel="dm", text=text,
                           parts=len(parts), message_id=part_id)
        return Actions(frames=tuple(out), events=(sent,))

    def key_shares(self) -> Actions:
        """§7.3: give our channel sending key to every member that lacks it."""
        me, label = self._me, self._users.label
        pending, skipped = [], []
        for uid in sorted(self._users.users):
            if uid == me.user_id or uid in self._channel_keys.shared_with:
                continue
            if uid in self._keys.changed:
                skipped.append(uid)
            elif uid in self._keys.trusted:
                pending.append(uid)
        events: list[Event] = [
            Info(f"not sharing the channel key with {label(uid)}: its key changed (/whois, /trust)")
            for uid in skipped
        ]
        if not pending:
            return Actions(events=tuple(events))
        own_der = crypto.private_key_der(self._channel_keys.own())
        out = []
        for start in range(0, len(pending), KEY_SHARES_PER_FRAME):
            batch = pending[start : start + KEY_SHARES_PER_FRAME]
            shares = [
                {"member": uid,
                 "wrapped_public_channel_key": b64url_encode(
                     crypto.wrap_blocks(crypto.decode_public_key(self._keys.trusted[uid]), own_der))}
                for uid in batch
            ]
            content_sig = signing.sign_key_share(me.user_key, shares, me.pubkey)
            out.append(me.sign(frames.public_channel_key_share(me.user_id, me.now_ms(), shares, me.pubkey,
                                                               content_sig)))
        self._channel_keys.shared_with.update(pending)
        return Actions(frames=tuple(out), events=tuple(events))

    def post_public(self, text: str) -> Actions:
        """§7.3: key shares first, then one OAEP block per part under our sending key."""
        me = self._me
        shares = self.key_shares()
        channel_pub = self._channel_keys.own().public_key()
        parts = split_utf8(text)
        part_id = new_id() if len(parts) > 1 else None
        out = list(shares.frames)
        for index, data in enumerate(parts):
            ts = me.now_ms()
            ciphertext = b64url_encode(crypto.oaep_encrypt(channel_pub, data))
            content_sig = signing.sign_public(me.user_key, ciphertext, me.user_id, ts)
            part = {"id": part_id, "index": index, "count": len(parts)} if part_id else None
            frame = me.sign(frames.msg_public_channel(me.user_id, ts, ciphertext, me.pubkey, content_sig,
                                                      part=part))
            self._outbox.track(Tracked(frame, part_id or "", "public", PUBLIC_CHANNEL, text))
            out.append(frame)
        sent = MessageSent(recipient=PUBLIC_CHANNEL, label=PUBLIC_CHANNEL, channel="public", text=text,
                           parts=len(parts), message_id=part_id)
        return Actions(frames=tuple(out), events=(*shares.events, sent))

    # --- in ---------------------------------------------------------------------------

    def on_direct(self, envelope: Envelope) -> list[Event]:
        """§7.2: USER_DELIVER (or a peer's MSG_DIRECT passed on unchanged)."""
        me = self._me
        if envelope.type == T.USER_DELIVER:
            # Interop table: payload.sender, else payload.from, else the envelope `from`
            # when it is not a server (G101 puts the sender user there). G56 puts its own
            # id there and no sender: then the owner of sender_pub, whose content_sig
            # over its own id must still verify below.
            sender = frames.deliver_sender(envelope, self._users.server_ids) or self.owner_of_key(
                envelope.payload.get("sender_pub"))
        else:
            sender = envelope.from_
        if not sender:
            return [MessageRejected("", "dm", "the frame does not say who sent it", envelope.ts)]
        payload = envelope.payload
        dm_claims = verify.dm_claims(payload, sender, me.user_id, envelope.ts)
        # G101 fans public messages out as USER_DELIVER to each member, signed as public ones.
        fanned_out = verify.public_claims(payload, sender, envelope.ts) if envelope.type == T.USER_DELIVER else []
        checked = self._signed_by_sender(envelope, sender, "dm", dm_claims + fanned_out)
        if isinstance(checked, MessageRejected):
            return [checked]
        key_text, claim = checked
        if claim not in dm_claims:   # a claim equals only itself: each has its own forms
            return self._public_message(sender, envelope.ts, key_text, payload)
        ciphertext = payload["ciphertext"]
        if self._seen_before(sender, ciphertext, claim.ts):
            return []
        trusted, events = self._keys.check(sender, key_text)
        plaintext, form = open_sealed(ciphertext, me.user_key)
        return events + self._message(sender, "dm", claim.ts, plaintext, form, trusted, payload.get("part"))

    def on_public(self, envelope: Envelope) -> list[Event]:
        """§7.3: verify over ciphertext‖from‖ts, decrypt with the sender's channel key."""
        sender, ts = self._public_sender(envelope)
        if sender == self._me.user_id:
            return []
        payload = envelope.payload
        checked = self._signed_by_sender(envelope, sender, "public", verify.public_claims(payload, sender, ts))
        if isinstance(checked, MessageRejected):
            return [checked]
        key_text, _ = checked
        return self._public_message(sender, ts, key_text, payload)

    def on_plain_public(self, envelope: Envelope) -> list[Event]:
        """A plaintext public message from a peer client (G45: payload {channel, text,
        from, ts, sender_pub, content_sig}, signed over the canonical JSON of the first
        four): shown flagged as unencrypted, and as verified only if that signature holds."""
        payload = envelope.payload
        sender, ts = self._public_sender(envelope)
        if sender == self._me.user_id:
            return []
        text = payload["text"]
        key_text = verify.claimed_key(payload, self._keys.get(sender))
        verified, trusted, events = False, False, list[Event]()
        if key_text:
            try:
                key = crypto.decode_public_key(key_text)
            except SocpError:
                key = None
            verified = key is not None and verify.verified_claim(
                key, payload.get("content_sig"), verify.plain_public_claims(payload, ts)) is not None
            if verified:
                trusted, events = self._keys.check(sender, key_text)
        return events + [
            MessageReceived(sender, self._users.label(sender), text, ts, "public", verified, trusted, "unencrypted")
        ]

    def on_key_share(self, envelope: Envelope) -> list[Event]:
        """§7.3: a sender key wrapped for us; verified with creator_pub, then stored."""
        payload = envelope.payload
        mine = [s for s in payload["shares"] if s["member"] == self._me.user_id]
        if not mine:
            return []
        creator_pub = payload["creator_pub"]
        creator_key = crypto.decode_public_key(creator_pub)
        creator_fp = crypto.fingerprint(creator_key)
        owner = self._users.owner_of(envelope.from_, creator_fp)
        if not verify.verified_claim(creator_key, payload["content_sig"],
                                     verify.key_share_claims(payload["shares"], creator_pub, envelope.ts)):
            return [MessageRejected(owner or creator_fp, "public", "key share signature does not verify", envelope.ts)]
        events: list[Event] = []
        if owner:
            events.extend(self._keys.check(owner, creator_pub)[1])
        wrapped = mine[-1]["wrapped_public_channel_key"]
        try:
            channel_key = crypto.load_private_key_der(crypto.unwrap_blocks(self._me.user_key, b64url_decode(wrapped)))
        except SocpError as exc:
            return events + [
                MessageRejected(owner or creator_fp, "public", f"key share unusable: {exc.detail}", envelope.ts)
            ]
        self._channel_keys.store_peer(creator_fp, wrapped, channel_key)
        label = self._users.label(owner) if owner else creator_fp
        return events + [ChannelKeyReceived(owner or creator_fp, label, creator_fp)]

    def _signed_by_sender(self, envelope: Envelope, sender: str, channel: Channel,
                          claims: list[verify.Claim]) -> tuple[str, verify.Claim] | MessageRejected:
        """The check every DM and sealed public message passes (verify.py): the sender's
        key (the one the frame carries, else the one we know) and the first of `claims`
        its content_sig holds under that key; or why the message is rejected."""
        key_text = verify.claimed_key(envelope.payload, self._keys.get(sender))
        if not key_text:
            return MessageRejected(sender, channel, "no key known for the sender", envelope.ts)
        claim = verify.verified_claim(crypto.decode_public_key(key_text), envelope.payload["content_sig"], claims)
        if claim is None:
            return MessageRejected(sender, channel, "content signature does not verify", envelope.ts)
        return key_text, claim

    def owner_of_key(self, key_text: Any) -> str:
        """The user (we included) whose key this is, "" if none we know."""
        return self._keys.owner_of_key(key_text, (self._me.user_id, self._me.fingerprint))

    def _public_sender(self, envelope: Envelope) -> tuple[str, int]:
        """Who sent a public message, and the ts its content_sig covers. We keep the
        sender's envelope (§7.3 decision); a server that re-wraps it in its own (G45)
        leaves payload.from / payload.ts, or at least the sender's key."""
        payload = envelope.payload
        named = payload.get("from")
        sender: str = named if isinstance(named, str) and is_peer_id(named) else envelope.from_
        ts: int = payload["ts"] if isinstance(payload.get("ts"), int) and "from" in payload else envelope.ts
        if sender in self._users.server_ids:
            sender = self.owner_of_key(payload.get("sender_pub")) or sender
        return sender, ts

    def _public_message(self, sender: str, ts: int, key_text: str, payload: dict[str, Any]) -> list[Event]:
        """A public message whose content_sig verified with `key_text`: decrypt with the
        sender's channel key."""
        if sender == self._me.user_id:
            return []
        if self._seen_before(sender, payload["ciphertext"], ts):
            return []
        trusted, events = self._keys.check(sender, key_text)
        channel_key = self._channel_keys.peer(crypto.fingerprint(key_text))
        plaintext, form = open_sealed(payload["ciphertext"], channel_key)
        return events + self._message(sender, "public", ts, plaintext, form, trusted, payload.get("part"))

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

    def _message(self, sender: str, channel: Channel, ts: int, plaintext: bytes | None, form: ContentForm,
                 trusted: bool, part: Any) -> list[Event]:
        """One frame's text; parts of a long text wait for their siblings (§2 decision)."""
        label = self._users.label(sender)
        if not (
            isinstance(part, dict)
            and isinstance(part.get("id"), str)
            and isinstance(part.get("count"), int)
            and part["count"] > 1
        ):
            return [MessageReceived(sender, label, _decode(plaintext), ts, channel, True, trusted, form)]
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
        return [MessageReceived(sender, label, text, pending.ts, channel, True, pending.trusted, worst,
                                parts=count, message_id=part["id"])]


def open_sealed(
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
