"""Test doubles of other teams' servers, one per link dialect (issue #14, server links).

Each double speaks one peer's server-to-server habits, as recorded from the live peer
(tests/interop/recorded/<peer>-link.jsonl; docs/interop.md "Server links"):

- G45: ids `master_server_<uuid>`, `role` in hello and welcome, a welcome
  `{host, port, pubkey, role}` without assigned_id, adverts without keys (keys are
  looked up with DB_GET_USER → DB_USER), content_sig over canonical JSON
  `{ciphertext, from, to, ts}`, no HEARTBEAT;
- G17: `ws_uri` in its hello, a welcome `{server_id, server_pub, snapshot:
  {user_locations}, assigned_id: null}`, adverts without keys (PUBKEY_REQUEST →
  PUBKEY_RESPONSE), SERVER_DELIVER stamped with its own time and `orig_ts`;
- G56: keys as base64url(PEM), SERVER_HELLO_JOIN / SERVER_WELCOME / SERVER_ANNOUNCE
  unsigned, adverts with `meta.pubkey`, content_sig over the base64url text;
- G101: ids `host:port`, ISO-string `ts`, an extra top-level `id`, a hello and a
  welcome `{server_id, pubkey, ts}` without address, signed over the whole envelope
  minus `sig` (and nothing else signed), adverts `{user_id, ts}` without `server_id`
  or `to`, DMs relayed from user to user with `from`, `to`, `ts` in the payload. It
  links with us only under the opt-in `g101_link: true` (docs/interop.md, note 12).

A double hosts virtual users (no sockets of their own). It either joins a real node
(`join`) or listens for the node to join it (`listen`). Only what a test needs is
modelled; everything is recorded in `inbox`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.server import ServerConnection, serve

from socp.protocol import crypto
from socp.protocol.encoding import b64url_decode, b64url_encode, canonical_json
from socp.protocol.envelope import Envelope, parse
from socp.protocol.ids import new_id
from socp.protocol.key_forms import KeyForm, in_form
from socp.router import link_dialects as dialects

G45, G17, G56, G101 = dialects.G45, dialects.G17, dialects.G56, dialects.G101
_UNSIGNED_BY_G56 = {"SERVER_HELLO_JOIN", "SERVER_WELCOME", "SERVER_ANNOUNCE"}
_SIGNED_BY_G101 = _UNSIGNED_BY_G56   # the only frames G101 signs (over the whole envelope)


def iso_now() -> str:
    """G101's `ts` (utils.now_ts_iso)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def g101_accepts(frame: dict[str, Any], pubkey: str) -> bool:
    """G101's check of a link opening: the frame minus `sig`, canonical, PSS-verified
    with the key its config.yaml pins for the sender (server.py `handler`)."""
    rest = {key: value for key, value in frame.items() if key != "sig"}
    return crypto.verify_pss(crypto.decode_public_key(pubkey), b64url_decode(frame["sig"]), canonical_json(rest))


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class VirtualUser:
    key: crypto.PrivateKey
    user_id: str = field(default_factory=new_id)


