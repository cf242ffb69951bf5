"""A raw SOCP user over a real WebSocket, for end-to-end tests (no client library)."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field

import websockets
from websockets.asyncio.client import ClientConnection

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_decode, b64url_encode
from socp.protocol.envelope import Envelope, parse
from socp.protocol.ids import new_id


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class RawUser:
    url: str
    key: crypto.PrivateKey
    user_id: str = field(default_factory=new_id)
    socket: ClientConnection | None = None
    inbox: list[Envelope] = field(default_factory=list)
    ssl_context: ssl.SSLContext | None = None   # for a wss:// url with a private CA

    @property
    def pubkey(self) -> str:
        return crypto.encode_public_key(self.key)

    async def connect(self, display_name: str | None = None, hello: bool = True) -> RawUser:
        self.socket = await websockets.connect(self.url, compression=None, max_size=8 * 1024 * 1024, open_timeout=10,
                                               ssl=self.ssl_context)
        if hello:
            frame = frames.user_hello(self.user_id, None, now_ms(), self.pubkey, display_name=display_name)
            await self.send(signing.sign_envelope(self.key, frame))
        return self

    async def send(self, frame: Envelope) -> None:
        assert self.socket is not None
        await self.socket.send(frame.to_wire())

    async def send_text(self, text: str) -> None:
        assert self.socket is not None
        await self.socket.send(text)

    async def receive(self, frame_type: str | None = None, timeout: float = 10.0,
                      where: object = None) -> Envelope:
        """The next frame of `frame_type` (earlier others are kept in `inbox`)."""
        for index, frame in enumerate(self.inbox):
            if (frame_type is None or frame.type == frame_type) and (where is None or where(frame)):
                return self.inbox.pop(index)
        assert self.socket is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"{frame_type} not received; got {[f.type for f in self.inbox]}")
            text = await asyncio.wait_for(self.socket.recv(), remaining)
            frame = parse(text)
            if (frame_type is None or frame.type == frame_type) and (where is None or where(frame)):
                return frame
            self.inbox.append(frame)

    async def nothing_of(self, frame_type: str, wait: float = 1.0) -> bool:
        try:
            await self.receive(frame_type, timeout=wait)
        except TimeoutError:
            return True
        return False

    async def list_users(self) -> Envelope:
        await self.send(frames.list_request(self.user_id, "*", now_ms()))
        return await self.receive("LIST_RESPONSE")

    def dm_to(self, recipient_id: str, recipient_pub: str, text: bytes, ts: int | None = None) -> Envelope:
        ts = ts or now_ms()
        ciphertext = b64url_encode(crypto.oaep_encrypt(crypto.decode_public_key(recipient_pub), text))
        content_sig = signing.sign_dm(self.key, ciphertext, self.user_id, recipient_id, ts)
        return frames.msg_direct(self.user_id, recipient_id, ts, ciphertext, self.pubkey, content_sig)

    def open_dm(self, deliver: Envelope) -> bytes:
        """Decrypt a USER_DELIVER and check its content signature; raise if it fails."""
        payload = deliver.payload
        sender = frames.deliver_sender(deliver)
        assert sender is not None
        ok = signing.verify_dm(crypto.decode_public_key(payload["sender_pub"]), payload["content_sig"],
                               payload["ciphertext"], sender, self.user_id, deliver.ts)
        if not ok:
            raise AssertionError("content signature does not verify")
        return crypto.oaep_decrypt(self.key, b64url_decode(payload["ciphertext"]))

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
