"""Issue #16 point 9: what `socp up` and `socp chat` create is private (files 0600,
directories 0700): the node's data directory holds its private key and users'
encrypted keys and password verifiers; a home holds the user's."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from support.nodes import start_node

from .chat_process import PASSWORD

pytestmark = pytest.mark.e2e


def loose(root: Path) -> list[str]:
    """Everything under `root` (itself included) that group or others may use."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)}: {mode:o}")
    return found


def test_the_node_data_directory_is_private_and_an_old_one_is_tightened(keys, tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "old-notes.txt").write_text("made before")
    (data / "old-notes.txt").chmod(0o644)
    node = start_node(data, keys[5], verifiers=1)
    try:
        assert (data / "socp.db").exists()
        assert loose(data) == []
        assert not any("CRIT" in line for line in node.output), node.output
    finally:
        node.stop()
    assert loose(data) == []


def test_socp_chat_makes_a_private_home(tmp_path):
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, "-m", "socp", "chat", "--script", "--home", str(home), "--server", "ws://127.0.0.1:9",
         "--connect-attempts", "1"],
        input="", capture_output=True, text=True, timeout=120, env={"SOCP_PASSWORD": PASSWORD, "PATH": "/usr/bin"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (home / "identity.json").exists() and loose(home) == []
