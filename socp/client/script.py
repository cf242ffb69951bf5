"""`socp chat --script`: commands from stdin, one JSON object per event on stdout.

Commands run one after the other, each to completion (a /tell that needs a
/list waits for it, bounded), so a script's output order follows its input;
only a /file, once its recipient and file are checked, goes on in the
background (its `file_sent` or `file_failed` says when it ends). At end of input the client
finishes the files being sent, waits `linger` seconds for deliveries in flight,
closes normally and exits 0 (/quit instead stops the files being sent); it exits 1 if it cannot connect, is refused, or
loses the connection (with `reconnect`, it connects again instead). Storing the login on the server (`registered` or
`register_failed`) runs beside the commands and never changes the exit code.
Blank lines and lines starting with '#' are skipped.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TextIO

from .connection import ChatClient, ConnectionSettings, LoginStore, command_queue
from .events import Event, ListResult
from .render import event_to_json_line
from .session import ClientSession

HAND_OVER_POLL = 0.1   # seconds between tries while the command queue is full


class JsonLinesOutput:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: Event) -> None:
        if isinstance(event, ListResult) and not event.requested:
            return  # the client's own directory refreshes are not the script's business
        self._stream.write(event_to_json_line(event) + "\n")
        self._stream.flush()


def _feed_lines(stream: TextIO, queue: asyncio.Queue[str | None], loop: asyncio.AbstractEventLoop) -> None:
    """Runs in a daemon thread: blocking reads, each line handed to the loop's bounded
    queue (the thread waits while it is full). It never makes a coroutine (one the
    loop ends before running would be "never awaited") and stops quietly once the
    client is gone (issue #16: a failed connect raced it)."""
    for line in stream:
        line = line.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not _hand_over(loop, queue, line):
            return
    _hand_over(loop, queue, None)


def _hand_over(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], item: str | None) -> bool:
    """Put `item` on `queue` from another thread; False once the loop has stopped."""
    taken = threading.Event()

    def put() -> None:   # runs on the loop; a second try may be queued behind the first
        if taken.is_set():
            return
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            return       # the thread asks again
        taken.set()

    while True:
        try:
            loop.call_soon_threadsafe(put)
        except RuntimeError:   # the loop is closed
            return False
        if taken.wait(HAND_OVER_POLL):
            return True
        if loop.is_closed() or not loop.is_running():
            return False


async def run_script(session: ClientSession, url: str, *, linger: float = 1.0, connect_attempts: int = 5,
                     stdin: TextIO | None = None, stdout: TextIO | None = None,
                     file_chunk_rate: float | None = None, login_store: LoginStore | None = None,
                     reconnect: bool = False) -> int:
    output = JsonLinesOutput(stdout or sys.stdout)
    lines = command_queue()
    # auto_refresh keeps display labels current; those lists are not printed.
    client = ChatClient(session, url, output,
                        ConnectionSettings(connect_attempts=connect_attempts, linger=linger, auto_refresh=True,
                                           file_chunk_rate=file_chunk_rate, reconnect=reconnect),
                        login_store=login_store)
    reader = threading.Thread(target=_feed_lines, args=(stdin or sys.stdin, lines, asyncio.get_running_loop()),
                              name="socp-chat-stdin", daemon=True)
    reader.start()
    try:
        return await client.run(lines)
    finally:
        session.close()
