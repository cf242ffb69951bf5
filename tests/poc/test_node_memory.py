"""poc/_node_memory.py: the scripts report the whole node's memory, found from its port
(/proc), not the gateway's alone. A stand-in node: a parent whose children are a
listener (the "gateway") and a sleeper (an "actor")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "poc"))
from _node_memory import _rss, node_rss_bytes  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")

LISTENER = ("import socket, sys, time\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\n"
            "print(s.getsockname()[1], flush=True)\ntime.sleep(60)")
# The sleeper holds 8 MiB more than the listener, so a sum that left it out would show.
SLEEPER = "import time\nheld = bytearray(8 << 20)\nprint('ready', flush=True)\ntime.sleep(60)"
PARENT = f"""
import subprocess, sys, time
listener = subprocess.Popen([sys.executable, "-c", {LISTENER!r}], stdout=subprocess.PIPE, text=True)
sleeper = subprocess.Popen([sys.executable, "-c", {SLEEPER!r}], stdout=subprocess.PIPE, text=True)
sleeper.stdout.readline()
print(listener.stdout.readline().strip(), listener.pid, sleeper.pid, flush=True)
time.sleep(60)
"""


def test_the_node_is_the_listener_and_its_siblings_not_their_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert parent.stdout is not None
        port, listener, sleeper = (int(word) for word in parent.stdout.readline().split())
        found = node_rss_bytes(port)
        listener_rss, sleeper_rss, parent_rss = _rss(listener), _rss(sleeper), _rss(parent.pid)
        assert listener_rss and sleeper_rss and parent_rss and found
        assert sleeper_rss > listener_rss + (4 << 20)
        assert abs(found - (listener_rss + sleeper_rss)) < (1 << 20)     # both children, the parent not
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(10)


def test_nothing_listening_is_unknown() -> None:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))       # bound, never listening
        assert node_rss_bytes(probe.getsockname()[1]) is None
