"""Trust on first use: the fingerprint of each user's key, pinned on first sight.

A later, different key is not accepted silently: the session reports KeyChanged,
marks that user's messages untrusted and refuses to encrypt to the new key until
the user runs /trust.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._files import read_json, write_private_json


class PinStore:
    """user id -> pinned key fingerprint; persisted as JSON when given a path."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = Path(path) if path is not None else None
        self._pins: dict[str, str] = {}
        self._batching = False
        if self._path is not None:
            loaded = read_json(self._path, {})
            if isinstance(loaded, dict):
                self._pins = {str(k): str(v) for k, v in loaded.items() if isinstance(v, str)}

    def get(self, user_id: str) -> str | None:
        return self._pins.get(user_id)

    def pin(self, user_id: str, fingerprint: str) -> None:
        if self._pins.get(user_id) == fingerprint:
            return
        self._pins[user_id] = fingerprint
        if self._path is not None and not self._batching:
            write_private_json(self._path, self._pins)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Pins made inside are written once, at the end: a list of thousands of new
        users would otherwise rewrite the whole file once per user."""
        before, self._batching = dict(self._pins), True
        try:
            yield
        finally:
            self._batching = False
            if self._path is not None and self._pins != before:
                write_private_json(self._path, self._pins)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._pins

    def __len__(self) -> int:
        return len(self._pins)
