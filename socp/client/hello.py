"""The first frames of a connection (SOCP §7.1): USER_HELLO, then the list request
this server answers.

The hello is signed and sent to "*"; then LIST_REQUEST, USER_LIST_REQ and WHO are
tried one after another (`dialects`), each until its answer, an UNKNOWN_TYPE or a
short timeout; with none answered, the users the server announces are the list
(the presence cache). Only an ERROR about the hello (NAME_IN_USE, BAD_KEY, …) or a
close refuses it, and a server that refuses its signature gets a second hello on a
new connection, signed over the whole envelope (G101's form).

`HelloTimes` keeps when the hello went and when the server first answered: key
look-ups wait in proportion (user_queries.py), and messages stamped well before the
hello are marked as sent while we were away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from websockets.exceptions import ConnectionClosed

from . import dialects
from .events import ErrorReceived, Event, Info, ListPageWanted, ListResult, MessageReceived, Ready, Restamped
from .session import ClientSession
from .transport import HelloRejected, _close_reason
from .wire import EmitFn, Wire

LIST_PROBE_TIMEOUT = 1.5      # for each list request tried on a new server (the first waits twice that)
# Refusals of a USER_HELLO and what to tell the user (§7.1, §7.5).
HELLO_REFUSALS = {
    "NAME_IN_USE": "the server says user id {user} is in use: {detail} (is another `socp chat` using this home?)",
    "BAD_KEY": "the server rejected our key: {detail}",
}
# A message stamped this long before our hello was sent while we were away (a node
# that holds messages for account holders delivers them at login, #19); the margin
# covers clocks that differ and frames still on their way when we connected.
WHILE_AWAY_MARGIN_MS = 30_000


def sent_while_away(message_ts: int, hello_at_ms: int) -> bool:
    return hello_at_ms > 0 and message_ts < hello_at_ms - WHILE_AWAY_MARGIN_MS


@dataclass(slots=True)
class HelloTimes:
    """This connection's hello: our clock when it went, and the loop's times of it
    and of the server's first frame after it."""

    at_ms: int = 0
    sent_at: float = 0.0
    answered_at: float | None = None

    def said(self, at_ms: int, now: float) -> None:
        self.at_ms, self.sent_at, self.answered_at = at_ms, now, None

    def note_answered(self, now: float) -> None:
        if self.answered_at is None:
            self.answered_at = now

    def took(self, now: float) -> float:
        """How long the server took to answer the hello (so far, if it has not yet)."""
        return (self.answered_at if self.answered_at is not None else now) - self.sent_at

    def marked(self, event: Event) -> Event:
        if isinstance(event, MessageReceived) and sent_while_away(event.ts, self.at_ms):
            return replace(event, while_away=True)
        return event


class Hello:
    def __init__(self, session: ClientSession, wire: Wire, emit: EmitFn, times: HelloTimes, *,
                 hello_timeout: float, list_probe_timeout: float) -> None:
        self.session = session
        self._wire = wire
        self._emit = emit
        self._times = times
        self.hello_timeout = hello_timeout
        self.list_probe_timeout = list_probe_timeout

    async def run(self, redial: Callable[[], Awaitable[None]]) -> None:
        """Hello, then find the list request this server answers. `redial` opens a new
        connection for the second hello of a server that refused the first's signature."""
        try:
            await self._say_hello()
        except HelloRejected as exc:
            if not exc.about_signature or self.session.hello_signs_envelope:
                raise
            self.session.hello_signs_envelope = True
            self._emit(Info(f"the server refused the hello's signature ({exc.wire_code}); saying hello again, "
                            "signed over the whole envelope as that server checks it"))
            await redial()
            self.session.connection_reset()
            await self._say_hello()

    async def _say_hello(self) -> None:
        loop = asyncio.get_running_loop()
        self._times.said(self.session.me.now_ms(), loop.time())
        await self._wire.send_frame(self.session.hello())
        hello_deadline = loop.time() + self.hello_timeout   # the whole hello, every try included
        remembered = self.session.users.list_dialect
        if remembered == dialects.PRESENCE_ONLY:
            await self._answers(None, min(self.list_probe_timeout, self.hello_timeout))
        else:
            tries = [remembered] if remembered else [k for k in dialects.LIST_DIALECTS
                                                     if k not in self.session.users.unsupported]
            for index, kind in enumerate(tries):
                frame = self.session.users.list_request(requested=False, dialect=kind)
                assert frame is not None
                await self._wire.send_frame(frame)
                # The first answer also waits for the server to take the hello in.
                wait = min(self.list_probe_timeout * (2 if index == 0 else 1), hello_deadline - loop.time())
                if await self._answers(kind, wait):
                    break
            else:
                self.session.users.no_list_request()
                self._emit(Info("this server answers no list request; /list shows the users it has announced"))
        self.session.users.presence_news = True
        self._emit(Ready(self.session.me.user_id, self.session.me.display_name, self.session.me.fingerprint,
                         self._wire.url))

    async def _answers(self, kind: str | None, timeout: float) -> bool:
        """Read the server until it answers the list request `kind` (True), refuses it
        or the time is up (False); raise HelloRejected on a refusal of the hello."""
        ws = self._wire.socket()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            try:
                raw = await asyncio.wait_for(ws.recv(), remaining)
            except TimeoutError:
                break
            except ConnectionClosed as exc:
                raise HelloRejected(
                    f"the server closed the connection during the hello ({_close_reason(exc)})") from exc
            self._times.note_answered(loop.time())
            events = self.session.handle(raw)
            for event in events:
                if (isinstance(event, ErrorReceived) and event.source == "server"
                        and dialects.is_hello_refusal(event.code)):
                    raise self._refusal(event)
            for event in events:
                if isinstance(event, Restamped):
                    await self._wire.send_frames(event.frames)
                elif isinstance(event, ListPageWanted):
                    await self._wire.send_frame(event.frame)
                    deadline = loop.time() + timeout     # each page of a long list gets the same time
                else:
                    self._emit(self._times.marked(event))
            if any(isinstance(event, ListResult) for event in events):
                return True
            if kind is not None and kind in self.session.users.unsupported:
                return False
        return False

    def _refusal(self, event: ErrorReceived) -> HelloRejected:
        template = HELLO_REFUSALS.get(event.code, "the server refused the hello: {code} {detail}")
        return HelloRejected(template.format(user=self.session.me.user_id, code=event.code, detail=event.detail),
                             wire_code=event.code,
                             about_signature=dialects.asks_for_envelope_signature(event.code, event.detail))
