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

from .connection import FILE_CHUNK_RATE, ChatClient, LoginStore, command_queue
from .events import Event, ListResult
from .render import event_to_json_line
from .session import ClientSession


class JsonLinesOutput:
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, event: Event) -> None:
        if isinstance(event, ListResult) and not event.requested:
            return  # the client's own directory refreshes are not the script's business
        self._stream.write(event_to_json_line(event) + "\n")
        self._stream.flush()


def _feed_lines(stream: TextIO, queue: asyncio.Queue[str | None], loop: asyncio.AbstractEventLoop) -> None:
    """Runs in a daemon thread: blocking reads, a bounded queue (the thread waits when full)."""
    try:
        for line in stream:
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            asyncio.run_coroutine_threadsafe(queue.put(line), loop).result()
        asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()
    except RuntimeError:
        pass  # the loop closed first: the client is already gone


async def run_script(session: ClientSession, url: str, *, linger: float = 1.0, connect_attempts: int = 5,
                     stdin: TextIO | None = None, stdout: TextIO | None = None,
                     file_chunk_rate: float = FILE_CHUNK_RATE, login_store: LoginStore | None = None,
                     reconnect: bool = False) -> int:
    output = JsonLinesOutput(stdout or sys.stdout)
    lines = command_queue()
    # auto_refresh keeps display labels current; those lists are not printed.
    client = ChatClient(session, url, output, connect_attempts=connect_attempts, linger=linger, auto_refresh=True,
                        file_chunk_rate=file_chunk_rate, login_store=login_store, reconnect=reconnect)
    reader = threading.Thread(target=_feed_lines, args=(stdin or sys.stdin, lines, asyncio.get_running_loop()),
                              name="socp-chat-stdin", daemon=True)
    reader.start()
    try:
        return await client.run(lines)
    finally:
        session.close()
