"""What the client asks the server about its users, and waits for, bounded.

    request_list / refresh   a list request (the dialect this server answers), its
                             answer awaited by whoever asked, in order
    with_directory           run a session call that needs a user's key; if it is
                             unknown, refresh the list, then look the key up
    held_for_a_name          a message from someone not yet listed waits for one list
    poll_presence            a task: the list now and then, so joins and leaves show
    frame_read               after every frame: wake key look-ups, refresh a stale list

Our node pushes no presence to its own clients (router/user_presence.py: n^2
frames), so join and leave lines come from a list request every PRESENCE_POLL
seconds; a server that answers no list request pushes presence (G56), and its
presence cache is the answer, at once.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from websockets.exceptions import ConnectionClosed

from socp.protocol.errors import SocpError, UserNotFound
from socp.protocol.ids import is_peer_id

from . import dialects
from .events import Event, Info, MessageReceived
from .hello import HelloTimes
from .session import ClientSession
from .wire import EmitFn, Wire

_R = TypeVar("_R")
MAX_LIST_WAITERS = 32
PRESENCE_POLL = 5.0
KEY_LOOKUP_TIMEOUT = 3.0      # for a key look-up's answer (more on a server slow to answer the hello)
KEY_LOOKUP_LIMIT = 30.0       # however slow the server was


class UserQueries:
    def __init__(self, session: ClientSession, wire: Wire, emit: EmitFn, times: HelloTimes, *,
                 list_timeout: float, key_lookup_timeout: float, presence_poll: float | None,
                 auto_refresh: bool) -> None:
        self.session = session
        self._wire = wire
        self._emit = emit
        self._times = times
        self.list_timeout = list_timeout
        self.key_lookup_timeout = key_lookup_timeout
        self.presence_poll = presence_poll     # None: no list requests of our own
        self.auto_refresh = auto_refresh       # keep the directory fresh for a user list
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._held: list[Event] = []           # events waiting for a sender's name (held_for_a_name)
        self._frame_seen = asyncio.Event()     # set after every frame read

    # --- list requests ------------------------------------------------------------

    async def request_list(self, *, requested: bool) -> asyncio.Future[None]:
        """Send the list request; the future is done when its answer is read."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        request = self.session.users.list_request(requested=requested)
        if request is None:
            # No list request on this server (G56): the presence cache is the answer, now.
            waiter.set_result(None)
            self._emit(self.session.users.presence_list(requested=requested))
            self.release_held()
            return waiter
        if len(self._waiters) >= MAX_LIST_WAITERS:
            self._waiters.popleft().cancel()
        self._waiters.append(waiter)
        await self._wire.send_frame(request)
        return waiter

    async def refresh(self, *, requested: bool = False) -> None:
        """A list request, and wait (bounded) for its answer."""
        waiter = await self.request_list(requested=requested)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.list_timeout)
        except TimeoutError:
            self._emit(Info(f"no answer to {self.session.users.list_dialect or 'LIST_REQUEST'}"))

    def list_answered(self) -> None:
        """A list came in: the oldest request waiting is answered."""
        if self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def cancel_waiters(self) -> None:
        """The connection is gone: no list request of it will be answered."""
        for waiter in self._waiters:
            waiter.cancel()
        self._waiters.clear()

    async def frame_read(self) -> None:
        """After each frame: key look-ups look again; a stale list is asked for."""
        self._frame_seen.set()
        if self.auto_refresh and self.session.users.stale and not self._waiters:
            await self.request_list(requested=False)

    async def poll_presence(self, served: asyncio.Event) -> None:
        """Ask for the list now and then, so that joins and leaves are seen without
        /list, on servers that do not push presence (a server that answers no list
        request pushes it: nothing to ask there). Ends with the connection (`served`)."""
        if self.presence_poll is None:
            return
        while True:
            try:
                await asyncio.wait_for(served.wait(), self.presence_poll)
                return
            except TimeoutError:
                pass
            if self.session.users.list_dialect == dialects.PRESENCE_ONLY or self._waiters or self._wire.ws is None:
                continue
            try:
                await self.request_list(requested=False)
            except ConnectionClosed:
                return   # the reader reports the lost connection

    # --- keys ---------------------------------------------------------------------

    async def with_directory(self, target: str, then: Callable[[], _R]) -> _R:
        """Run `then`; if the user or their key is unknown, refresh the directory once,
        then ask the server for the key (peers' servers list users without keys)."""
        if not self.session.users.loaded or not self.session.knows_key(target):
            await self.refresh()
        try:
            return then()
        except UserNotFound:
            await self._look_up_key(target)
            return then()

    async def _look_up_key(self, target: str) -> None:
        """DIRECTORY_GET / PUBKEY_REQUEST / USER_DB_GET (those this server may answer),
        then wait, bounded, until the key is known or every look-up was answered."""
        try:
            user_id = self.session.users.resolve(target)
        except SocpError:
            user_id = target
        lookups = self.session.users.key_lookups(user_id) if is_peer_id(user_id) else ()
        if not lookups:
            return
        answered_before = self.session.users.lookup_answers
        for frame in lookups:
            await self._wire.send_frame(frame)
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        # The wait grows while the server has not even answered our hello.
        while (not self.session.knows_key(user_id)
               and (remaining := sent_at + self._key_lookup_wait() - loop.time()) > 0):
            if self.session.users.lookup_answers - answered_before >= len(lookups):
                return   # every look-up answered (or refused), none with a key
            self._frame_seen.clear()
            try:
                await asyncio.wait_for(self._frame_seen.wait(), remaining)
            except TimeoutError:
                continue   # the wait may have grown meanwhile (KEY_LOOKUP_LIMIT bounds it)

    def _key_lookup_wait(self) -> float:
        """How long to wait for a look-up's answer: `key_lookup_timeout`, or twice the
        time this server took to answer our hello (so far, if it has not yet), up to
        KEY_LOOKUP_LIMIT. A busy G17 took 6.5 s to answer the hello and answers one
        frame after another: its PUBKEY_RESPONSE came 5 s after our look-ups
        (tests/interop/recorded/g17-slow-lookup.jsonl), long after 3 s."""
        took = self._times.took(asyncio.get_running_loop().time())
        return min(max(self.key_lookup_timeout, 2 * took), max(self.key_lookup_timeout, KEY_LOOKUP_LIMIT))

    # --- messages from users not yet listed ---------------------------------------

    async def held_for_a_name(self, event: Event) -> bool:
        """A message from someone not in our directory (the node does not tell every
        user of every join) waits, with the messages after it, for one list answer
        (at most `list_timeout`), so it is shown under the sender's name, in order."""
        if not isinstance(event, MessageReceived):
            return False
        if self._held:
            self._held.append(event)
            return True
        if event.sender in self.session.users.users or event.sender == self.session.me.user_id:
            return False
        self._held.append(event)
        asyncio.get_running_loop().call_later(self.list_timeout, self.release_held)
        await self.request_list(requested=False)
        return True

    def release_held(self) -> None:
        held, self._held = self._held, []
        for event in held:
            if isinstance(event, MessageReceived):
                event = replace(event, label=self.session.users.label(event.sender))
            self._emit(event)