@dataclass
class DialectDouble:
    dialect: str
    key: crypto.PrivateKey
    server_id: str = ""
    port: int = 0                      # where it says it listens (hello/welcome)
    users: list[VirtualUser] = field(default_factory=list)
    inbox: list[Envelope] = field(default_factory=list)
    socket: Any = None
    welcome: Envelope | None = None
    hello: Envelope | None = None      # the node's hello, when the node joined us
    _connected: asyncio.Event = field(default_factory=asyncio.Event)
    _server: Any = None
    _frames: asyncio.Queue = field(default_factory=asyncio.Queue)
    _pump: Any = None
    questions: list[Envelope] = field(default_factory=list)   # key look-ups the node sent us
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if not self.server_id:
            self.server_id = (f"master_server_{new_id()}" if self.dialect == G45
                              else f"127.0.0.1:{self.port}" if self.dialect == G101 else new_id())

    # --- wire habits ------------------------------------------------------------------

    def key_text(self, key: crypto.PrivateKey) -> str:
        der = crypto.encode_public_key(key)
        return in_form(der, KeyForm.PEM_B64URL) if self.dialect == G56 else der

    def signed(self, frame: dict[str, Any]) -> dict[str, Any]:
        """G45, G17 and G56 sign the canonical payload (G56 leaves its link openings
        unsigned); G101 signs the whole envelope, with an `id` and an ISO `ts`."""
        if self.dialect == G56 and frame["type"] in _UNSIGNED_BY_G56:
            return frame
        if self.dialect == G101:
            if frame["type"] not in _SIGNED_BY_G101:
                return {**frame, "id": new_id()}
            frame = {**frame, "id": new_id(), "ts": iso_now()}
            whole = json.dumps(frame, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            return {**frame, "sig": b64url_encode(crypto.sign_pss(self.key, whole))}
        return {**frame, "sig": b64url_encode(crypto.sign_pss(self.key, canonical_json(frame["payload"])))}

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(self.signed(frame)))

    # --- linking ----------------------------------------------------------------------

    async def join(self, host: str, port: int, welcome_timeout: float = 15.0) -> Envelope:
        """The peer joins a node (its bootstrap/peer list names the node)."""
        self.socket = await websockets.connect(f"ws://{host}:{port}", compression=None, open_timeout=10)
        payload: dict[str, Any] = {"host": "127.0.0.1", "port": self.port or 1, "pubkey": self.key_text(self.key)}
        sender = self.server_id
        if self.dialect == G101:
            payload = {"server_id": self.server_id, "pubkey": self.key_text(self.key), "ts": iso_now()}
        elif self.dialect == G45:
            payload["role"] = "master"
        elif self.dialect == G17:
            payload["ws_uri"] = f"ws://{host}:{port}"
            sender = "auto"                      # G17 asks for an id
        await self.send({"type": "SERVER_HELLO_JOIN", "from": sender, "to": "server_*" if self.dialect == G45 else "*",
                         "ts": now_ms(), "payload": payload})
        self._pump = asyncio.create_task(self._read())
        self.welcome = await self.receive("SERVER_WELCOME", timeout=welcome_timeout)
        if self.dialect == G17 and self.welcome.payload.get("assigned_id"):
            self.server_id = self.welcome.payload["assigned_id"]
        return self.welcome

    async def listen(self) -> int:
        """Wait for a node to join us; returns the port to put in its bootstrap file."""
        self._server = await serve(self._accept, "127.0.0.1", 0, compression=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, ws: ServerConnection) -> None:
        self.socket = ws
        self.hello = parse(await ws.recv())
        await self.send(self._welcome_for(self.hello))
        self._connected.set()
        await self._read()

    def _welcome_for(self, hello: Envelope) -> dict[str, Any]:
        me, them = self.server_id, hello.from_
        if self.dialect == G45:
            payload: dict[str, Any] = {"host": "127.0.0.1", "port": self.port, "pubkey": self.key_text(self.key),
                                       "role": "master"}
        elif self.dialect == G101:
            payload = {"server_id": me, "pubkey": self.key_text(self.key), "ts": iso_now()}
        elif self.dialect == G17:
            payload = {"server_id": me, "server_pub": self.key_text(self.key), "assigned_id": None,
                       "snapshot": {"user_locations": {u.user_id: {"server_id": me, "ts": time.time()}
                                                       for u in self.users}}}
        else:
            payload = {"assigned_id": them, "servers": [{"server_id": me, "host": "127.0.0.1", "port": self.port,
                                                         "pubkey": self.key_text(self.key)}]}
        return {"type": "SERVER_WELCOME", "from": me, "to": them, "ts": now_ms(), "payload": payload}

    async def linked(self, timeout: float = 20.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    # --- users ------------------------------------------------------------------------

    async def advertise(self, user: VirtualUser) -> None:
        self.users.append(user)
        if self.dialect == G101:   # make_envelope(..., to_id=None): no `to`; the server is `from`
            await self.send({"type": "USER_ADVERTISE", "from": self.server_id, "ts": iso_now(),
                             "payload": {"user_id": user.user_id, "ts": iso_now()}})
            return
        payload: dict[str, Any] = {"user_id": user.user_id, "server_id": self.server_id}
        if self.dialect == G56:
            payload["meta"] = {"pubkey": self.key_text(user.key)}
        await self.send({"type": "USER_ADVERTISE", "from": self.server_id, "to": "*", "ts": now_ms(),
                         "payload": payload})

    def _user(self, user_id: str) -> VirtualUser | None:
        return next((u for u in self.users if u.user_id == user_id), None)

    async def _answer_key_question(self, frame: Envelope) -> None:
        user = self._user(frame.payload["user_id"])
        if frame.type == "DB_GET_USER":
            await self.send({"type": "DB_USER", "from": self.server_id, "to": frame.from_, "ts": now_ms(),
                             "payload": {"user_id": frame.payload["user_id"], "found": user is not None,
                                         "pubkey": self.key_text(user.key) if user else "",
                                         "req_id": frame.payload.get("req_id")}})
        else:
            await self.send({"type": "PUBKEY_RESPONSE", "from": self.server_id, "to": frame.from_, "ts": now_ms(),
                             "payload": {"user_id": frame.payload["user_id"],
                                         "pubkey": self.key_text(user.key) if user else None}})

    def dm_frame(self, user: VirtualUser, recipient: str, recipient_pub: str, text: bytes) -> dict[str, Any]:
        """A DM from one of our users to a user of the node, as this peer's server
        sends it over the link."""
        ts = now_ms()
        ciphertext = b64url_encode(crypto.oaep_encrypt(crypto.decode_public_key(recipient_pub), text))
        if self.dialect == G45:
            signed = canonical_json({"ciphertext": ciphertext, "from": user.user_id, "to": recipient, "ts": ts})
        elif self.dialect == G56:
            signed = ciphertext.encode() + user.user_id.encode() + recipient.encode() + str(ts).encode()
        else:
            signed = b64url_decode(ciphertext) + user.user_id.encode() + recipient.encode() + str(ts).encode()
        content = {"ciphertext": ciphertext, "sender_pub": self.key_text(user.key),
                   "content_sig": b64url_encode(crypto.sign_pss(user.key, signed))}
        if self.dialect == G101:   # its client's payload, relayed as it is, from the user to the user
            return {"type": "SERVER_DELIVER", "from": user.user_id, "to": recipient, "ts": ts,
                    "payload": {**content, "from": user.user_id, "to": recipient, "ts": ts}}
        payload: dict[str, Any] = {"user_id": recipient, "sender": user.user_id, **content}
        frame_ts = ts
        if self.dialect == G17:
            payload["orig_ts"] = ts
            frame_ts = ts + 1234          # G17 stamps the hop with its own clock
        return {"type": "SERVER_DELIVER", "from": self.server_id, "to": "*", "ts": frame_ts, "payload": payload}

    def open_deliver(self, user: VirtualUser, deliver: Envelope) -> bytes:
        return crypto.oaep_decrypt(user.key, b64url_decode(deliver.payload["ciphertext"]))

    # --- receiving --------------------------------------------------------------------

    async def _read(self) -> None:
        """Read the link until it closes: key questions are answered at once, as the
        peer's server does; everything else waits for `receive`."""
        try:
            async for text in self.socket:
                frame = parse(text)
                if frame.type in ("DB_GET_USER", "PUBKEY_REQUEST"):
                    self.questions.append(frame)
                    await self._answer_key_question(frame)
                else:
                    self._frames.put_nowait(frame)
        except websockets.ConnectionClosed:
            pass
        self.closed.set()

    async def receive(self, frame_type: str, timeout: float = 15.0, where=None) -> Envelope:
        """The next frame of `frame_type`; others are kept in `inbox`."""
        for index, frame in enumerate(self.inbox):
            if frame.type == frame_type and (where is None or where(frame)):
                return self.inbox.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{frame_type} not received; got {[f.type for f in self.inbox]}")
            try:
                frame = await asyncio.wait_for(self._frames.get(), remaining)
            except TimeoutError:
                continue
            if frame.type == frame_type and (where is None or where(frame)):
                return frame
            self.inbox.append(frame)

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._pump is not None:
            await asyncio.wait([self._pump], timeout=5)
        if self._server is not None:
            self._server.close()
