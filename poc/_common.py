"""What every attack script shares: arguments, the loopback rule, raw SOCP peers,
and the verdict (exit 0: every attempt blocked, 1: one succeeded, 2: usage or
connection error).

The scripts speak SOCP over real WebSockets with nothing but the protocol core
(`socp.protocol`), the way a hostile peer would.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from socp.protocol import crypto, frames, signing  # noqa: E402 - run as a script: sys.path is set first
from socp.protocol.encoding import b64url_decode, b64url_encode  # noqa: E402 - run as a script: sys.path is set first
from socp.protocol.envelope import Envelope, parse  # noqa: E402 - run as a script: sys.path is set first
from socp.protocol.ids import new_id  # noqa: E402 - run as a script: sys.path is set first

EXIT_BLOCKED, EXIT_SUCCEEDED, EXIT_USAGE = 0, 1, 2
KEYS_ENV = "SOCP_POC_KEYS"


class UsageError(Exception):
    """Bad arguments or an unreachable target: exit status 2."""


def now_ms() -> int:
    return int(time.time() * 1000)


def show(text: object) -> str:
    """What a peer sent, safe for a terminal (control characters escaped)."""
    return ascii(str(text))[1:-1][:200]


# --- arguments and the loopback rule -------------------------------------------------


def arguments(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--url", required=True, help="the node to attack, ws://127.0.0.1:PORT (loopback only)")
    parser.add_argument("--keys", default=os.environ.get(KEYS_ENV, ""),
                        help=f"directory of RSA-4096 PEM keys to use (env {KEYS_ENV}); default: generate")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for any one answer")
    parser.add_argument("--mesh-url", action="append", default=[], metavar="URL",
                        help="another node linked to --url, ws://127.0.0.1:PORT (repeatable, loopback only): "
                             "the attack then also goes through, or is checked at, the other nodes of the mesh")
    if extra:
        extra(parser)
    args = parser.parse_args()
    for value in (args.url, getattr(args, "peer_url", None), *args.mesh_url):
        if value:
            require_loopback(value)
    return args


def require_loopback(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname or not parts.port:
        raise UsageError(f"{url}: expected ws://HOST:PORT")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"{url}: refusing a non-loopback target; these scripts attack your own node only")


def http_url(ws_url: str, path: str) -> str:
    parts = urllib.parse.urlsplit(ws_url)
    return f"http://{parts.hostname}:{parts.port}{path}"


def healthz(ws_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(http_url(ws_url, "/healthz"), timeout=5) as answer:
        return json.loads(answer.read())


# --- keys ----------------------------------------------------------------------------


class Keys:
    """RSA-4096 keys from --keys (PEM files, read in name order), else freshly made."""

    def __init__(self, directory: str) -> None:
        self._keys: list[crypto.PrivateKey] = []
        if directory:
            for path in sorted(Path(directory).glob("*.pem")):
                key = serialization.load_pem_private_key(path.read_bytes(), password=None,
                                                         unsafe_skip_rsa_key_validation=True)  # our own keys
                self._keys.append(key)  # type: ignore[arg-type] - our own RSA keys
        self._next = 0

    def take(self) -> crypto.PrivateKey:
        if self._next < len(self._keys):
            key = self._keys[self._next]
        else:
            key = crypto.generate_private_key()
            self._keys.append(key)
        self._next += 1
        return key


# --- a raw SOCP peer -----------------------------------------------------------------


@dataclass
class Peer:
    """One WebSocket to the node, as a user or as a server, speaking raw SOCP."""

    url: str
    key: crypto.PrivateKey
    peer_id: str = field(default_factory=new_id)
    timeout: float = 10.0
    socket: ClientConnection | None = None
    inbox: list[Envelope] = field(default_factory=list)
    _welcome: Envelope | None = None

    @property
    def pubkey(self) -> str:
        return crypto.encode_public_key(self.key)

    async def open(self) -> Peer:
        try:
            self.socket = await websockets.connect(self.url, compression=None, max_size=16 * 1024 * 1024,
                                                   open_timeout=self.timeout, proxy=None)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise UsageError(f"cannot connect to {self.url}: {exc}") from exc
        return self

    async def hello(self, display_name: str | None = None, signed: bool = True, pubkey: str | None = None) -> Envelope:
        """USER_HELLO; returns the frame sent (for replaying it later)."""
        frame = frames.user_hello(self.peer_id, None, now_ms(), pubkey or self.pubkey, display_name=display_name)
        if signed:
            frame = signing.sign_envelope(self.key, frame)
        await self.send(frame)
        return frame

    async def join_as_server(self) -> Envelope:
        """SERVER_HELLO_JOIN with our own key: any node admits a newcomer (SOCP §6.1).
        Returns the SERVER_WELCOME."""
        await self.join_as_server_frame()
        return self._welcome

    async def join_as_server_frame(self) -> Envelope:
        """Join as above; returns the signed hello we sent (to replay it)."""
        parts = urllib.parse.urlsplit(self.url)
        hello = self.signed(frames.server_hello_join(self.peer_id, f"{parts.hostname}:{parts.port}", now_ms(),
                                                     "127.0.0.1", 9, self.pubkey))
        await self.send(hello)
        self._welcome = await self.receive("SERVER_WELCOME")
        self.peer_id = self._welcome.payload["assigned_id"]
        return hello

    def signed(self, frame: Envelope, key: crypto.PrivateKey | None = None) -> Envelope:
        return signing.sign_envelope(key or self.key, frame)

    async def send(self, frame: Envelope | str | bytes) -> None:
        assert self.socket is not None
        await self.socket.send(frame.to_wire() if isinstance(frame, Envelope) else frame)

    async def receive(self, frame_type: str | None = None, timeout: float | None = None,
                      where: Callable[[Envelope], bool] | None = None) -> Envelope:
        """The next frame of `frame_type` (others are kept); TimeoutError if none comes."""
        for index, frame in enumerate(self.inbox):
            if (frame_type is None or frame.type == frame_type) and (where is None or where(frame)):
                return self.inbox.pop(index)
        assert self.socket is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {frame_type or 'frame'} within the wait")
            text = await asyncio.wait_for(self.socket.recv(), remaining)
            frame = parse(text)
            if (frame_type is None or frame.type == frame_type) and (where is None or where(frame)):
                return frame
            self.inbox.append(frame)
            del self.inbox[:-500]   # bounded: a flood of answers never grows memory

    async def error(self, timeout: float | None = None) -> tuple[str, str]:
        """(code, detail) of the next ERROR; ("", "") if none came in time;
        ("CLOSED", reason) if the node closed the connection first."""
        try:
            frame = await self.receive("ERROR", timeout)
        except TimeoutError:
            return "", ""
        except ConnectionClosed as exc:
            reason = exc.rcvd.reason if exc.rcvd is not None else "connection lost"
            return "CLOSED", f"{exc.rcvd.code if exc.rcvd else 1006} {reason}"
        return frames.error_text(frame)

    async def nothing_of(self, frame_type: str, wait: float = 1.0) -> bool:
        try:
            await self.receive(frame_type, timeout=wait)
        except TimeoutError:
            return True
        return False

    async def closed(self, wait: float) -> int | None:
        """The close code if the node closes this socket within `wait` s, else None."""
        assert self.socket is not None
        try:
            async with asyncio.timeout(wait):
                while True:
                    await self.socket.recv()
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else 1006
        except TimeoutError:
            return None

    async def list_users(self) -> list[str]:
        await self.send(frames.list_request(self.peer_id, "*", now_ms()))
        return list((await self.receive("LIST_RESPONSE")).payload.get("users", []))

    def dm(self, to: str, to_pub: str, text: bytes, ts: int | None = None) -> Envelope:
        ts = ts or now_ms()
        ciphertext = b64url_encode(crypto.oaep_encrypt(crypto.decode_public_key(to_pub), text))
        sig = signing.sign_dm(self.key, ciphertext, self.peer_id, to, ts)
        return frames.msg_direct(self.peer_id, to, ts, ciphertext, self.pubkey, sig)

    def open_dm(self, deliver: Envelope) -> bytes:
        return crypto.oaep_decrypt(self.key, b64url_decode(deliver.payload["ciphertext"]))

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()


async def user(url: str, keys: Keys, timeout: float, name: str | None = None) -> Peer:
    """A connected, accepted user (its /list answered)."""
    peer = await Peer(url, keys.take(), timeout=timeout).open()
    await peer.hello(display_name=name)
    await peer.list_users()
    return peer


async def wait_listed(peer: Peer, user_id: str, timeout: float, present: bool = True) -> bool:
    """Whether `peer`'s node lists `user_id` (or, with present=False, no longer lists it)
    within `timeout` s: presence takes a moment to cross the mesh."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if (user_id in await peer.list_users()) == present:
            return True
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.2)


