"""User keys for a bench: a few RSA-4096 keys, each shared by several users.

Making an RSA-4096 key costs 0.5 to 1.2 s of CPU, so 2,000 users cannot each have
their own. A node binds a key to a user id but does not require keys to be unique
(router/users.py hello), so users take keys round-robin from a small pool. Keys
live in memory only; they cross to worker processes as PKCS#8 DER over a pipe.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from functools import cached_property

from socp.protocol import crypto

from .targets import POOL_START_METHOD


def _make_key_der(_: int) -> bytes:
    return crypto.private_key_der(crypto.generate_private_key())


@dataclass(frozen=True)
class KeyPool:
    """`keys[i]` is the private key of every user whose index is i modulo len(keys)."""

    keys: tuple[crypto.PrivateKey, ...]

    @classmethod
    def generate(cls, count: int, processes: int) -> KeyPool:
        """`count` fresh keys, made on `processes` cores at once."""
        if count <= 1 or processes <= 1:
            return cls(tuple(crypto.generate_private_key() for _ in range(max(count, 1))))
        with multiprocessing.get_context(POOL_START_METHOD).Pool(min(processes, count)) as pool:
            ders = pool.map(_make_key_der, range(count), chunksize=1)
        return cls(tuple(crypto.load_private_key_der(der) for der in ders))

    def for_user(self, user_index: int) -> int:
        return user_index % len(self.keys)

    @cached_property
    def public_texts(self) -> tuple[str, ...]:
        return tuple(crypto.encode_public_key(key) for key in self.keys)

    @cached_property
    def ders(self) -> tuple[bytes, ...]:
        """For worker processes' initialisers (never written to disk)."""
        return tuple(crypto.private_key_der(key) for key in self.keys)
