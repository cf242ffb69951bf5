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


# The README runs the suite on two workers, one test file at a time each
# (`-n 2 --dist loadfile --no-loadscope-reorder`: files are handed out in collection
# order). These files take minutes each; starting them first keeps the last minutes of a
# run from being one worker alone on a long file while the other idles.
LONG_FILES_FIRST = (
    "tests/poc/test_poc_scripts.py",
    "tests/client/test_real_node_restart.py",
    "tests/e2e/test_chaos.py",
    "tests/client/test_real_node.py",
    "tests/client/test_real_node_resume.py",
    "tests/router/test_presence_at_scale.py",
    "tests/protocol/test_properties.py",
    "tests/e2e/test_links_dialects.py",
    "tests/verifier/test_remote_verifier.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONG_FILES_FIRST.index(path) if path in LONG_FILES_FIRST else len(LONG_FILES_FIRST)

    items.sort(key=rank)  # stable: every other file keeps its place and its tests' order
