"""Trust on first use: the fingerprint of each user's key, pinned on first sight.

A later, different key is not accepted silently: the session reports KeyChanged,
marks that user's messages untrusted and refuses to encrypt to the new key until
the user runs /trust.
"""

from __future__ import annotations

from pathlib import Path

from ._files import read_json, write_private_json


class PinStore:
    """user id -> pinned key fingerprint; persisted as JSON when given a path."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = Path(path) if path is not None else None
        self._pins: dict[str, str] = {}
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
        if self._path is not None:
            write_private_json(self._path, self._pins)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._pins

    def __len__(self) -> int:
        return len(self._pins)
