"""The client's network driver: `ChatClient` runs one connection after another
around `ClientSession` (the pure core), each part of it a module of its own.

    ChatClient.run(commands)
      connect      dial with backoff, a clear message per failure (transport.py)
      hello        USER_HELLO, then the list request this server answers (hello.py)
      serve        a TaskGroup of the reader (frames -> session -> events, each
                   handed to the part it concerns), the command pump (lines ->
                   command_handlers.py -> frames), storing the login on this server
                   (login_registration.py), presence polling (user_queries.py), a
                   task that drops downloads whose sender went silent, and one task
                   per file being sent (file_sender.py), so /tell, /list and /quit
                   never wait for a file
      close        after EOF (files being sent are finished first) or /quit
                   (they are stopped: FILE_END, the receiver discards them): a
                   grace period for in-flight deliveries, then a normal closure
      lost         what was in flight is reported (files being sent, downloads,
                   files not yet confirmed), ConnectionState says reconnecting
                   or offline; after a reconnect the messages the server never
                   acknowledged go again, byte for byte, before the commands
                   typed meanwhile (issue #16), and cut files go on

The parts share the connection's socket through `Wire` (wire.py). The session's
outbox (outbox.py) follows what the server did with our frames: ACKs, ERRORs naming
them (`msg_ref`, `msg_refs`: "not delivered", once per message), and ERROR RESEND,
answered with the frames re-stamped (`Restamped`, which the reader sends and never
shows). Commands come from a bounded asyncio.Queue (None = end of input) so both the
--script stdin reader and the interactive app can feed it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from socp.protocol.errors import ErrorCode

from .command_handlers import PUBLIC_REFUSAL_WAIT, CommandHandlers, error_event
from .events import (
    ConnectionState,
    ErrorReceived,
    Event,
    Info,
    ListPageWanted,
    ListResult,
    LoginRegistered,
    LoginRegisterFailed,
    NotDelivered,
    PartsToRetry,
    Restamped,
)
from .file_sender import FileSender
from .hello import LIST_PROBE_TIMEOUT, WHILE_AWAY_MARGIN_MS, Hello, HelloTimes, sent_while_away
from .incoming_files import RESUME_GRACE
from .login_registration import LOGIN_REGISTER_TIMEOUT, SERVER_NAME_WAIT, LoginRegistration, LoginStore
from .sending import FILE_CHUNK_BURST, OutgoingFile
from .session import ClientSession
from .transport import ChatError, ConnectionLost, _close_reason, dial
from .user_queries import KEY_LOOKUP_TIMEOUT, PRESENCE_POLL, UserQueries
from .wire import EmitFn, Wire

# Imported from here by the CLI, --script and tests.
__all__ = ["WHILE_AWAY_MARGIN_MS", "ChatClient", "LoginStore", "command_queue", "sent_while_away"]

COMMAND_QUEUE_SIZE = 64
SILENT_DOWNLOAD_CHECK = 5.0   # seconds between looks for downloads whose sender went silent


def command_queue() -> asyncio.Queue[str | None]:
    return asyncio.Queue(COMMAND_QUEUE_SIZE)


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """How a ChatClient connects, waits and paces, in seconds unless said: the
    interactive client's defaults; `--script` and the tests change a few."""

    connect_attempts: int | None = None     # None: retry until cancelled
    backoff_max: float = 10.0
    open_timeout: float = 10.0
    hello_timeout: float = 10.0
    list_timeout: float = 5.0
    list_probe_timeout: float = LIST_PROBE_TIMEOUT
    key_lookup_timeout: float = KEY_LOOKUP_TIMEOUT
    public_refusal_wait: float = PUBLIC_REFUSAL_WAIT
    linger: float = 1.0                     # after the input ends, for the last answers
    reconnect: bool = False
    auto_refresh: bool = False              # keep the directory fresh for a user list
    file_chunk_rate: float | None = None    # chunks/s: a cap below what the node grants
    file_chunk_burst: int = FILE_CHUNK_BURST
    register_timeout: float = LOGIN_REGISTER_TIMEOUT
    presence_poll: float | None = PRESENCE_POLL   # None: no list requests of our own
    server_name_wait: float = SERVER_NAME_WAIT