def linked_peers(ws_url: str) -> set[str]:
    """Ids of the servers the node at `ws_url` reports linked (/healthz server_links, "joined")."""
    return {row["peer_id"] for row in healthz(ws_url).get("server_links", []) if row.get("state") == "joined"}


# --- the verdict ---------------------------------------------------------------------


class Verdict:
    """Collects one line per attempt; the exit status says whether any attack worked."""

    def __init__(self, title: str) -> None:
        self.failures = 0
        self.attempts = 0
        print(f"== {title}")

    def tried(self, what: str) -> None:
        print(f"-- try: {what}")

    def check(self, blocked: bool, evidence: str) -> bool:
        self.attempts += 1
        if not blocked:
            self.failures += 1
        print(f"   {'BLOCKED  ' if blocked else 'SUCCEEDED'} {evidence}")
        return blocked

    def note(self, text: str) -> None:
        print(f"   note: {text}")

    def exit_code(self) -> int:
        if self.failures:
            print(f"== RESULT: {self.failures} of {self.attempts} attempts SUCCEEDED: the node is vulnerable")
            return EXIT_SUCCEEDED
        print(f"== RESULT: all {self.attempts} attempts were blocked")
        return EXIT_BLOCKED


def main(run: Callable[[argparse.Namespace, Verdict], Awaitable[None]], title: str,
         extra: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    try:
        args = arguments(title, extra)
        verdict = Verdict(title)
        asyncio.run(asyncio.wait_for(run(args, verdict), timeout=args.timeout * 12))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (TimeoutError, ConnectionClosed, OSError) as exc:
        print(f"error: the node stopped answering as SOCP expects: {type(exc).__name__}: {show(exc)}",
              file=sys.stderr)
        return EXIT_USAGE
    return verdict.exit_code()
