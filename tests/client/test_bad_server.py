"""Issue #16 item 4: a bad --server never shows a traceback. One line that says what
to fix and a non-zero exit, in --script and interactive mode; the --script stdin
reader never races the end of a failed connect."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from socp.client.events import ErrorReceived
from socp.client.home import ClientHome
from socp.client.transport import _why, server_url_problem
from socp.client.tui import ChatApp
from support.nodes import free_port

from .chat_process import PASSWORD


@pytest.mark.parametrize(("url", "words"), [
    ("ws://127.0.0.1:80000", "port"),
    ("ws://127.0.0.1:abc", "port"),
    ("http://127.0.0.1:8765", "http://"),
    ("127.0.0.1:8765", "ws://host:port"),
    ("ws://", "no host"),
    ("not a url", "not a URL"),
])
def test_bad_urls_are_named_in_words(url, words):
    problem = server_url_problem(url)
    assert words in problem and "ws://host:port" in problem


@pytest.mark.parametrize("url", ["ws://127.0.0.1:8765", "wss://node.example:443/socp", "ws://[::1]:9000"])
def test_good_urls_pass(url):
    assert server_url_problem(url) == ""


def test_a_tls_failure_against_a_plain_node_is_never_an_empty_reason():
    """Before: `wss://` against a plain node printed "cannot reach wss://…: " and nothing."""
    reason = _why(ConnectionResetError(), "wss://127.0.0.1:8765")
    assert "TLS" in reason and "ws://127.0.0.1:8765" in reason
    assert _why(ConnectionResetError(), "ws://127.0.0.1:8765")


def _run_chat(home, *args: str, stdin: str = "/list\n", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOCP_PASSWORD": PASSWORD}
    return subprocess.run([sys.executable, "-c", "from socp.cli.main import cli; cli()", "chat", "--home",
                           str(home), *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("script", [True, False])
@pytest.mark.parametrize("url", ["ws://127.0.0.1:80000", "http://127.0.0.1:8765"])
def test_a_bad_server_url_exits_non_zero_with_one_line(keys, tmp_path, url, script):
    """Before: a traceback (and exit 0 from the interactive app)."""
    ClientHome(tmp_path / "alice").create("alice", PASSWORD, user_key=keys[0])
    done = _run_chat(tmp_path / "alice", "--server", url, *(["--script"] if script else []))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.count("\n") == 1 and "--server" in done.stderr and url in done.stderr
    if script:
        assert '"code":"BAD_SERVER_URL"' in done.stdout


def test_the_stdin_reader_never_races_a_failed_connect(keys, tmp_path):
    """Before: about 1 run in 3 ended with `Exception in thread socp-chat-stdin` or
    `coroutine 'Queue.put' was never awaited`."""
    ClientHome(tmp_path / "alice").create("alice", PASSWORD, user_key=keys[0])
    url = f"ws://127.0.0.1:{free_port()}"
    lines = "".join(f"/tell nobody line {i}\n" for i in range(200))
    for _ in range(6):
        done = _run_chat(tmp_path / "alice", "--script", "--server", url, "--connect-attempts", "1", stdin=lines)
        assert done.returncode == 1
        assert done.stderr == "", done.stderr


async def test_the_app_exits_with_the_clients_code_and_keeps_its_reason():
    """Before: exit code 0 after a failed connect."""
    async def failing_client(emit, lines):
        emit(ErrorReceived("UNREACHABLE", "cannot reach ws://127.0.0.1:1: connection refused", "client"))
        return 1

    app = ChatApp(failing_client)
    async with app.run_test() as pilot:
        for _ in range(50):
            if app.return_value is not None:
                break
            await pilot.pause(0.05)
    assert app.return_value == 1 and app.last_error.startswith("UNREACHABLE: cannot reach")


async def test_a_line_handed_over_while_the_loop_is_busy_arrives_once():
    """The reader tries again when the loop is slow to take a line: the line must
    still be queued once (a busy loop made a command run twice)."""
    import threading
    import time

    from socp.client.script import HAND_OVER_POLL, _hand_over

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(4)
    handed = threading.Thread(target=_hand_over, args=(loop, queue, "/tell bob once"))
    handed.start()
    time.sleep(HAND_OVER_POLL * 4)        # the loop is blocked: the reader asks several times
    for _ in range(100):
        if not handed.is_alive():
            break
        await asyncio.sleep(0.01)
    handed.join(5)
    await asyncio.sleep(0.05)
    assert queue.qsize() == 1 and queue.get_nowait() == "/tell bob once"
