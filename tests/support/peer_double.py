"""A test double of another team's SOCP server that uses the *other* forms of the
interop table: keys as base64url PEM, transport signatures over the whole envelope
minus `sig`, content signatures over the base64url text, a welcome read from
`clients` only, and `from` instead of `sender` in its deliveries.

It hosts virtual users (no sockets of their own) and links to one real node.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field

import websockets
from cryptography.hazmat.primitives import serialization

from socp.protocol import crypto
from socp.protocol.encoding import b64url_decode, b64url_encode, canonical_json
from socp.protocol.envelope import Envelope, parse
from socp.protocol.ids import new_id


def now_ms() -> int:
    return int(time.time() * 1000)


def pem_b64url(key: crypto.PrivateKey) -> str:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url_encode(pem)


@dataclass
class VirtualUser:
    key: crypto.PrivateKey
    user_id: str = field(default_factory=new_id)


@dataclass
class PeerDouble:
    key: crypto.PrivateKey
    server_id: str = field(default_factory=new_id)
    users: list[VirtualUser] = field(default_factory=list)
    inbox: list[Envelope] = field(default_factory=list)
    socket: websockets.ClientConnection | None = None
    welcome: Envelope | None = None

    def sign_whole(self, frame: dict) -> dict:
        """Peer form: PSS over the canonical envelope without `sig`."""
        unsigned = {k: v for k, v in frame.items() if k != "sig"}
        signature = crypto.sign_pss(self.key, canonical_json(unsigned))
        return {**unsigned, "sig": b64url_encode(signature)}

    async def send(self, frame: dict) -> None:
        assert self.socket is not None
        await self.socket.send(json.dumps(self.sign_whole(frame)))

    async def send_raw(self, text: str) -> None:
        assert self.socket is not None
        await self.socket.send(text)

    async def join(self, host: str, port: int) -> None:
        self.socket = await websockets.connect(f"ws://{host}:{port}", compression=None, open_timeout=10)
        await self.send({"type": "SERVER_HELLO_JOIN", "from": self.server_id, "to": f"{host}:{port}",
                         "ts": now_ms(), "payload": {"host": "127.0.0.1", "port": 1, "pubkey": pem_b64url(self.key)}})
        self.welcome = await self.receive("SERVER_WELCOME")
        # This peer reads the server list from `clients` only.
        assert isinstance(self.welcome.payload.get("clients"), list)
        self.server_id = self.welcome.payload["assigned_id"]

    async def advertise(self, user: VirtualUser) -> None:
        self.users.append(user)
        await self.send({"type": "USER_ADVERTISE", "from": self.server_id, "to": "*", "ts": now_ms(),
                         "payload": {"user_id": user.user_id, "server_id": self.server_id,
                                     "meta": {"pubkey": pem_b64url(user.key), "display_name": "peer user"}}})

    def dm_frame(self, user: VirtualUser, recipient: str, recipient_pub: str, text: bytes,
                 ts: int | None = None) -> dict:
        """SERVER_DELIVER in this peer's dialect: `from` not `sender`, content_sig over b64 text."""
        ts = ts or now_ms()
        ciphertext = b64url_encode(crypto.oaep_encrypt(crypto.decode_public_key(recipient_pub), text))
        signed = ciphertext.encode() + user.user_id.encode() + recipient.encode() + str(ts).encode()
        return {"type": "SERVER_DELIVER", "from": self.server_id, "to": "*", "ts": ts,
                "payload": {"user_id": recipient, "ciphertext": ciphertext, "from": user.user_id,
                            "sender_pub": pem_b64url(user.key),
                            "content_sig": b64url_encode(crypto.sign_pss(user.key, signed))}}

    async def receive(self, frame_type: str, timeout: float = 10.0, where=None) -> Envelope:
        for index, frame in enumerate(self.inbox):
            if frame.type == frame_type and (where is None or where(frame)):
                return self.inbox.pop(index)
        assert self.socket is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"{frame_type} not received; got {[f.type for f in self.inbox]}")
            frame = parse(await asyncio.wait_for(self.socket.recv(), remaining))
            if frame.type == frame_type and (where is None or where(frame)):
                return frame
            self.inbox.append(frame)

    def open_deliver(self, user: VirtualUser, deliver: Envelope) -> bytes:
        return crypto.oaep_decrypt(user.key, b64url_decode(deliver.payload["ciphertext"]))

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()


def standard_b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
