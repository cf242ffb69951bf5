"""What each slash command does on a live connection: one handler per command of the
table in commands.py (which parses, checks arguments and writes the help).

A handler asks the session for the frames (the pure core), the server for what the
session lacks (user_queries.py: the list, a user's key), and sends; files go to
file_sender.py. `execute` runs one line and turns a refusal into an ErrorReceived.

Servers that carry no public messages (or not our key shares) answer an /all with
an ERROR, so the first /all of a connection waits briefly for one
(`public_refusal_wait`) and says "sent" only if none came; the reader hands such
ERRORs over with `server_error`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from socp.protocol.errors import SocpError
from socp.protocol.ids import PUBLIC_CHANNEL

from . import commands
from .chat_messages import Actions
from .commands import Command, CommandError
from .events import ErrorReceived, HelpResult, Info, MessageSent, QueryOpened, TransferList
from .file_sender import FileSender
from .session import ClientSession
from .transport import ConnectFailed, HelloRejected
from .user_queries import UserQueries
from .wire import EmitFn, Wire

PUBLIC_REFUSAL_WAIT = 1.0     # after the first /all on a connection: does the server refuse it?


def error_event(exc: SocpError) -> ErrorReceived:
    """A failure of ours (a command, the connection), as the UI shows it."""
    return ErrorReceived(_code(exc), exc.detail, "client")


def _code(exc: SocpError) -> str:
    if isinstance(exc, CommandError):
        return exc.client_code
    if isinstance(exc, ConnectFailed):
        return "UNREACHABLE"
    if isinstance(exc, HelloRejected):
        return exc.wire_code or "HELLO_REJECTED"
    return exc.code.value


class CommandHandlers:
    def __init__(self, session: ClientSession, wire: Wire, emit: EmitFn, queries: UserQueries, files: FileSender,
                 *, public_refusal_wait: float) -> None:
        self.session = session
        self._wire = wire
        self._emit = emit
        self._queries = queries
        self._files = files
        self.public_refusal_wait = public_refusal_wait
        self._public_accepted = False                    # a public message went through on this connection
        self._server_error: asyncio.Future[ErrorReceived] | None = None   # watched after an /all
        self._handlers: dict[str, Callable[[Command], Awaitable[bool]]] = {
            "list": self._list,
            "tell": self._tell,
            "msg": self._tell,
            "query": self._query,
            "close": self._window_only,
            "all": self._all,
            "me": self._me,
            "file": self._file,
            "files": self._list_files,
            "accept": self._accept,
            "reject": self._reject,
            "cancel": self._cancel,
            "whois": self._whois,
            "trust": self._trust,
            "help": self._help,
            "quit": self._quit,
        }

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._handlers)

    async def execute(self, line: str) -> bool:
        """Run one command line; False means the user asked to quit."""
        if not line.strip():
            return True
        try:
            command = commands.parse(line)
            return await self._handlers[command.name](command)
        except SocpError as exc:
            self._emit(error_event(exc))
            return True

    def new_connection(self) -> None:
        """A new connection said hello: its first /all waits for a refusal again."""
        self._public_accepted = False

    def server_error(self, event: ErrorReceived) -> None:
        """An ERROR from the server (or a refusal naming our public message): the
        answer an /all may be waiting for."""
        if self._server_error is not None and not self._server_error.done():
            self._server_error.set_result(event)

    async def _prepare_channel(self) -> None:
        """Members may have joined since the last list; our sending key may not exist yet."""
        if self.session.users.stale:
            await self._queries.refresh()
        if not self.session.channel_keys.has_own:
            if self.session.channel_keys.must_make_own:
                self._emit(Info("making your public channel key (once, on first use: RSA-4096, about a second)…"))
            await asyncio.to_thread(self.session.channel_keys.own)

    # --- the handlers -------------------------------------------------------------

    async def _list(self, command: Command) -> bool:
        await self._queries.refresh(requested=True)
        return True

    async def _tell(self, command: Command) -> bool:
        user, text = command.args["user"], command.args["text"]
        await self._wire.send(await self._queries.with_directory(user, lambda: self.session.messages.tell(user, text)))
        return True

    async def _query(self, command: Command) -> bool:
        user = command.args["user"]
        user_id = await self._queries.with_directory(user, lambda: self.session.users.resolve(user))
        if user_id == self.session.me.user_id:
            raise CommandError("that is you")
        self._emit(QueryOpened(user_id, self.session.users.label(user_id)))
        return True

    async def _window_only(self, command: Command) -> bool:
        raise CommandError(f"/{command.name} acts on the app's windows; there are none in --script")

    async def _me(self, command: Command) -> bool:
        """Outside a window (--script) an action goes to the public channel."""
        return await self._all(Command("all", {"text": commands.ME_PREFIX + command.args["text"]}))

    async def _all(self, command: Command) -> bool:
        await self._prepare_channel()
        actions = self.session.messages.post_public(command.args["text"])
        if self._public_accepted or self.public_refusal_wait <= 0:
            await self._wire.send(actions)
            return True
        self._server_error = asyncio.get_running_loop().create_future()
        sent = tuple(event for event in actions.events if isinstance(event, MessageSent))
        try:
            await self._wire.send(Actions(frames=actions.frames,
                                          events=tuple(e for e in actions.events if e not in sent)))
            try:
                refusal = await asyncio.wait_for(asyncio.shield(self._server_error), self.public_refusal_wait)
            except TimeoutError:
                refusal = None
        finally:
            self._server_error = None
        if refusal is not None:
            raise CommandError(f"the server refused the public message or its key share ({refusal.code} "
                               f"{refusal.detail}): the members cannot read it", "NOT_SENT")
        self._public_accepted = True
        for event in sent:
            self._emit(event)
        return True

    async def _file(self, command: Command) -> bool:
        """Check the target and the file, then send it in a task of its own."""
        target, path = command.args["target"], Path(command.args["path"])
        self._files.ensure_room()
        if target == PUBLIC_CHANNEL:
            await self._prepare_channel()
            steps = self.session.outgoing_files.send(target, path)
        else:
            steps = await self._queries.with_directory(target, lambda: self.session.outgoing_files.send(target, path))
        self._files.start(command.args["path"], steps)
        return True

    async def _list_files(self, command: Command) -> bool:
        self._emit(TransferList(self._files.transfers() + self.session.incoming_files.transfers()))
        return True

    async def _accept(self, command: Command) -> bool:
        for event in self.session.incoming_files.accept(command.args["file"]):
            self._emit(event)
        return True

    async def _reject(self, command: Command) -> bool:
        for event in self.session.incoming_files.reject(command.args["file"]):
            self._emit(event)
        return True

    async def _cancel(self, command: Command) -> bool:
        self._files.cancel(command.args["file"])
        return True

    async def _whois(self, command: Command) -> bool:
        user = command.args["user"]
        if not self.session.knows_key(user):
            await self._queries.refresh()
        self._emit(self.session.whois(user))
        return True

    async def _trust(self, command: Command) -> bool:
        for event in self.session.trust(command.args["user"]):
            self._emit(event)
        return True

    async def _help(self, command: Command) -> bool:
        self._emit(HelpResult(commands.help_rows()))
        return True

    async def _quit(self, command: Command) -> bool:
        return False
