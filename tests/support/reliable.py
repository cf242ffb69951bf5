"""A raw SOCP user that behaves as the README asks of a client: it keeps every
acknowledged-type frame until an ACK covers it, re-sends unacknowledged frames after
a reconnect (or when no ACK came for RESEND_AFTER), reads every frame an ERROR names
(`msg_ref` and `msg_refs`), re-stamps a frame answered RESEND (a new ts and
content_sig, the same ciphertext), and counts deliveries by ciphertext so duplicates
are visible. For the chaos and shutdown tests."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from socp.protocol import crypto, frames, signing
from socp.protocol.acks import msg_ref, refs_named
from socp.protocol.envelope import parse

from .wsclient import RawUser, now_ms

RESEND_AFTER = 4.0


@dataclass
class Sent:
    ref: str
    text: str
    ciphertext: str
    sent_at: float
    acked_at: float | None = None
    refused: str = ""
    restamped_as: str = ""       # RESEND: the ref of the re-stamped copy that replaced it


@dataclass
class ReliableUser:
    raw: RawUser
    peer_id: str = ""
    peer_pub: str = ""
    sent: dict[str, Sent] = field(default_factory=dict)         # by msg_ref, in send order
    on_this_conn: list[str] = field(default_factory=list)       # refs in this connection's order
    delivered: Counter[str] = field(default_factory=Counter)    # ciphertext -> times received
    reconnects: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        await self.raw.connect()
        self.connected.set()

    def send_dm(self, counter: int) -> Sent:
        frame = self.raw.dm_to(self.peer_id, self.peer_pub, b"chaos %d" % counter)
        entry = Sent(msg_ref(frame), frame.to_wire(), frame.payload["ciphertext"], time.monotonic())
        self.sent[entry.ref] = entry
        return entry

    async def transmit(self, entry: Sent) -> None:
        self.on_this_conn.append(entry.ref)
        entry.sent_at = time.monotonic()
        try:
            await self.raw.send_text(entry.text)
        except ConnectionClosed:
            self.connected.clear()

    def unacked(self) -> list[Sent]:
        return [e for e in self.sent.values() if e.acked_at is None and not e.refused]

    async def read_forever(self) -> None:
        while True:
            await self.connected.wait()
            try:
                text = await self.raw.socket.recv()
            except ConnectionClosed:
                self.connected.clear()
                continue
            frame = parse(text)
            if frame.type == "ACK":
                self._acked(frame.payload.get("msg_ref", ""))
            elif frame.type == "ERROR":
                for ref in refs_named(frame.payload):
                    if ref in self.sent:
                        await self._refused(self.sent[ref], frame.payload.get("code", "?"))
            elif frame.type == "USER_DELIVER":
                self.delivered[frame.payload["ciphertext"]] += 1

    async def _refused(self, entry: Sent, code: str) -> None:
        if code == "REPLAY":                # a re-send of a frame already handed on
            entry.acked_at = entry.acked_at or time.monotonic()
            return
        entry.refused = code
        if code == "RESEND" and not entry.restamped_as:
            # The node restarted after a crash and cannot tell this frame from a copy.
            again = self.restamp(entry)
            entry.restamped_as = again.ref
            await self.transmit(again)

    def restamp(self, entry: Sent) -> Sent:
        """The same ciphertext under a fresh ts (and so a new content_sig and msg_ref)."""
        raw = self.raw
        ts = now_ms()
        sig = signing.sign_dm(raw.key, entry.ciphertext, raw.user_id, self.peer_id, ts)
        frame = frames.msg_direct(raw.user_id, self.peer_id, ts, entry.ciphertext, raw.pubkey, sig)
        again = Sent(msg_ref(frame), frame.to_wire(), entry.ciphertext, time.monotonic())
        self.sent[again.ref] = again
        return again

    def _acked(self, ref: str) -> None:
        """Cumulative: `ref` and every frame sent before it on this connection."""
        if ref not in self.on_this_conn:
            return
        upto = len(self.on_this_conn) - 1 - self.on_this_conn[::-1].index(ref)
        now = time.monotonic()
        for covered in self.on_this_conn[: upto + 1]:
            entry = self.sent[covered]
            if entry.acked_at is None and not entry.refused:   # an ERROR named it: not covered
                entry.acked_at = now
        del self.on_this_conn[: upto + 1]

    async def keep_connected(self, stop: asyncio.Event) -> None:
        """Reconnect when the socket drops; then re-send everything unacknowledged. Also
        re-send frames that waited RESEND_AFTER for an ACK (a router restarted)."""
        while not stop.is_set():
            if not self.connected.is_set():
                try:
                    await self.raw.connect()
                except (OSError, InvalidHandshake, TimeoutError):
                    await asyncio.sleep(0.2)
                    continue
                self.reconnects += 1
                self.on_this_conn.clear()
                self.connected.set()
                for entry in self.unacked():
                    await self.transmit(entry)
            else:
                now = time.monotonic()
                for entry in self.unacked():
                    if now - entry.sent_at > RESEND_AFTER:
                        await self.transmit(entry)
            await asyncio.sleep(0.2)


def hello_key(user: RawUser) -> str:
    return crypto.encode_public_key(user.key)


__all__ = ["ReliableUser", "Sent", "frames", "signing", "now_ms", "websockets"]
