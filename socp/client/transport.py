"""The client's transport: a WebSocket to a node, and nothing about chatting.

    server_url_problem   a --server that cannot be a node's URL, in words
    dial                 connect with exponential backoff (ConnectionState while retrying)
    log_in               `socp chat --login`: the password login on a connection of its own

Errors (all `SocpError`, the detail meant for the user): ChatError, and under it
ConnectFailed, HelloRejected, ConnectionLost; roaming.LoginFailed from `log_in`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.uri import parse_uri

from socp.protocol import crypto
from socp.protocol.errors import SocpError
from socp.protocol.limits import MAX_FRAME_BYTES

from . import tls
from .events import ConnectionState, Event, Info
from .roaming import LoginFailed, RoamingLogin

EmitFn = Callable[[Event], None]
# A receiver that decrypts a file falls behind its socket for a while; the
# keepalive must not take that for a dead peer (websockets' default is 20 s).
PING_TIMEOUT = 120.0
LOGIN_ANSWER_TIMEOUT = 15.0     # for each answer of a login (the node's challenge TTL is 60 s)


class ChatError(SocpError):
    """The client cannot go on; the detail is meant for the user."""


class ConnectFailed(ChatError):
    pass


class HelloRejected(ChatError):
    def __init__(self, detail: str, wire_code: str = "", *, about_signature: bool = False) -> None:
        super().__init__(detail)
        self.wire_code = wire_code  # the server's ERROR code, e.g. NAME_IN_USE
        self.about_signature = about_signature  # the server did not accept the hello's signature


class ConnectionLost(ChatError):
    pass


def server_url_problem(url: str) -> str:
    """What is wrong with a server URL, in one line a user can act on ("" if nothing).
    Checked before connecting, so a typo never reaches the WebSocket library (issue #16)."""
    hint = "use ws://host:port (wss:// only for a node behind TLS)"
    try:
        parsed = urlsplit(url)
        port = parsed.port
    except ValueError:
        return f"{url!r} has no valid port (1-65535): {hint}"
    if not parsed.scheme:
        return f"{url!r} is not a URL: {hint}"
    if parsed.scheme not in ("ws", "wss"):
        return f"{url!r} is a {parsed.scheme}:// URL, not a WebSocket one: {hint}"
    if not parsed.hostname:
        return f"{url!r} names no host: {hint}"
    if port == 0:
        return f"{url!r} has no valid port (1-65535): {hint}"
    try:
        parse_uri(url)
    except InvalidURI as exc:
        return f"{url!r} is not a WebSocket URL ({exc}): {hint}"
    return ""


async def dial(url: str, emit: EmitFn, *, attempts: int | None, backoff_max: float = 10.0,
               open_timeout: float = 10.0) -> ClientConnection:
    """Open a WebSocket, retrying with exponential backoff (None: until cancelled)."""
    delay, attempt = 0.5, 0
    problem = server_url_problem(url)
    if problem:
        raise ConnectFailed(problem)
    while True:
        attempt += 1
        try:
            return await connect(url, compression=None, max_size=MAX_FRAME_BYTES, open_timeout=open_timeout,
                                 close_timeout=5, ping_timeout=PING_TIMEOUT, ssl=tls.context_for(url))
        except ssl.SSLCertVerificationError as exc:   # also a ValueError; retrying cannot help
            raise ConnectFailed(f"cannot connect to {url}: {tls.certificate_refused(exc)}") from None
        except (InvalidURI, ValueError) as exc:
            raise ConnectFailed(f"{url!r} is not a usable WebSocket URL ({exc})") from exc
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            reason = _why(exc, url)
        if attempts is not None and attempt >= attempts:
            raise ConnectFailed(f"cannot reach {url}: {reason} (gave up after {attempt} attempts)")
        emit(Info(f"cannot reach {url}: {reason}; retrying in {delay:.1f}s"))
        emit(ConnectionState("reconnecting", f"cannot reach {url}: {reason}", delay))
        await asyncio.sleep(delay)
        delay = min(delay * 2, backoff_max)


async def log_in(attempt: RoamingLogin, url: str, emit: EmitFn, *, connect_attempts: int | None = 5,
                 open_timeout: float = 10.0, answer_timeout: float = LOGIN_ANSWER_TIMEOUT) -> crypto.PrivateKey:
    """One password login on its own connection (docs/store-and-login.md): our key,
    checked, or LoginFailed / ConnectFailed with a detail for the user."""
    ws = await dial(url, emit, attempts=connect_attempts, open_timeout=open_timeout)
    try:
        await ws.send(attempt.request().to_wire())
        challenge = await _login_answer(ws, url, answer_timeout)
        proof = await asyncio.to_thread(attempt.answer, challenge)   # scrypt: off the loop
        await ws.send(proof.to_wire())
        blob = await _login_answer(ws, url, answer_timeout)
        return await asyncio.to_thread(attempt.open_blob, blob)
    except ConnectionClosed as exc:
        raise LoginFailed(f"the server closed the connection during the login ({_close_reason(exc)})",
                          "DISCONNECTED") from exc
    finally:
        await ws.close()


async def _login_answer(ws: ClientConnection, url: str, timeout: float) -> str | bytes:
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError:
        raise LoginFailed(f"{url} did not answer the login within {timeout:.0f} s", "TIMEOUT") from None
    except ConnectionClosed as exc:
        raise LoginFailed(f"the server closed the connection during the login ({_close_reason(exc)}); "
                          "does it support password login?", "DISCONNECTED") from exc


def _why(exc: BaseException, url: str = "") -> str:
    """A failed connect in words; never empty (a reset has no message of its own)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the node running?)"
    tls = url.startswith("wss://")
    if tls and isinstance(exc, (ssl.SSLError, ConnectionResetError, asyncio.IncompleteReadError)):
        plain = "ws://" + url[len("wss://"):]
        return f"the TLS handshake failed ({_text_of(exc)}): is it a plain node? try --server {plain}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or _text_of(exc)
    return _text_of(exc)


def _text_of(exc: BaseException) -> str:
    if isinstance(exc, ConnectionResetError) and not str(exc):
        return "the server reset the connection"
    return str(exc) or type(exc).__name__


def _close_reason(source: object) -> str:
    if isinstance(source, ConnectionClosed):
        frame = source.rcvd or source.sent
        code, reason = (frame.code, frame.reason) if frame is not None else (None, "")
    else:
        code, reason = getattr(source, "close_code", None), getattr(source, "close_reason", "") or ""
    if code is None:
        return "no close frame"
    return f"code {code}" + (f", {reason}" if reason else "")
