"""Shared fixtures. RSA-4096 keys are slow to make, so a session makes a few once."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

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


# Hypothesis profiles. CI (.ci/run sets HYPOTHESIS_PROFILE=ci) runs the property tests
# hard; a local run stays quick. RSA and JSON work make example timing noisy on shared
# machines, hence no deadline.
settings.register_profile(
    "ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
)
