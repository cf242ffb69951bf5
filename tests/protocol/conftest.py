"""Real wire values (keys, ciphertexts, signatures) shared by the protocol tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from socp.protocol import crypto, signing
from socp.protocol.encoding import b64url_encode


@dataclass(frozen=True)
class WireValues:
    """One consistent set of ids and base64url values, as a real exchange would carry."""

    server_a: str
    server_b: str
    user_a: str
    user_b: str
    file_id: str
    msg_id: str
    ts: int
    pub_a: str          # user_a's key (keys[0]), base64url DER SPKI
    pub_b: str          # user_b's key (keys[1])
    pub_server: str     # server_a's key (keys[2])
    ciphertext: str     # OAEP of a short text under pub_b
    content_sig: str    # user_a's DM content signature over ciphertext/from/to/ts
    sig: str            # a transport signature by server_a
    wrapped_key: str    # several OAEP blocks (a wrapped PKCS#8 key stand-in)


@pytest.fixture(scope="session")
def wire(keys) -> WireValues:
    ts = 1_700_000_003_000
    user_a, user_b = "3f6c1a9e-8d2b-4c7e-9a51-0b8e2d4f6a13", "b7e0c2d4-1f3a-4b5c-8d9e-2a4c6e8f0b21"
    ciphertext = b64url_encode(crypto.oaep_encrypt(keys[1].public_key(), b"hello, Bob"))
    return WireValues(
        server_a="9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c6d",
        server_b="0f1e2d3c-4b5a-4968-b7a6-958473625140",
        user_a=user_a,
        user_b=user_b,
        file_id="5d4c3b2a-1908-4f7e-a6d5-c4b3a2918070",
        msg_id="c0ffee00-1234-4abc-9def-0123456789ab",
        ts=ts,
        pub_a=crypto.encode_public_key(keys[0]),
        pub_b=crypto.encode_public_key(keys[1]),
        pub_server=crypto.encode_public_key(keys[2]),
        ciphertext=ciphertext,
        content_sig=signing.sign_dm(keys[0], ciphertext, user_a, user_b, ts),
        sig=signing.transport_signature(keys[2], {"probe": True}),
        wrapped_key=b64url_encode(crypto.wrap_blocks(keys[1].public_key(), bytes(range(256)) * 4)),
    )
