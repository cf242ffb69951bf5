"""Public channel sender keys (SOCP §7.3 project decision).

`own()` is this client's channel sending key, made on first use by the factory the
home provides (load from the key store, or generate and save). Peers' sending keys
arrive wrapped for our user key in PUBLIC_CHANNEL_KEY_SHARE; they are indexed by the
fingerprint of the creator's *user* key, which every public message carries as
`sender_pub`, so a share's owner needs no directory look-up. When persisted, a
peer's key is stored exactly as it came (still wrapped for our user key) and
unwrapped on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from socp.protocol import crypto
from socp.protocol.encoding import b64url_decode
from socp.protocol.errors import SocpError

from ._files import read_json, write_private_json


class ChannelKeyRing:
    def __init__(self, own_factory: Callable[[], crypto.PrivateKey], *, path: Path | None = None,
                 user_key: crypto.PrivateKey | None = None, own_stored: Callable[[], bool] | None = None) -> None:
        self._own_factory = own_factory
        self._own_stored = own_stored     # is our sending key saved already (then `own` only loads it)?
        self._own: crypto.PrivateKey | None = None
        self._path = Path(path) if path is not None else None
        self._user_key = user_key
        self._peers: dict[str, crypto.PrivateKey] = {}
        self._wrapped: dict[str, str] = {}
        if self._path is not None:
            loaded = read_json(self._path, {})
            if isinstance(loaded, dict):
                self._wrapped = {str(k): str(v) for k, v in loaded.items() if isinstance(v, str)}
        # Members that already hold our sending key, this connection.
        self.shared_with: set[str] = set()

    @property
    def has_own(self) -> bool:
        return self._own is not None

    @property
    def must_make_own(self) -> bool:
        """`own()` will generate a new RSA-4096 key (about a second), not load one."""
        return self._own is None and not (self._own_stored is not None and self._own_stored())

    def own(self) -> crypto.PrivateKey:
        if self._own is None:
            self._own = self._own_factory()
        return self._own

    def peer(self, creator_fingerprint: str) -> crypto.PrivateKey | None:
        key = self._peers.get(creator_fingerprint)
        if key is None and self._user_key is not None and creator_fingerprint in self._wrapped:
            try:
                der = crypto.unwrap_blocks(self._user_key, b64url_decode(self._wrapped[creator_fingerprint]))
                key = crypto.load_private_key_der(der)
            except SocpError:
                return None
            self._peers[creator_fingerprint] = key
        return key

    def store_peer(self, creator_fingerprint: str, wrapped: str, key: crypto.PrivateKey) -> None:
        self._peers[creator_fingerprint] = key
        if self._wrapped.get(creator_fingerprint) != wrapped:
            self._wrapped[creator_fingerprint] = wrapped
            if self._path is not None:
                write_private_json(self._path, self._wrapped)
