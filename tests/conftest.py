"""Shared fixtures. RSA-4096 keys are slow to make, so a session makes a few once."""

from __future__ import annotations

import pytest

from socp.protocol import crypto


class KeyPool:
    """Lazily generated RSA-4096 keys, reused by every test of the session."""

    def __init__(self) -> None:
        self._keys: list[crypto.PrivateKey] = []

    def __getitem__(self, index: int) -> crypto.PrivateKey:
        while len(self._keys) <= index:
            self._keys.append(crypto.generate_private_key())
        return self._keys[index]


@pytest.fixture(scope="session")
def keys() -> KeyPool:
    return KeyPool()