class ChatClient:
    """The coordinator: owns the connection's life (connect, serve, close, reconnect)
    and hands each event read to the part it concerns; the parts own their state."""

    def __init__(self, session: ClientSession, url: str, emit: EmitFn,
                 settings: ConnectionSettings = ConnectionSettings(), *,
                 login_store: LoginStore | None = None) -> None:   # None: never send LOGIN_REGISTER
        self.session = session
        self.url = url
        self._emit = emit
        self.settings = settings
        self._served = asyncio.Event()                   # set when this connection's service ends
        self.wire = Wire(session, emit, url)
        self._times = times = HelloTimes()
        self.hello = Hello(session, self.wire, emit, times, hello_timeout=settings.hello_timeout,
                           list_probe_timeout=settings.list_probe_timeout)
        self.queries = UserQueries(session, self.wire, emit, times, list_timeout=settings.list_timeout,
                                   key_lookup_timeout=settings.key_lookup_timeout,
                                   presence_poll=settings.presence_poll, auto_refresh=settings.auto_refresh)
        caps = () if settings.file_chunk_rate is None else ((settings.file_chunk_rate, settings.file_chunk_burst),)
        self.files = FileSender(session, self.wire, emit, self.queries, caps=caps)
        self.login = LoginRegistration(session, self.wire, emit, login_store,
                                       register_timeout=settings.register_timeout,
                                       server_name_wait=settings.server_name_wait)
        self.commands = CommandHandlers(session, self.wire, emit, self.queries, self.files,
                                        public_refusal_wait=settings.public_refusal_wait)

    @property
    def handled_commands(self) -> frozenset[str]:
        return self.commands.names

    # --- lifecycle -----------------------------------------------------------------

    async def run(self, lines: asyncio.Queue[str | None]) -> int:
        """Connect, then serve until the input ends (0) or the connection is lost (1)."""
        self._emit(ConnectionState("connecting", self.url))
        while True:
            try:
                await self._connect()
                await self.hello.run(self._redial)
            except ChatError as exc:
                self._emit(error_event(exc))
                for event in self.session.outgoing_files.give_up_all_cut("the connection could not be made again"):
                    self._emit(event)
                self._emit(ConnectionState("offline", exc.detail))
                await self._drop()
                return 1
            self.commands.new_connection()
            lost, interrupted = await self._serve(lines)
            if lost is None:
                return 0
            self._emit(ErrorReceived("DISCONNECTED", str(lost), "client"))
            # Nothing in flight vanishes silently (issue #16): files being sent, then
            # downloads and files waiting for the server's confirmation.
            self.files.report_interrupted(interrupted)
            for event in self.session.connection_lost(resumable=self.settings.reconnect):
                self._emit(event)
            await self._drop()
            if not self.settings.reconnect:
                self._emit(ConnectionState("offline", str(lost)))
                return 1
            self.session.connection_reset()
            self._emit(Info("reconnecting…"))
            self._emit(ConnectionState("reconnecting", str(lost)))

    async def _serve(self, lines: asyncio.Queue[str | None]) -> tuple[BaseException | None, list[OutgoingFile]]:
        """One connection's tasks, until the input ends or the connection is lost: what
        was lost (None: nothing) and the files that were being sent."""
        lost: BaseException | None = None
        try:
            self._served = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                self.files.serve(group)
                group.create_task(self._read_loop())
                group.create_task(self._command_loop(lines))
                group.create_task(self.login.run())
                group.create_task(self._drop_silent_downloads())
                group.create_task(self.queries.poll_presence(self._served))
        except* ConnectionLost as failures:
            lost = failures.exceptions[0]
        finally:
            interrupted = self.files.served()
        return lost, interrupted

    async def _connect(self) -> None:
        self.wire.attach(await dial(self.url, self._emit, attempts=self.settings.connect_attempts,
                                    backoff_max=self.settings.backoff_max, open_timeout=self.settings.open_timeout))

    async def _redial(self) -> None:
        await self._drop()
        await self._connect()

    async def _drop(self) -> None:
        await self.wire.drop()
        self.queries.cancel_waiters()

    # --- the connection's tasks ----------------------------------------------------

    async def _read_loop(self) -> None:
        ws = self.wire.socket()
        loop = asyncio.get_running_loop()
        try:
            async for raw in ws:
                self._times.note_answered(loop.time())
                for event in self.session.handle(raw):
                    await self._dispatch(event)
                await self.queries.frame_read()
        except ConnectionClosedError as exc:
            raise self.wire.lost(exc) from exc
        finally:
            self.login.answered(None)
        if not self.wire.closing:
            raise ConnectionLost(f"the server closed the connection ({_close_reason(self.wire.ws)})")

    async def _dispatch(self, event: Event) -> None:
        """One event of a frame read: sent on, handed to the part waiting for it, shown."""
        if isinstance(event, Restamped):
            await self.wire.send_frames(event.frames)   # ERROR RESEND: again, transparently
            return
        if isinstance(event, PartsToRetry):
            self.files.retry_parts(event)               # file parts the busy node refused: again, paced
            return
        if isinstance(event, ListPageWanted):
            await self.wire.send_frame(event.frame)     # the list goes on: its next page
            return
        if isinstance(event, NotDelivered):
            self.files.refused(event)
            if event.kind == "public":
                self.commands.server_error(ErrorReceived(event.code, event.detail, "server"))
        event = self._times.marked(event)
        if await self.queries.held_for_a_name(event):
            return
        if isinstance(event, (LoginRegistered, LoginRegisterFailed)):
            self.login.answered(event)
            return
        if isinstance(event, ErrorReceived) and event.source == "server":
            if event.code == ErrorCode.RATE_LIMITED.value:
                self.files.rate_limited()
            self.commands.server_error(event)
        if isinstance(event, ListResult):
            self.queries.list_answered()
        self._emit(event)
        if isinstance(event, ListResult):
            self.queries.release_held()

    async def _command_loop(self, lines: asyncio.Queue[str | None]) -> None:
        try:
            await self._send_unconfirmed()
            self.files.resume_cut()
        except ConnectionClosed as exc:
            raise self.wire.lost(exc) from exc
        while True:
            line = await lines.get()
            if line is None:
                break   # end of input: files being sent are finished first
            try:
                if not await self.commands.execute(line):
                    self.files.stop_all("you left (/quit) before it was sent")
                    break
            except ConnectionClosed as exc:
                raise self.wire.lost(exc) from exc
        await self.files.finish()
        # Give deliveries in flight (answers, messages to us) a moment, then close.
        await asyncio.sleep(self.settings.linger)
        self._served.set()
        await self.wire.close()

    async def _send_unconfirmed(self) -> None:
        """After a reconnect: the messages the server never confirmed, again, byte for
        byte (it answers REPLAY for those it had; receivers drop copies)."""
        self.session.reconnected()
        again = self.session.take_unconfirmed()
        if again:
            self._emit(Info(f"sending again {len(again)} message frame(s) the server had not confirmed "
                            "before the connection was lost"))
            await self.wire.send_frames(again)

    async def _drop_silent_downloads(self) -> None:
        """A sender that starts a file and goes silent must not hold a download slot
        and a temporary file until the session ends (`incoming_files.download_idle_timeout`)."""
        interval = min(SILENT_DOWNLOAD_CHECK, self.session.incoming_files.download_idle_timeout / 4, RESUME_GRACE / 4)
        while True:
            try:
                await asyncio.wait_for(self._served.wait(), interval)
                return
            except TimeoutError:
                for event in self.session.incoming_files.expire_idle():
                    self._emit(event)
