"""`socp up` refuses to start with one clear line, and starts no actor, when its
port is taken, its data directory is unusable, its key is corrupt, or its database
cannot be reached."""

from __future__ import annotations

import socket
import subprocess
import sys

from support.nodes import free_port, processes_mentioning, seed_identity


def socp_up(data_dir, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "socp", "up", "--data-dir", str(data_dir), "--verifiers", "1", *args],
                          capture_output=True, text=True, timeout=60)


def assert_refused(result: subprocess.CompletedProcess[str], words: str, data_dir) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert processes_mentioning(str(data_dir)) == []


def test_port_in_use(keys, tmp_path) -> None:
    seed_identity(tmp_path / "n", keys[0])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_refused(socp_up(tmp_path / "n", "--port", str(port)), "in use", tmp_path / "n")


def test_corrupt_key(tmp_path) -> None:
    data_dir = tmp_path / "n"
    data_dir.mkdir()
    pem_label = "PRIVATE " + "KEY"  # spelled apart: this file holds no key, only a broken one
    (data_dir / "server_key.pem").write_text(f"-----BEGIN {pem_label}-----\nnot a key\n-----END {pem_label}-----\n")
    (data_dir / "identity.json").write_text('{"server_id": "2b1c1e43-5a7e-4f0b-9a53-1d7f1c0e8a11"}')
    assert_refused(socp_up(data_dir, "--port", str(free_port())), "server_key.pem", data_dir)


def test_data_dir_that_is_a_file(tmp_path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = socp_up(not_a_dir / "sub", "--port", str(free_port()))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "not writable" in result.stderr or "Not a directory" in result.stderr


def test_unreachable_database(keys, tmp_path) -> None:
    seed_identity(tmp_path / "n", keys[0])
    result = socp_up(tmp_path / "n", "--port", str(free_port()), "--db", "mysql://root@127.0.0.1:1/socp")
    assert_refused(result, "cannot reach MySQL", tmp_path / "n")
