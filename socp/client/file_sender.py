"""Files being sent, each by a task of its own (at most MAX_SENDING_FILES), so that
/tell, /list and /quit never wait for a file.

    start / cancel / stop_all   /file, /cancel, /quit
    refused / rate_limited      what the reader saw the server do with our frames
    resume_cut                  after a reconnect: each file the lost connection cut
                                goes on (file_resume.py), or fails
    report_interrupted          after a loss: what was being sent, said

File chunks go as fast as the node grants, no faster (token buckets per
connection, shared by every file being sent, modelled on what our node grants a
user: 200/s per connection after a burst of 500, 250/s per user after 1000, each
with room left for a /tell, and what an idle node lends on top until it refuses
a frame, sending.py; `file_chunk_rate` caps it lower): servers drop frames over
their rate limit, and one dropped chunk ruins the whole transfer. A part our node
refuses by name for its load (OVERLOADED, RATE_LIMITED with its msg_ref, outbox.py)
goes again after the pause it asks for, ahead of the next new part, and the
receiver holds the parts that overtook it (downloads.py); the FILE_END waits until
the node has taken every part (`Actions.settle`), so it never overtakes one. If the
server answers RATE_LIMITED without naming the frame, the file is stopped at once
(FILE_END, so the receiver discards it) and the user told, rather than send chunks
that cannot help.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode, SocpError
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import PUBLIC_CHANNEL

from .chat_messages import Actions
from .commands import CommandError
from .events import FileFailed, FileProgress, NotDelivered, PartsToRetry, Transfer
from .file_resume import RESUME_WINDOW, UnconfirmedFile
from .sending import IDLE_NODE_GRANTS, MAX_SENDING_FILES, NODE_GRANTS, RATE_LIMITED_PAUSE, ChunkPacer, OutgoingFile
from .session import ClientSession
from .user_queries import UserQueries
from .wire import EmitFn, Wire

RECIPIENT_POLL = 1.0          # seconds between list requests while a cut file waits for its receiver
# How long a file's FILE_END waits for the node to take (ACK) its last parts. A busy
# node may hold ACKs back (its ack_max_delay); past this the FILE_END goes anyway.
SETTLE_WAIT = 10.0
SETTLE_POLL = 0.02


class FileSender:
    def __init__(self, session: ClientSession, wire: Wire, emit: EmitFn, queries: UserQueries, *,
                 caps: tuple[tuple[float, int], ...]) -> None:
        self.session = session
        self._wire = wire
        self._emit = emit
        self._queries = queries
        self._caps = caps                                 # the user's own cap (--file-rate), if any
        self.sending: list[OutgoingFile] = []
        self._group: asyncio.TaskGroup | None = None      # the TaskGroup serving this connection
        self._pacer: ChunkPacer | None = None             # FILE_CHUNKs of this connection, all files
        self._rate_limited_at = float("-inf")             # loop time of the server's last RATE_LIMITED
        self._retries: dict[str, deque[Envelope]] = {}    # file id -> its refused parts, to send again

    # --- the connection's life ----------------------------------------------------

    def serve(self, group: asyncio.TaskGroup) -> None:
        """A connection begins: its files' tasks go in `group`, paced afresh."""
        self._pacer = ChunkPacer(NODE_GRANTS, asyncio.get_running_loop().time, idle=IDLE_NODE_GRANTS,
                                 caps=self._caps)
        self._group = group

    def served(self) -> list[OutgoingFile]:
        """The connection's service ended; the files it cut (their tasks ended with it)."""
        self._group = None
        interrupted, self.sending = self.sending, []
        return interrupted

    async def finish(self) -> None:
        """End of input: the files being sent are finished first."""
        if self.sending:
            await asyncio.wait([sending.task for sending in self.sending if sending.task is not None])

    def report_interrupted(self, interrupted: list[OutgoingFile]) -> None:
        """Nothing in flight vanishes silently (issue #16): a file being sent goes on
        after the reconnect (file_resume.py), or is said to have failed."""
        for sending in interrupted:
            label = self.session.users.label(sending.to) if sending.to else ""
            if not sending.file_id:
                self._emit(FileFailed("", self.session.me.user_id, sending.name,
                                      "the connection to the server was lost before it started; send it "
                                      "again with /file", outgoing=True, label=label))
            elif sending.stop_reason:      # being stopped (/cancel, /quit): never resumed
                self.session.outgoing_files.forget(sending.file_id)
                if not sending.reported:
                    self._emit(FileFailed(sending.file_id, self.session.me.user_id, sending.name,
                                          sending.stop_reason, outgoing=True, label=label))

    # --- the user's commands ------------------------------------------------------

    def ensure_room(self) -> None:
        if len(self.sending) >= MAX_SENDING_FILES:
            raise CommandError(f"already sending {len(self.sending)} files, the most at once; "
                               "wait for one to finish or /cancel one")

    def start(self, path: str, steps: Iterator[Actions]) -> None:
        """Send a checked file (`session.outgoing_files.send`'s steps) in a task of its own."""
        assert self._group is not None
        sending = OutgoingFile(name=Path(path).expanduser().name, path=path)
        self.sending.append(sending)
        sending.task = self._group.create_task(self._send_file(sending, steps))

    def cancel(self, wanted: str) -> None:
        found = [sending for sending in self.sending if sending.matches(wanted) and not sending.stop_reason]
        if not found:
            raise CommandError(f"no file called {wanted!r} is being sent")
        if len(found) > 1:
            raise CommandError(f"several files match {wanted!r}; give the file id: "
                               + ", ".join(sending.file_id for sending in found))
        found[0].stop_reason = "you cancelled it (/cancel); the receiver discards the part it has"

    def stop_all(self, reason: str) -> None:
        for sending in self.sending:
            sending.stop_reason = sending.stop_reason or reason

    def transfers(self) -> tuple[Transfer, ...]:
        return tuple(
            Transfer(s.file_id, s.name, "send", self.session.users.label(s.to) if s.to else "?", s.done, s.size,
                     "stopping" if s.stop_reason else "sending")
            for s in self.sending)

    # --- what the server did ------------------------------------------------------

    def rate_limited(self) -> None:
        self._rate_limited_at = asyncio.get_running_loop().time()

    def refused(self, event: NotDelivered) -> None:
        """The server refused a frame of ours. A file still being sent is stopped (the
        rest cannot help; its FILE_END tells the receiver to discard it)."""
        if event.code == ErrorCode.RATE_LIMITED.value:
            self.rate_limited()
        if event.code in (ErrorCode.RATE_LIMITED.value, ErrorCode.OVERLOADED.value) and self._pacer is not None:
            self._pacer.node_refused()     # nothing to spare: the next chunks keep to the floor
        if event.kind == "file":
            for sending in self.sending:
                if sending.file_id and sending.file_id == event.file_id:
                    sending.stop_reason = sending.stop_reason or f"the server refused it ({event.code})"
                    sending.reported = True

    def retry_parts(self, event: PartsToRetry) -> None:
        """The node refused parts of our files for its load: each goes again, by its
        file's task, after the pause the node asked for."""
        if self._pacer is not None:
            self._pacer.node_refused()
            self._pacer.pause(event.pause)
        for frame in event.frames:
            file_id = frame.payload["file_id"]
            sending = next((s for s in self.sending if s.file_id == file_id), None)
            if sending is None:     # its task ended: its FILE_END went (after SETTLE_WAIT) or it stopped
                for lost in self.session.outgoing_files.part_lost(file_id, event.code):
                    self._emit(lost)
            elif not sending.stop_reason:
                self._retries.setdefault(file_id, deque()).append(frame)

    # --- one file's task ----------------------------------------------------------

    async def _send_file(self, sending: OutgoingFile, steps: Iterator[Actions]) -> None:
        """One file's task: its frames, FILE_CHUNKs no faster than the shared pacer allows.
        Stops between two chunks when asked (/cancel, /quit) or throttled, with a
        FILE_END so that the receiver discards the file at once."""
        cut = False   # by the lost connection: it stays in `sending`, for the report
        try:
            await self._send_paced(sending, steps)
        except ConnectionClosed as exc:
            cut = True
            raise self._wire.lost(exc) from exc
        except asyncio.CancelledError:
            cut = True    # the TaskGroup ends: the connection was lost
            raise
        except OSError as exc:   # the file became unreadable after its hash was taken
            steps.close()  # type: ignore[attr-defined]  # send_file's Iterator is a generator
            reason = f"cannot read {sending.path}: {exc.strerror or exc}"
            await self._give_up(sending, reason)
        finally:
            self._retries.pop(sending.file_id, None)
            if not cut and sending in self.sending:
                self.sending.remove(sending)

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
            if actions.settle:
                await self._settle(sending)
                continue
            await self._send_retries(sending)
            if any(frame.type == T.FILE_CHUNK for frame in actions.frames):
                # Always give the loop a turn: on a busy machine signing a chunk can take
                # longer than the pace, and the reader must still read the ACKs a file
                # resumes after (file_resume.py).
                await asyncio.sleep(max(0.0, self._pacer.delay()))
            await self._wire.send(actions)
            for event in actions.events:
                if isinstance(event, FileProgress):
                    sending.done, sending.size = event.done, event.total
            for frame in actions.frames:
                if frame.type == T.FILE_START:
                    sending.file_id, sending.to = frame.payload["file_id"], frame.to

    async def _send_retries(self, sending: OutgoingFile) -> None:
        """The parts of this file the node refused for its load, again, paced."""
        assert self._pacer is not None
        waiting = self._retries.get(sending.file_id)
        while waiting and not sending.stop_reason:
            await asyncio.sleep(max(0.0, self._pacer.delay()))
            await self._wire.send_frames((waiting.popleft(),))

    async def _settle(self, sending: OutgoingFile) -> None:
        """Before the FILE_END: until the node has taken every part sent (or refused
        one for good), send again what it refused for its load; at most SETTLE_WAIT."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_WAIT
        while not sending.stop_reason and loop.time() < deadline:
            await self._send_retries(sending)
            if not self._retries.get(sending.file_id) and self.session.outgoing_files.settled(sending.file_id):
                return
            await asyncio.sleep(SETTLE_POLL)

    async def _give_up(self, sending: OutgoingFile, reason: str) -> None:
        """Stop sending a file: a FILE_END tells the receiver to discard what it has;
        if nothing of it was sent yet, we only say it failed."""
        if sending.file_id:
            actions = self.session.outgoing_files.abandon(sending.file_id, sending.to, sending.name, reason)
            await self._wire.send(Actions(frames=actions.frames) if sending.reported else actions)
        else:
            self._emit(FileFailed("", self.session.me.user_id, sending.name, reason, outgoing=True,
                                  label=self.session.users.label(sending.to) if sending.to else ""))

    # --- files the lost connection cut --------------------------------------------

    def resume_cut(self) -> None:
        """After a reconnect: each file the lost connection cut goes on in a task of its
        own (or fails, if the reconnect took too long)."""
        cut, failed = self.session.outgoing_files.take_cut()
        for event in failed:
            self._emit(event)
        assert self._group is not None
        for record in cut:
            sending = OutgoingFile(name=record.name, path=str(record.path), file_id=record.file_id, to=record.to,
                                   done=record.done, size=record.size)
            self.sending.append(sending)
            sending.task = self._group.create_task(self._resume_file(sending, record))

    async def _resume_file(self, sending: OutgoingFile, record: UnconfirmedFile) -> None:
        """Once the receiver is listed again (our node refuses frames for users it does
        not know, and a restarted node learns other servers' users as they link), the
        file goes on from where the server's ACKs say."""
        try:
            steps = await self._resumed_steps(sending, record)
        except ConnectionClosed as exc:
            raise self._wire.lost(exc) from exc
        if steps is None:
            self.sending.remove(sending)
            return
        await self._send_file(sending, steps)

    async def _resumed_steps(self, sending: OutgoingFile, record: UnconfirmedFile) -> Iterator[Actions] | None:
        """The frames of a cut file from where it goes on, or None (said why) if it does not."""
        loop = asyncio.get_running_loop()
        cut_at = record.cut_at if record.cut_at is not None else self.session.me.now()
        deadline = loop.time() + max(0.0, RESUME_WINDOW - (self.session.me.now() - cut_at))
        while record.to != PUBLIC_CHANNEL and record.to not in self.session.users.users:
            if sending.stop_reason or loop.time() >= deadline:
                why = sending.stop_reason or (f"{self.session.users.label(record.to)} was not back online within "
                                              f"{RESUME_WINDOW:g} s of the cut")
                self._emit(self.session.outgoing_files.give_up_cut(record, why))
                return None
            await self._queries.refresh()
            await asyncio.sleep(min(RECIPIENT_POLL, max(0.0, deadline - loop.time())))
        try:
            return self.session.outgoing_files.resume(record)
        except SocpError as exc:
            self._emit(self.session.outgoing_files.give_up_cut(record, exc.detail))
            return None
