"""Storing the user's login on the server (LOGIN_REGISTER), once per (home, server),
so that `socp chat --login` works on another machine.

A task of its own beside the reader and the command pump: scrypt in a thread, the
frame, then the server's ACK or ERROR (read by the reader and handed over with
`answered`), awaited, bounded, while chatting goes on. A refusal is reported
(LoginRegisterFailed) and tried again on the next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed

from socp.protocol import login as login_values

from .events import Event, LoginRegistered, LoginRegisterFailed
from .session import ClientSession
from .wire import EmitFn, Wire

LOGIN_REGISTER_TIMEOUT = 15.0   # for the ACK of a LOGIN_REGISTER
SERVER_NAME_WAIT = 30.0         # for a slow server to name itself before we store the login there


@dataclass(frozen=True, slots=True)
class LoginStore:
    """What the driver needs to store the user's login on its server (LOGIN_REGISTER):
    the key store's password, and the home's record of servers that keep it."""

    password: str
    is_stored: Callable[[str, str], bool]     # (server id, URL) -> does it keep our login already?
    remember: Callable[[str, str], None]      # (server id, URL), after the server's ACK
    params: login_values.ScryptParams = login_values.DEFAULT_PARAMS


class LoginRegistration:
    def __init__(self, session: ClientSession, wire: Wire, emit: EmitFn, store: LoginStore | None, *,
                 register_timeout: float, server_name_wait: float) -> None:
        self.session = session
        self._wire = wire
        self._emit = emit
        self.store = store                       # None: never send LOGIN_REGISTER
        self.register_timeout = register_timeout
        self.server_name_wait = server_name_wait
        self._waiter: asyncio.Future[Event | None] | None = None

    async def run(self) -> None:
        """The task, once per connection: does nothing if the server keeps our login."""
        store = self.store
        if store is None:
            return
        # A slow server may name itself only after the hello's list probes gave up (G17
        # under load answers the hello after ~9 s): wait for it, bounded. G17 hands out
        # only the keys of users who registered, so skipping this breaks every DM there.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.server_name_wait
        while not self.session.users.server_id and not self._wire.closing and loop.time() < deadline:
            await asyncio.sleep(0.1)
        server_id = self.session.users.server_id
        if not server_id or store.is_stored(server_id, self._wire.url):
            return
        registration = await asyncio.to_thread(login_values.register, store.password, self.session.me.user_key,
                                               store.params)
        if self._wire.closing or self._wire.ws is None:
            return
        waiter: asyncio.Future[Event | None] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            try:
                await self._wire.send_frame(self.session.login_register(registration))
            except ConnectionClosed:
                return   # the reader reports the lost connection
            try:
                outcome = await asyncio.wait_for(asyncio.shield(waiter), self.register_timeout)
            except TimeoutError:
                self.session.login_register_pending = False
                outcome = LoginRegisterFailed(
                    "TIMEOUT", f"the server did not answer LOGIN_REGISTER within {self.register_timeout:.0f} s "
                               "(it may not support password login)")
        finally:
            self._waiter = None
        if outcome is None:
            return
        if isinstance(outcome, LoginRegistered):
            store.remember(server_id, self._wire.url)
        self._emit(outcome)

    def answered(self, event: Event | None) -> None:
        """The answer to our LOGIN_REGISTER (None: the connection ended first)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(event)
        elif event is not None:
            self._emit(event)
