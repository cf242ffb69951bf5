"""One live node for every attack script and the fuzzer (started once per module)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from support.nodes import start_node

HELLO_TIMEOUT = 2.0   # seconds; short so the slowloris attack is cut off quickly


@pytest.fixture(scope="module")
def node(keys, tmp_path_factory):
    running = start_node(tmp_path_factory.mktemp("poc-node") / "data", keys[0], verifiers=2,
                         extra_args=("--hello-timeout", str(HELLO_TIMEOUT)))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key_dir(keys, tmp_path_factory) -> Path:
    """The session's keys as PEM files for the scripts' --keys (a temp dir, never the repo)."""
    directory = tmp_path_factory.mktemp("poc-keys")
    directory.chmod(0o700)
    for index in range(1, 9):
        pem = keys[index].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        path = directory / f"key{index:02d}.pem"
        path.write_bytes(pem)
        path.chmod(0o600)
    return directory
