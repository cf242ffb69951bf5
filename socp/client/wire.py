"""The open WebSocket of one connection, as every part of the client driver uses it.

`ChatClient` (connection.py) attaches the socket it dialled and drops it; the other
parts (hello, user_queries, command_handlers, file_sender, login_registration) only
send through it. Frames the session follows (messages, files, re-stamped copies) go
in wire order, each recorded as it leaves: that order is what a cumulative ACK
covers (outbox.py). Requests nobody acknowledges (the hello, list requests, key
look-ups, LOGIN_REGISTER) go with `send_frame`.
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from socp.protocol.envelope import Envelope

from .chat_messages import Actions
from .events import Event
from .session import ClientSession
from .transport import ConnectionLost, _close_reason

EmitFn = Callable[[Event], None]


class Wire:
    def __init__(self, session: ClientSession, emit: EmitFn, url: str) -> None:
        self.session = session
        self.url = url
        self._emit = emit
        self.ws: ClientConnection | None = None   # None between connections
        self.closing = False                       # we are closing it: its end is no loss

    def attach(self, ws: ClientConnection) -> None:
        self.ws, self.closing = ws, False

    def socket(self) -> ClientConnection:
        assert self.ws is not None
        return self.ws

    async def send_frame(self, frame: Envelope) -> None:
        """A frame the outbox does not follow (requests, the hello)."""
        await self.socket().send(frame.to_wire())

    async def send_frames(self, frames_out: tuple[Envelope, ...]) -> None:
        ws = self.socket()
        for frame in frames_out:
            await ws.send(frame.to_wire())
            self.session.outbox.sent(frame)   # in wire order: what a cumulative ACK covers

    async def send(self, actions: Actions) -> None:
        """The frames of a session's answer, then its events."""
        await self.send_frames(actions.frames)
        for event in actions.events:
            self._emit(event)

    def lost(self, exc: ConnectionClosed) -> ConnectionLost:
        """What a task raises when a send or receive finds the connection gone."""
        return ConnectionLost(f"connection to {self.url} lost ({_close_reason(exc)})")

    async def close(self) -> None:
        """A normal closure of our own (end of input, /quit)."""
        self.closing = True
        await self.socket().close()

    async def drop(self) -> None:
        """Close and forget the socket, if there is one (lost, refused, redialling)."""
        if self.ws is not None:
            self.closing = True
            await self.ws.close()
            self.ws = None
