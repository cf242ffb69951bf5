"""The client's network driver: asyncio + websockets around `ClientSession`.

    ChatClient.run(commands)
      connect      retry with exponential backoff, a clear message per failure
      hello        USER_HELLO (signed, to "*"), then the list request this server
                   answers, found by trying LIST_REQUEST, USER_LIST_REQ and WHO
                   (`dialects`; none: the presence cache is the list); only an
                   ERROR about the hello (NAME_IN_USE, BAD_KEY, …) or a close
                   refuses it, and one that refuses its signature gets a second
                   hello signed over the whole envelope (G101)
      serve        a TaskGroup of the reader (frames -> session -> events), the
                   command pump (lines -> session -> frames), a task that stores
                   the user's login on this server once per (home, server)
                   (scrypt in a thread, LOGIN_REGISTER, then the ACK or ERROR,
                   awaited, bounded, while chatting goes on), a task that drops
                   downloads whose sender went silent, and one task per file
                   being sent (at most MAX_SENDING_FILES), so /tell, /list and
                   /quit never wait for a file
      close        after EOF (files being sent are finished first) or /quit
                   (they are stopped: FILE_END, the receiver discards them): a
                   grace period for in-flight deliveries, then a normal closure
      lost         what was in flight is reported (files being sent, downloads,
                   files not yet confirmed), ConnectionState says reconnecting
                   or offline; after a reconnect the messages the server never
                   acknowledged go again, byte for byte, before the commands
                   typed meanwhile (issue #16)

The session's outbox (outbox.py) follows what the server did with our frames:
ACKs, ERRORs naming them (`msg_ref`, `msg_refs`: "not delivered", once per
message), and ERROR RESEND, answered with the frames re-stamped (`Restamped`,
which the reader sends and never shows).

File chunks go as fast as the node grants, no faster (token buckets per
connection, shared by every file being sent, modelled on what our node grants a
user: 200/s per connection after a burst of 500, 250/s per user after 1000, each
with room left for a /tell, and what an idle node lends on top until it refuses
a frame, sending.py; `file_chunk_rate` caps it lower): servers drop frames
over their rate limit, and one dropped chunk ruins the whole transfer. If the server still answers
RATE_LIMITED during a transfer, the client stops it at once (FILE_END, so the
receiver discards it) and says so, rather than send chunks that cannot help.

The WebSocket itself (dial with backoff, URL checks, the errors, and `log_in` for
`socp chat --login`) is transport.py; the pace and records of files being sent are
sending.py.
Commands come from a bounded asyncio.Queue (None = end of input) so both the
--script stdin reader and the interactive app can feed it.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from socp.protocol import login as login_values
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode, SocpError, UserNotFound
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import PUBLIC_CHANNEL, is_peer_id

from . import commands, dialects
from .chat_messages import Actions
from .commands import Command, CommandError
from .events import (
    ConnectionState,
    ErrorReceived,
    Event,
    FileFailed,
    FileProgress,
    HelpResult,
    Info,
    ListPageWanted,
    ListResult,
    LoginRegistered,
    LoginRegisterFailed,
    MessageReceived,
    MessageSent,
    NotDelivered,
    QueryOpened,
    Ready,
    Restamped,
    Transfer,
    TransferList,
)
from .file_resume import RESUME_WINDOW, UnconfirmedFile
from .incoming_files import RESUME_GRACE
from .sending import (
    FILE_CHUNK_BURST,
    IDLE_NODE_GRANTS,
    MAX_SENDING_FILES,
    NODE_GRANTS,
    RATE_LIMITED_PAUSE,
    ChunkPacer,
    OutgoingFile,
)
from .session import ClientSession
from .transport import (
    ChatError,
    ConnectFailed,
    ConnectionLost,
    HelloRejected,
    _close_reason,
    dial,
)

EmitFn = Callable[[Event], None]
_R = TypeVar("_R")
COMMAND_QUEUE_SIZE = 64
MAX_LIST_WAITERS = 32
SILENT_DOWNLOAD_CHECK = 5.0   # seconds between looks for downloads whose sender went silent
# Our node pushes no presence to its own clients (router/user_presence.py: n^2 frames),
# so join and leave lines come from a list request this often (`presence_poll`).
PRESENCE_POLL = 5.0
RECIPIENT_POLL = 1.0          # seconds between list requests while a cut file waits for its receiver
# Refusals of a USER_HELLO and what to tell the user (§7.1, §7.5).
LOGIN_REGISTER_TIMEOUT = 15.0   # for the ACK of a LOGIN_REGISTER
SERVER_NAME_WAIT = 30.0         # for a slow server to name itself before we store the login there
LIST_PROBE_TIMEOUT = 1.5      # for each list request tried on a new server (the first waits twice that)
KEY_LOOKUP_TIMEOUT = 3.0      # for a key look-up's answer (more on a server slow to answer the hello)
KEY_LOOKUP_LIMIT = 30.0       # however slow the server was
PUBLIC_REFUSAL_WAIT = 1.0     # after the first /all on a connection: does the server refuse it?
HELLO_REFUSALS = {
    "NAME_IN_USE": "the server says user id {user} is in use: {detail} (is another `socp chat` using this home?)",
    "BAD_KEY": "the server rejected our key: {detail}",
}


def command_queue() -> asyncio.Queue[str | None]:
    return asyncio.Queue(COMMAND_QUEUE_SIZE)


@dataclass(frozen=True, slots=True)
class LoginStore:
    """What the driver needs to store the user's login on its server (LOGIN_REGISTER):
    the key store's password, and the home's record of servers that keep it."""

    password: str
    is_stored: Callable[[str], bool]          # server id -> does it keep our login already?
    remember: Callable[[str, str], None]      # (server id, URL), after the server's ACK
    params: login_values.ScryptParams = login_values.DEFAULT_PARAMS


# A message stamped this long before our hello was sent while we were away (a node
# that holds messages for account holders delivers them at login, #19); the margin
# covers clocks that differ and frames still on their way when we connected.
WHILE_AWAY_MARGIN_MS = 30_000


def sent_while_away(message_ts: int, hello_at_ms: int) -> bool:
    return hello_at_ms > 0 and message_ts < hello_at_ms - WHILE_AWAY_MARGIN_MS


class ChatClient:
    def __init__(
        self,
        session: ClientSession,
        url: str,
        emit: EmitFn,
        *,
        connect_attempts: int | None = None,     # None: retry until cancelled
        backoff_max: float = 10.0,
        open_timeout: float = 10.0,
        hello_timeout: float = 10.0,
        list_timeout: float = 5.0,
        list_probe_timeout: float = LIST_PROBE_TIMEOUT,
        key_lookup_timeout: float = KEY_LOOKUP_TIMEOUT,
        public_refusal_wait: float = PUBLIC_REFUSAL_WAIT,
        linger: float = 1.0,
        reconnect: bool = False,
        auto_refresh: bool = False,              # keep the directory fresh for a user list
        file_chunk_rate: float | None = None,    # a cap below what the node grants
        file_chunk_burst: int = FILE_CHUNK_BURST,
        login_store: LoginStore | None = None,   # None: never send LOGIN_REGISTER
        register_timeout: float = LOGIN_REGISTER_TIMEOUT,
        presence_poll: float | None = PRESENCE_POLL,   # None: no list requests of our own
        server_name_wait: float = SERVER_NAME_WAIT,
    ) -> None:
        self.session = session
        self.url = url
        self._emit = emit
        self.connect_attempts = connect_attempts
        self.backoff_max = backoff_max
        self.open_timeout = open_timeout
        self.hello_timeout = hello_timeout
        self.list_timeout = list_timeout
        self.list_probe_timeout = list_probe_timeout
        self.key_lookup_timeout = key_lookup_timeout
        self.public_refusal_wait = public_refusal_wait
        self._public_accepted = False                    # a public message went through on this connection
        self._server_error: asyncio.Future[ErrorReceived] | None = None   # watched after an /all
        self._frame_seen = asyncio.Event()               # set by the reader after every frame
        self.linger = linger
        self.reconnect = reconnect
        self.auto_refresh = auto_refresh
        self._held: list[Event] = []   # events waiting for a sender's name (_held_for_a_name)
        self.file_chunk_rate = file_chunk_rate
        self.file_chunk_burst = file_chunk_burst
        self.login_store = login_store
        self.register_timeout = register_timeout
        self.presence_poll = presence_poll
        self.server_name_wait = server_name_wait
        self._register_waiter: asyncio.Future[Event | None] | None = None
        self._hello_at_ms = 0                   # our clock when this connection said hello
        self._hello_sent_at = 0.0               # loop time of that hello
        self._hello_answered_at: float | None = None   # loop time of the server's first frame after it
        self._rate_limited_at = float("-inf")   # loop time of the server's last RATE_LIMITED
        self._ws: ClientConnection | None = None
        self._closing = False
        self._list_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._group: asyncio.TaskGroup | None = None     # the TaskGroup serving this connection
        self._pacer: ChunkPacer | None = None            # FILE_CHUNKs of this connection, all files
        self._sending: list[OutgoingFile] = []
        self._served = asyncio.Event()                   # set when this connection's service ends
        self._handlers: dict[str, Callable[[Command], Awaitable[bool]]] = {
            "list": self._cmd_list,
            "tell": self._cmd_tell,
            "msg": self._cmd_tell,
            "query": self._cmd_query,
            "close": self._cmd_window_only,
            "all": self._cmd_all,
            "me": self._cmd_me,
            "file": self._cmd_file,
            "files": self._cmd_files,
            "accept": self._cmd_accept,
            "reject": self._cmd_reject,
            "cancel": self._cmd_cancel,
            "whois": self._cmd_whois,
            "trust": self._cmd_trust,
            "help": self._cmd_help,
            "quit": self._cmd_quit,
        }

    @property
    def handled_commands(self) -> frozenset[str]:
        return frozenset(self._handlers)

    # --- lifecycle -----------------------------------------------------------------

    async def run(self, lines: asyncio.Queue[str | None]) -> int:
        """Connect, then serve until the input ends (0) or the connection is lost (1)."""
        self._emit(ConnectionState("connecting", self.url))
        while True:
            try:
                await self._connect()
                await self._hello()
            except ChatError as exc:
                self._emit(ErrorReceived(_code(exc), exc.detail, "client"))
                for event in self.session.outgoing_files.give_up_all_cut("the connection could not be made again"):
                    self._emit(event)
                self._emit(ConnectionState("offline", exc.detail))
                await self._drop()
                return 1
            lost: BaseException | None = None
            interrupted: list[OutgoingFile] = []
            self._pacer = ChunkPacer(NODE_GRANTS, asyncio.get_running_loop().time, idle=IDLE_NODE_GRANTS,
                                     caps=self._caps())
            try:
                self._served = asyncio.Event()
                async with asyncio.TaskGroup() as group:
                    self._group = group
                    group.create_task(self._read_loop())
                    group.create_task(self._command_loop(lines))
                    group.create_task(self._store_login())
                    group.create_task(self._drop_silent_downloads())
                    group.create_task(self._poll_presence())
            except* ConnectionLost as failures:
                lost = failures.exceptions[0]
            finally:
                self._group = None
                interrupted, self._sending = self._sending, []   # their tasks ended with the group
            if lost is None:
                return 0
            self._emit(ErrorReceived("DISCONNECTED", str(lost), "client"))
            self._report_interrupted(interrupted)
            await self._drop()
            if not self.reconnect:
                self._emit(ConnectionState("offline", str(lost)))
                return 1
            self.session.connection_reset()
            self._emit(Info("reconnecting…"))
            self._emit(ConnectionState("reconnecting", str(lost)))

    def _caps(self) -> tuple[tuple[float, int], ...]:
        """The user's own cap on the pace of chunks (--file-rate), if any."""
        if self.file_chunk_rate is None:
            return ()
        return ((self.file_chunk_rate, self.file_chunk_burst),)

    def _report_interrupted(self, interrupted: list[OutgoingFile]) -> None:
        """Nothing in flight vanishes silently (issue #16): files being sent (they go on
        after the reconnect, or fail, file_resume.py), downloads, files waiting for
        the server's confirmation."""
        for sending in interrupted:
            label = self.session.label(sending.to) if sending.to else ""
            if not sending.file_id:
                self._emit(FileFailed("", self.session.user_id, sending.name,
                                      "the connection to the server was lost before it started; send it "
                                      "again with /file", outgoing=True, label=label))
            elif sending.stop_reason:      # being stopped (/cancel, /quit): never resumed
                self.session.outgoing_files.forget(sending.file_id)
                if not sending.reported:
                    self._emit(FileFailed(sending.file_id, self.session.user_id, sending.name,
                                          sending.stop_reason, outgoing=True, label=label))
        for event in self.session.connection_lost(resumable=self.reconnect):
            self._emit(event)

    def _resume_cut_files(self) -> None:
        """After a reconnect: each file the lost connection cut goes on in a task of its
        own (or fails, if the reconnect took too long)."""
        cut, failed = self.session.take_cut_files()
        for event in failed:
            self._emit(event)
        assert self._group is not None
        for record in cut:
            sending = OutgoingFile(name=record.name, path=str(record.path), file_id=record.file_id, to=record.to,
                                   done=record.done, size=record.size)
            self._sending.append(sending)
            sending.task = self._group.create_task(self._resume_file(sending, record))

    async def _resume_file(self, sending: OutgoingFile, record: UnconfirmedFile) -> None:
        """Once the receiver is listed again (our node refuses frames for users it does
        not know, and a restarted node learns other servers' users as they link), the
        file goes on from where the server's ACKs say."""
        try:
            steps = await self._resumed_steps(sending, record)
        except ConnectionClosed as exc:
            raise ConnectionLost(f"connection to {self.url} lost ({_close_reason(exc)})") from exc
        if steps is None:
            self._sending.remove(sending)
            return
        await self._send_file(sending, steps)

    async def _resumed_steps(self, sending: OutgoingFile, record: UnconfirmedFile) -> Iterator[Actions] | None:
        """The frames of a cut file from where it goes on, or None (said why) if it does not."""
        loop = asyncio.get_running_loop()
        cut_at = record.cut_at if record.cut_at is not None else self.session.me.now()
        deadline = loop.time() + max(0.0, RESUME_WINDOW - (self.session.me.now() - cut_at))
        while record.to != PUBLIC_CHANNEL and record.to not in self.session.directory:
            if sending.stop_reason or loop.time() >= deadline:
                why = sending.stop_reason or (f"{self.session.label(record.to)} was not back online within "
                                              f"{RESUME_WINDOW:g} s of the cut")
                self._emit(self.session.outgoing_files.give_up_cut(record, why))
                return None
            await self._refresh()
            await asyncio.sleep(min(RECIPIENT_POLL, max(0.0, deadline - loop.time())))
        try:
            return self.session.resume_file(record)
        except SocpError as exc:
            self._emit(self.session.outgoing_files.give_up_cut(record, exc.detail))
            return None

    async def _send_unconfirmed(self) -> None:
        """After a reconnect: the messages the server never confirmed, again, byte for
        byte (it answers REPLAY for those it had; receivers drop copies)."""
        self.session.reconnected()
        again = self.session.take_unconfirmed()
        if again:
            self._emit(Info(f"sending again {len(again)} message frame(s) the server had not confirmed "
                            "before the connection was lost"))
            await self._send_frames(again)

    async def _connect(self) -> None:
        self._ws = await dial(self.url, self._emit, attempts=self.connect_attempts, backoff_max=self.backoff_max,
                              open_timeout=self.open_timeout)
        self._closing = False

    async def _hello(self) -> None:
        """§7.1: hello, then find the list request this server answers. A server that
        refused the hello's signature over the payload gets one more hello on a new
        connection, signed over the whole envelope (G101's form)."""
        try:
            await self._say_hello()
        except HelloRejected as exc:
            if not exc.about_signature or self.session.hello_signs_envelope:
                raise
            self.session.hello_signs_envelope = True
            self._emit(Info(f"the server refused the hello's signature ({exc.wire_code}); saying hello again, "
                            "signed over the whole envelope as that server checks it"))
            await self._drop()
            await self._connect()
            self.session.connection_reset()
            await self._say_hello()

    async def _say_hello(self) -> None:
        """The hello is refused only by an ERROR that names it (NAME_IN_USE, BAD_KEY,
        INVALID_SIG, …) or a close. List requests go one after another (LIST_REQUEST,
        USER_LIST_REQ, WHO), each until its answer, an UNKNOWN_TYPE or a short
        timeout; with none answered, the users the server announces are the list."""
        assert self._ws is not None
        self._hello_at_ms = self.session.now_ms()
        loop = asyncio.get_running_loop()
        self._hello_sent_at, self._hello_answered_at = loop.time(), None
        await self._ws.send(self.session.hello().to_wire())
        hello_deadline = loop.time() + self.hello_timeout   # the whole hello, every try included
        remembered = self.session.list_dialect
        if remembered == dialects.PRESENCE_ONLY:
            await self._hello_answers(None, min(self.list_probe_timeout, self.hello_timeout))
        else:
            tries = [remembered] if remembered else [k for k in dialects.LIST_DIALECTS
                                                     if k not in self.session.unsupported]
            for index, kind in enumerate(tries):
                frame = self.session.list_request(requested=False, dialect=kind)
                assert frame is not None
                await self._ws.send(frame.to_wire())
                # The first answer also waits for the server to take the hello in.
                wait = min(self.list_probe_timeout * (2 if index == 0 else 1), hello_deadline - loop.time())
                if await self._hello_answers(kind, wait):
                    break
            else:
                self.session.no_list_request()
                self._emit(Info("this server answers no list request; /list shows the users it has announced"))
        self._public_accepted = False
        self.session.presence_news = True
        self._emit(Ready(self.session.user_id, self.session.display_name, self.session.fingerprint, self.url))

    async def _hello_answers(self, kind: str | None, timeout: float) -> bool:
        """Read the server until it answers the list request `kind` (True), refuses it
        or the time is up (False); raise HelloRejected on a refusal of the hello."""
        assert self._ws is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            try:
                raw = await asyncio.wait_for(self._ws.recv(), remaining)
            except TimeoutError:
                break
            except ConnectionClosed as exc:
                raise HelloRejected(
                    f"the server closed the connection during the hello ({_close_reason(exc)})") from exc
            self._note_hello_answered()
            events = self.session.handle(raw)
            for event in events:
                if (isinstance(event, ErrorReceived) and event.source == "server"
                        and dialects.is_hello_refusal(event.code)):
                    template = HELLO_REFUSALS.get(event.code, "the server refused the hello: {code} {detail}")
                    raise HelloRejected(template.format(user=self.session.user_id, code=event.code,
                                                        detail=event.detail), wire_code=event.code,
                                        about_signature=dialects.asks_for_envelope_signature(event.code,
                                                                                             event.detail))
            for event in events:
                if isinstance(event, Restamped):
                    await self._send_frames(event.frames)
                elif isinstance(event, ListPageWanted):
                    await self._ws.send(event.frame.to_wire())
                    deadline = loop.time() + timeout     # each page of a long list gets the same time
                else:
                    self._emit(self._marked_while_away(event))
            if any(isinstance(event, ListResult) for event in events):
                return True
            if kind is not None and kind in self.session.unsupported:
                return False
        return False

    def _marked_while_away(self, event: Event) -> Event:
        if isinstance(event, MessageReceived) and sent_while_away(event.ts, self._hello_at_ms):
            return replace(event, while_away=True)
        return event

    async def _drop(self) -> None:
        if self._ws is not None:
            self._closing = True
            await self._ws.close()
            self._ws = None
        for waiter in self._list_waiters:
            waiter.cancel()
        self._list_waiters.clear()

    async def _read_loop(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                self._note_hello_answered()
                for event in self.session.handle(raw):
                    if isinstance(event, Restamped):
                        await self._send_frames(event.frames)   # ERROR RESEND: again, transparently
                        continue
                    if isinstance(event, ListPageWanted):
                        await self._ws.send(event.frame.to_wire())   # the list goes on: its next page
                        continue
                    if isinstance(event, NotDelivered):
                        self._refused(event)
                    event = self._marked_while_away(event)
                    if await self._held_for_a_name(event):
                        continue
                    if isinstance(event, (LoginRegistered, LoginRegisterFailed)):
                        self._login_answered(event)
                        continue
                    if (isinstance(event, ErrorReceived) and event.source == "server"
                            and event.code == ErrorCode.RATE_LIMITED.value):
                        self._rate_limited_at = asyncio.get_running_loop().time()
                    if (isinstance(event, ErrorReceived) and event.source == "server"
                            and self._server_error is not None and not self._server_error.done()):
                        self._server_error.set_result(event)
                    if isinstance(event, ListResult) and self._list_waiters:
                        waiter = self._list_waiters.popleft()
                        if not waiter.done():
                            waiter.set_result(None)
                    self._emit(event)
                    if isinstance(event, ListResult):
                        self._release_held()
                self._frame_seen.set()
                if self.auto_refresh and self.session.directory_stale and not self._list_waiters:
                    await self._request_list(requested=False)
        except ConnectionClosedError as exc:
            raise ConnectionLost(f"connection to {self.url} lost ({_close_reason(exc)})") from exc
        finally:
            self._login_answered(None)
        if not self._closing:
            raise ConnectionLost(f"the server closed the connection ({_close_reason(self._ws)})")

    async def _held_for_a_name(self, event: Event) -> bool:
        """A message from someone not in our directory (the node does not tell every
        user of every join) waits, with the messages after it, for one LIST_RESPONSE
        (at most `list_timeout`), so it is shown under the sender's name, in order."""
        if not isinstance(event, MessageReceived):
            return False
        if self._held:
            self._held.append(event)
            return True
        if event.sender in self.session.directory or event.sender == self.session.user_id:
            return False
        self._held.append(event)
        asyncio.get_running_loop().call_later(self.list_timeout, self._release_held)
        await self._request_list(requested=False)
        return True

    def _refused(self, event: NotDelivered) -> None:
        """The server refused a frame of ours. A file still being sent is stopped (the
        rest cannot help; its FILE_END tells the receiver to discard it); a refused
        public message is the answer an /all waits for."""
        if event.code == ErrorCode.RATE_LIMITED.value:
            self._rate_limited_at = asyncio.get_running_loop().time()
        if event.code in (ErrorCode.RATE_LIMITED.value, ErrorCode.OVERLOADED.value) and self._pacer is not None:
            self._pacer.node_refused()     # nothing to spare: the next chunks keep to the floor
        if event.kind == "file":
            for sending in self._sending:
                if sending.file_id and sending.file_id == event.file_id:
                    sending.stop_reason = sending.stop_reason or f"the server refused it ({event.code})"
                    sending.reported = True
        if (event.kind == "public" and self._server_error is not None and not self._server_error.done()):
            self._server_error.set_result(ErrorReceived(event.code, event.detail, "server"))

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for event in held:
            if isinstance(event, MessageReceived):
                event = replace(event, label=self.session.label(event.sender))
            self._emit(event)

    def _login_answered(self, event: Event | None) -> None:
        """The answer to our LOGIN_REGISTER (None: the connection ended first)."""
        waiter = self._register_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(event)
        elif event is not None:
            self._emit(event)

    async def _store_login(self) -> None:
        """Once per (home, server): keep our encrypted key and password verifier on the
        server, so that `socp chat --login` works on another machine. Runs beside the
        reader and the command pump: it never holds up chatting, and a refusal is
        reported (LoginRegisterFailed) and tried again on the next start."""
        store = self.login_store
        if store is None:
            return
        # A slow server may name itself only after the hello's list probes gave up (G17
        # under load answers the hello after ~9 s): wait for it, bounded. G17 hands out
        # only the keys of users who registered, so skipping this breaks every DM there.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.server_name_wait
        while not self.session.server_id and not self._closing and loop.time() < deadline:
            await asyncio.sleep(0.1)
        server_id = self.session.server_id
        if not server_id or store.is_stored(server_id):
            return
        registration = await asyncio.to_thread(login_values.register, store.password, self.session.user_key,
                                               store.params)
        if self._closing or self._ws is None:
            return
        waiter: asyncio.Future[Event | None] = asyncio.get_running_loop().create_future()
        self._register_waiter = waiter
        try:
            try:
                await self._ws.send(self.session.login_register(registration).to_wire())
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
            self._register_waiter = None
        if outcome is None:
            return
        if isinstance(outcome, LoginRegistered):
            store.remember(server_id, self.url)
        self._emit(outcome)

    async def _drop_silent_downloads(self) -> None:
        """A sender that starts a file and goes silent must not hold a download slot
        and a temporary file until the session ends (`incoming_files.download_idle_timeout`)."""
        interval = min(SILENT_DOWNLOAD_CHECK, self.session.incoming_files.download_idle_timeout / 4, RESUME_GRACE / 4)
        while True:
            try:
                await asyncio.wait_for(self._served.wait(), interval)
                return
            except TimeoutError:
                for event in self.session.expire_idle_downloads():
                    self._emit(event)

    async def _poll_presence(self) -> None:
        """Ask for the list now and then, so that joins and leaves are seen without
        /list, on servers that do not push presence (a server that answers no list
        request pushes it: nothing to ask there)."""
        if self.presence_poll is None:
            return
        while True:
            try:
                await asyncio.wait_for(self._served.wait(), self.presence_poll)
                return
            except TimeoutError:
                pass
            if self.session.list_dialect == dialects.PRESENCE_ONLY or self._list_waiters or self._ws is None:
                continue
            try:
                await self._request_list(requested=False)
            except ConnectionClosed:
                return   # the reader reports the lost connection

    async def _command_loop(self, lines: asyncio.Queue[str | None]) -> None:
        try:
            await self._send_unconfirmed()
            self._resume_cut_files()
        except ConnectionClosed as exc:
            raise ConnectionLost(f"connection to {self.url} lost ({_close_reason(exc)})") from exc
        while True:
            line = await lines.get()
            if line is None:
                break   # end of input: files being sent are finished first
            try:
                if not await self.execute(line):
                    self._stop_sending("you left (/quit) before it was sent")
                    break
            except ConnectionClosed as exc:
                raise ConnectionLost(f"connection to {self.url} lost ({_close_reason(exc)})") from exc
        if self._sending:
            await asyncio.wait([sending.task for sending in self._sending if sending.task is not None])
        # Give deliveries in flight (answers, messages to us) a moment, then close.
        await asyncio.sleep(self.linger)
        self._closing = True
        self._served.set()
        assert self._ws is not None
        await self._ws.close()

    # --- commands -----------------------------------------------------------------

    async def execute(self, line: str) -> bool:
        """Run one command line; False means the user asked to quit."""
        if not line.strip():
            return True
        try:
            command = commands.parse(line)
            return await self._handlers[command.name](command)
        except SocpError as exc:
            self._emit(ErrorReceived(_code(exc), exc.detail, "client"))
            return True

    async def _send(self, actions: Actions) -> None:
        await self._send_frames(actions.frames)
        for event in actions.events:
            self._emit(event)

    async def _send_frames(self, frames_out: tuple[Envelope, ...]) -> None:
        assert self._ws is not None
        for frame in frames_out:
            await self._ws.send(frame.to_wire())
            self.session.frames_sent((frame,))   # in wire order: what a cumulative ACK covers

    async def _request_list(self, *, requested: bool) -> asyncio.Future[None]:
        assert self._ws is not None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        request = self.session.list_request(requested=requested)
        if request is None:
            # No list request on this server (G56): the presence cache is the answer, now.
            waiter.set_result(None)
            self._emit(self.session.presence_list(requested=requested))
            self._release_held()
            return waiter
        if len(self._list_waiters) >= MAX_LIST_WAITERS:
            self._list_waiters.popleft().cancel()
        self._list_waiters.append(waiter)
        await self._ws.send(request.to_wire())
        return waiter

    async def _refresh(self, *, requested: bool = False) -> None:
        """LIST_REQUEST and wait (bounded) for its answer."""
        waiter = await self._request_list(requested=requested)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.list_timeout)
        except TimeoutError:
            self._emit(Info(f"no answer to {self.session.list_dialect or 'LIST_REQUEST'}"))

    async def _with_directory(self, target: str, then: Callable[[], _R]) -> _R:
        """Run `then`; if the user or their key is unknown, refresh the directory once,
        then ask the server for the key (peers' servers list users without keys)."""
        if not self.session.directory_loaded or not self.session.knows_key(target):
            await self._refresh()
        try:
            return then()
        except UserNotFound:
            await self._look_up_key(target)
            return then()

    async def _look_up_key(self, target: str) -> None:
        """DIRECTORY_GET / PUBKEY_REQUEST / USER_DB_GET (those this server may answer),
        then wait, bounded, until the key is known or every look-up was answered."""
        assert self._ws is not None
        try:
            user_id = self.session.resolve(target)
        except SocpError:
            user_id = target
        lookups = self.session.key_lookups(user_id) if is_peer_id(user_id) else ()
        if not lookups:
            return
        answered_before = self.session.lookup_answers
        for frame in lookups:
            await self._ws.send(frame.to_wire())
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        # The wait grows while the server has not even answered our hello.
        while (not self.session.knows_key(user_id)
               and (remaining := sent_at + self._key_lookup_wait() - loop.time()) > 0):
            if self.session.lookup_answers - answered_before >= len(lookups):
                return   # every look-up answered (or refused), none with a key
            self._frame_seen.clear()
            try:
                await asyncio.wait_for(self._frame_seen.wait(), remaining)
            except TimeoutError:
                continue   # the wait may have grown meanwhile (KEY_LOOKUP_LIMIT bounds it)

    def _note_hello_answered(self) -> None:
        if self._hello_answered_at is None:
            self._hello_answered_at = asyncio.get_running_loop().time()

    def _key_lookup_wait(self) -> float:
        """How long to wait for a look-up's answer: `key_lookup_timeout`, or twice the
        time this server took to answer our hello (so far, if it has not yet), up to
        KEY_LOOKUP_LIMIT. A busy G17 took 6.5 s to answer the hello and answers one
        frame after another: its PUBKEY_RESPONSE came 5 s after our look-ups
        (tests/interop/recorded/g17-slow-lookup.jsonl), long after 3 s."""
        answered = self._hello_answered_at
        took = (answered if answered is not None else asyncio.get_running_loop().time()) - self._hello_sent_at
        return min(max(self.key_lookup_timeout, 2 * took), max(self.key_lookup_timeout, KEY_LOOKUP_LIMIT))

    async def _prepare_channel(self) -> None:
        """Members may have joined since the last list; our sending key may not exist yet."""
        if self.session.directory_stale:
            await self._refresh()
        if not self.session.channel_keys.has_own:
            if self.session.channel_keys.must_make_own:
                self._emit(Info("making your public channel key (once, on first use: RSA-4096, about a second)…"))
            await asyncio.to_thread(self.session.channel_keys.own)

    async def _cmd_list(self, command: Command) -> bool:
        await self._refresh(requested=True)
        return True

    async def _cmd_tell(self, command: Command) -> bool:
        user, text = command.args["user"], command.args["text"]
        await self._send(await self._with_directory(user, lambda: self.session.tell(user, text)))
        return True

    async def _cmd_query(self, command: Command) -> bool:
        user = command.args["user"]
        user_id = await self._with_directory(user, lambda: self.session.resolve(user))
        if user_id == self.session.user_id:
            raise CommandError("that is you")
        self._emit(QueryOpened(user_id, self.session.label(user_id)))
        return True

    async def _cmd_window_only(self, command: Command) -> bool:
        raise CommandError(f"/{command.name} acts on the app's windows; there are none in --script")

    async def _cmd_me(self, command: Command) -> bool:
        """Outside a window (--script) an action goes to the public channel."""
        return await self._cmd_all(Command("all", {"text": commands.ME_PREFIX + command.args["text"]}))

    async def _cmd_files(self, command: Command) -> bool:
        sending = tuple(
            Transfer(s.file_id, s.name, "send", self.session.label(s.to) if s.to else "?", s.done, s.size,
                     "stopping" if s.stop_reason else "sending")
            for s in self._sending)
        self._emit(TransferList(sending + self.session.incoming_transfers()))
        return True

    async def _cmd_accept(self, command: Command) -> bool:
        for event in self.session.accept(command.args["file"]):
            self._emit(event)
        return True

    async def _cmd_reject(self, command: Command) -> bool:
        for event in self.session.reject(command.args["file"]):
            self._emit(event)
        return True

    async def _cmd_all(self, command: Command) -> bool:
        """Servers that do not carry public messages (or our key shares) answer with an
        ERROR: after the first /all of a connection we wait briefly for one, and say
        "sent" only if none came."""
        await self._prepare_channel()
        actions = self.session.post_public(command.args["text"])
        if self._public_accepted or self.public_refusal_wait <= 0:
            await self._send(actions)
            return True
        self._server_error = asyncio.get_running_loop().create_future()
        sent = tuple(event for event in actions.events if isinstance(event, MessageSent))
        try:
            await self._send(Actions(frames=actions.frames,
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

    async def _cmd_file(self, command: Command) -> bool:
        """Check the target and the file, then send it in a task of its own."""
        target, path = command.args["target"], Path(command.args["path"])
        if len(self._sending) >= MAX_SENDING_FILES:
            raise CommandError(f"already sending {len(self._sending)} files, the most at once; "
                               "wait for one to finish or /cancel one")
        if target == PUBLIC_CHANNEL:
            await self._prepare_channel()
            steps = self.session.send_file(target, path)
        else:
            steps = await self._with_directory(target, lambda: self.session.send_file(target, path))
        assert self._group is not None
        sending = OutgoingFile(name=path.expanduser().name, path=command.args["path"])
        self._sending.append(sending)
        sending.task = self._group.create_task(self._send_file(sending, steps))
        return True

    async def _cmd_cancel(self, command: Command) -> bool:
        wanted = command.args["file"]
        found = [sending for sending in self._sending if sending.matches(wanted) and not sending.stop_reason]
        if not found:
            raise CommandError(f"no file called {wanted!r} is being sent")
        if len(found) > 1:
            raise CommandError(f"several files match {wanted!r}; give the file id: "
                               + ", ".join(sending.file_id for sending in found))
        found[0].stop_reason = "you cancelled it (/cancel); the receiver discards the part it has"
        return True

    def _stop_sending(self, reason: str) -> None:
        for sending in self._sending:
            sending.stop_reason = sending.stop_reason or reason

    async def _send_file(self, sending: OutgoingFile, steps: Iterator[Actions]) -> None:
        """One file's task: its frames, FILE_CHUNKs no faster than the shared pacer allows.
        Stops between two chunks when asked (/cancel, /quit) or throttled, with a
        FILE_END so that the receiver discards the file at once."""
        cut = False   # by the lost connection: it stays in _sending, for run() to report
        try:
            await self._send_paced(sending, steps)
        except ConnectionClosed as exc:
            cut = True
            raise ConnectionLost(f"connection to {self.url} lost ({_close_reason(exc)})") from exc
        except asyncio.CancelledError:
            cut = True    # the TaskGroup ends: the connection was lost
            raise
        except OSError as exc:   # the file became unreadable after its hash was taken
            steps.close()  # type: ignore[attr-defined]  # send_file's Iterator is a generator
            reason = f"cannot read {sending.path}: {exc.strerror or exc}"
            await self._give_up(sending, reason)
        finally:
            if not cut and sending in self._sending:
                self._sending.remove(sending)

    async def _send_paced(self, sending: OutgoingFile, steps: Iterator[Actions]) -> None:
        assert self._pacer is not None
        started = asyncio.get_running_loop().time()
        for actions in steps:
            if sending.file_id and self._rate_limited_at >= started and not sending.stop_reason:
                sending.stop_reason = "the server rate-limited the transfer and dropped chunks; try a lower --file-rate"
                await asyncio.sleep(RATE_LIMITED_PAUSE)   # let the server's bucket refill for the FILE_END
            if sending.stop_reason:
                steps.close()  # type: ignore[attr-defined]  # send_file's Iterator is a generator
                await self._give_up(sending, sending.stop_reason)
                return
            if any(frame.type == T.FILE_CHUNK for frame in actions.frames):
                # Always give the loop a turn: on a busy machine signing a chunk can take
                # longer than the pace, and the reader must still read the ACKs a file
                # resumes after (file_resume.py).
                await asyncio.sleep(max(0.0, self._pacer.delay()))
            await self._send(actions)
            for event in actions.events:
                if isinstance(event, FileProgress):
                    sending.done, sending.size = event.done, event.total
            for frame in actions.frames:
                if frame.type == T.FILE_START:
                    sending.file_id, sending.to = frame.payload["file_id"], frame.to

    async def _give_up(self, sending: OutgoingFile, reason: str) -> None:
        """Stop sending a file: a FILE_END tells the receiver to discard what it has;
        if nothing of it was sent yet, we only say it failed."""
        if sending.file_id:
            actions = self.session.abandon_file(sending.file_id, sending.to, sending.name, reason)
            await self._send(Actions(frames=actions.frames) if sending.reported else actions)
        else:
            self._emit(FileFailed("", self.session.user_id, sending.name, reason, outgoing=True,
                                  label=self.session.label(sending.to) if sending.to else ""))

    async def _cmd_whois(self, command: Command) -> bool:
        user = command.args["user"]
        if not self.session.knows_key(user):
            await self._refresh()
        self._emit(self.session.whois(user))
        return True

    async def _cmd_trust(self, command: Command) -> bool:
        for event in self.session.trust(command.args["user"]):
            self._emit(event)
        return True

    async def _cmd_help(self, command: Command) -> bool:
        self._emit(HelpResult(commands.help_rows()))
        return True

    async def _cmd_quit(self, command: Command) -> bool:
        return False


def _code(exc: SocpError) -> str:
    if isinstance(exc, CommandError):
        return exc.client_code
    if isinstance(exc, ConnectFailed):
        return "UNREACHABLE"
    if isinstance(exc, HelloRejected):
        return exc.wire_code or "HELLO_REJECTED"
    return exc.code.value


