"""Who this client is: the user's id, keys and clock, shared by the session's parts
(directory, messages, files), each of which signs and stamps frames as this user."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from socp.protocol import crypto, signing
from socp.protocol.envelope import Envelope


@dataclass(slots=True)
class Identity:
    user_id: str
    user_key: crypto.PrivateKey
    display_name: str
    clock: Callable[[], float]                  # seconds; injected so tests need no sleeping
    pubkey: str = field(init=False)             # base64url DER SPKI
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.pubkey = crypto.encode_public_key(self.user_key)
        self.fingerprint = crypto.fingerprint(self.user_key.public_key())

    def now(self) -> float:
        return self.clock()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def sign(self, envelope: Envelope) -> Envelope:
        # §5: every frame carrying user content is signed; we sign all of ours.
        return signing.sign_envelope(self.user_key, envelope)
