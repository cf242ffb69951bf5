"""Password login that roams (SOCP §10 "recommended login", project frames): pure helpers.

The standard's model: the client encrypts its RSA private key with a key derived
from the password, the directory keeps that blob, and a user on a new machine gets it
back by proving it knows the password; the client decrypts it locally. The server
never sees the password nor a clear private key.

    password, salt, params --scrypt--> 32 bytes --HKDF-SHA256--> auth key   (login)
                                                            └--> enc key    (the blob)

- `derive` runs scrypt (memory-hard, on the CLIENT only; ~150 ms and 32 MiB with the
  defaults) and splits the result with HKDF, so the auth key tells nothing about the
  encryption key: a server (or a thief of its database) that learns the auth key
  still cannot open the blob without guessing the password through scrypt.
- `make_verifier` is the `pake_password` column: scheme, params, salt and
  `stored_key` = SHA-256(auth key). The server keeps only that.
- Challenge-response (SCRAM, RFC 5802, with our fields): the server sends a fresh
  random nonce; the client answers

      signature = HMAC-SHA256(stored_key, AUTH_LABEL ‖ nonce ‖ user_id ‖ server_id)
      proof     = auth_key XOR signature

  and the server recovers auth_key = proof XOR signature and checks
  SHA-256(auth_key) == stored_key with `hmac.compare_digest`. So the proof is an
  HMAC bound to the nonce, the user id and the server id (an eavesdropper cannot
  replay it: the next login has another nonce), and, unlike a plain
  HMAC(auth key, ...), what the server stores is not enough to log in: a stolen
  database gives SHA-256(auth key), not the auth key.
- `encrypt_private_key` is the `privkey_store` column: AES-256-GCM under the enc key
  (see the function for why not the key store's PEM encryption).

Every function here is pure and cheap except `derive` (scrypt, by design).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import limits
from .crypto import PrivateKey, load_private_key_der, private_key_der
from .encoding import b64url_decode, b64url_encode
from .errors import BadKey, MalformedFrame, SocpError

VERIFIER_SCHEME = "socp-scrypt-v1"
BLOB_SCHEME = "socp-aesgcm-v1"
AUTH_LABEL = b"socp-login-v1"
_BLOB_AAD = b"socp-privkey-store-v1"
_HKDF_AUTH = b"socp login auth key"
_HKDF_ENC = b"socp login private key encryption"

SALT_BYTES = 16
NONCE_BYTES = 32
KEY_BYTES = 32
GCM_NONCE_BYTES = 12

# Bounds a client applies to params a server sends (a hostile server must not make
# it spend gigabytes) and a server applies to what a client registers.
MAX_SCRYPT_N = 2**20
MAX_SCRYPT_R = 32
MAX_SCRYPT_P = 16
MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024      # 128 * n * r bytes
MAX_VERIFIER_CHARS = limits.MAX_LOGIN_VERIFIER_CHARS
MAX_PRIVKEY_STORE_CHARS = limits.MAX_LOGIN_BLOB_CHARS


class LoginError(SocpError):
    """A login value that cannot be used: bad format, wrong password, tampered blob."""


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost: memory is 128 * n * r bytes, time grows with n * r * p.

    The default (n = 2**15, r = 8, p = 1: 32 MiB) costs ~150 ms on the project's
    2-core test machine and is recorded in every verifier, so it can be raised later
    without breaking existing records. Tests lower it explicitly, never the default.
    """

    n: int = 2**15
    r: int = 8
    p: int = 1

    def check(self) -> ScryptParams:
        n, r, p = self.n, self.r, self.p
        for name, value in (("n", n), ("r", r), ("p", p)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LoginError(f"scrypt {name} must be a positive integer")
        if n < 2 or n & (n - 1) or n > MAX_SCRYPT_N:
            raise LoginError(f"scrypt n must be a power of two between 2 and {MAX_SCRYPT_N}")
        if r > MAX_SCRYPT_R or p > MAX_SCRYPT_P or 128 * n * r > MAX_SCRYPT_MEMORY:
            raise LoginError("scrypt parameters exceed the accepted cost")
        return self

    def to_json(self) -> dict[str, Any]:
        """The `params` object of LOGIN_CHALLENGE."""
        return {"kdf": "scrypt", "n": self.n, "r": self.r, "p": self.p}

    @classmethod
    def from_json(cls, value: Any) -> ScryptParams:
        if not isinstance(value, dict) or value.get("kdf") != "scrypt":
            raise LoginError("params must be {kdf: scrypt, n, r, p}")
        return cls(value.get("n"), value.get("r"), value.get("p")).check()  # type: ignore[arg-type]  # any JSON values: check() refuses the wrong ones


DEFAULT_PARAMS = ScryptParams()


@dataclass(frozen=True, slots=True)
class LoginKeys:
    auth_key: bytes        # proves the password (never leaves the client)
    enc_key: bytes         # encrypts the private key blob (never leaves the client)


@dataclass(frozen=True, slots=True)
class Verifier:
    """The parsed `pake_password` column."""

    params: ScryptParams
    salt: bytes
    stored_key: bytes      # SHA-256(auth key)

    def to_text(self) -> str:
        p = self.params
        return f"{VERIFIER_SCHEME}${p.n}${p.r}${p.p}${b64url_encode(self.salt)}${b64url_encode(self.stored_key)}"


@dataclass(frozen=True, slots=True)
class Registration:
    """What a client sends in LOGIN_REGISTER."""

    privkey_store: str
    pake_password: str


# --- key derivation (client) ---------------------------------------------------------


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def derive(password: str, salt: bytes, params: ScryptParams = DEFAULT_PARAMS) -> LoginKeys:
    """scrypt(password, salt) split by HKDF into the auth key and the encryption key."""
    params.check()
    if not password:
        raise LoginError("the password is empty")
    secret = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=params.n, r=params.r, p=params.p,
                            maxmem=128 * params.n * params.r + 1024 * 1024, dklen=KEY_BYTES)
    return LoginKeys(auth_key=_hkdf(secret, salt, _HKDF_AUTH), enc_key=_hkdf(secret, salt, _HKDF_ENC))


def _hkdf(secret: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(secret)


def stored_key(auth_key: bytes) -> bytes:
    return hashlib.sha256(auth_key).digest()


def make_verifier(keys: LoginKeys, salt: bytes, params: ScryptParams = DEFAULT_PARAMS) -> str:
    """The `pake_password` text: scheme, params, salt and SHA-256(auth key)."""
    return Verifier(params, salt, stored_key(keys.auth_key)).to_text()


def parse_verifier(text: str) -> Verifier:
    """Cheap; what the server runs on a LOGIN_REGISTER and on every login."""
    if not isinstance(text, str) or len(text) > MAX_VERIFIER_CHARS:
        raise LoginError("pake_password is not a verifier")
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != VERIFIER_SCHEME:
        raise LoginError(f"pake_password must be {VERIFIER_SCHEME}$n$r$p$salt$stored_key")
    try:
        params = ScryptParams(int(parts[1]), int(parts[2]), int(parts[3]))
        salt, key = b64url_decode(parts[4]), b64url_decode(parts[5])
    except (ValueError, MalformedFrame) as exc:
        raise LoginError("pake_password has an unreadable field") from exc
    params.check()
    if not 8 <= len(salt) <= 64 or len(key) != KEY_BYTES:
        raise LoginError("pake_password has a salt or key of the wrong size")
    return Verifier(params, salt, key)


# --- the private key blob (client) ---------------------------------------------------


def encrypt_private_key(private_key: PrivateKey | bytes, enc_key: bytes) -> str:
    """The `privkey_store` text: AES-256-GCM of the PKCS#8 DER key under `enc_key`.

    Why not the key store's PEM `BestAvailableEncryption(password)`: that runs its own
    password KDF (PBKDF2 or bcrypt, with counts `cryptography` chooses) on top of
    ours, and its format and cost could change with the library. Here the key is
    already memory-hard and independent of the auth key (HKDF), so one AEAD with a
    random nonce is all that is needed, and it detects tampering. This protects the
    key at rest in the directory; it is not a chat payload (SOCP §2's RSA-only rule
    is about user content on the wire).

    `private_key` may be a key object, PKCS#8/PKCS#1 DER, or unencrypted PEM bytes.
    """
    der = _as_pkcs8_der(private_key)
    nonce = os.urandom(GCM_NONCE_BYTES)
    sealed = AESGCM(enc_key).encrypt(nonce, der, _BLOB_AAD)
    return f"{BLOB_SCHEME}${b64url_encode(nonce)}${b64url_encode(sealed)}"


def check_privkey_store(text: str) -> None:
    """Cheap shape check the server applies before storing a blob (it cannot open it)."""
    if not isinstance(text, str) or not text or len(text) > MAX_PRIVKEY_STORE_CHARS:
        raise LoginError("privkey_store is missing or too long")
    _split_blob(text)


def decrypt_private_key(privkey_store: str, enc_key: bytes) -> PrivateKey:
    """Open a blob; LoginError if the key (password) is wrong or the blob was altered."""
    nonce, sealed = _split_blob(privkey_store)
    try:
        der = AESGCM(enc_key).decrypt(nonce, sealed, _BLOB_AAD)
    except InvalidTag:
        raise LoginError("the private key blob does not open with this password") from None
    try:
        return load_private_key_der(der)
    except BadKey as exc:
        raise LoginError(f"the private key blob holds no usable key: {exc.detail}") from exc


def _split_blob(text: str) -> tuple[bytes, bytes]:
    parts = text.split("$") if isinstance(text, str) else []
    if len(parts) != 3 or parts[0] != BLOB_SCHEME:
        raise LoginError(f"privkey_store must be {BLOB_SCHEME}$nonce$ciphertext")
    try:
        nonce, sealed = b64url_decode(parts[1]), b64url_decode(parts[2])
    except MalformedFrame as exc:
        raise LoginError("privkey_store has an unreadable field") from exc
    if len(nonce) != GCM_NONCE_BYTES or len(sealed) <= 16:
        raise LoginError("privkey_store has a nonce or ciphertext of the wrong size")
    return nonce, sealed


def _as_pkcs8_der(private_key: PrivateKey | bytes) -> bytes:
    if not isinstance(private_key, bytes):
        return private_key_der(private_key)
    try:
        if private_key.lstrip().startswith(b"-----BEGIN"):
            loaded = serialization.load_pem_private_key(private_key, password=None)
        else:
            loaded = serialization.load_der_private_key(private_key, password=None)
    except (ValueError, TypeError) as exc:
        raise BadKey("not an unencrypted private key") from exc
    der = loaded.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    load_private_key_der(der)   # RSA-4096, e = 65537, or BadKey
    return der


def register(password: str, private_key: PrivateKey | bytes, params: ScryptParams = DEFAULT_PARAMS) -> Registration:
    """Everything LOGIN_REGISTER carries, from the password and the key (one scrypt)."""
    salt = new_salt()
    keys = derive(password, salt, params)
    return Registration(privkey_store=encrypt_private_key(private_key, keys.enc_key),
                        pake_password=make_verifier(keys, salt, params))


# --- challenge-response ----------------------------------------------------------------


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def auth_message(nonce: bytes, user_id: str, server_id: str) -> bytes:
    """nonce ‖ user_id ‖ server_id, after a fixed label; ids are UUIDs (fixed length),
    the nonce is 32 bytes, so the concatenation is unambiguous."""
    return AUTH_LABEL + nonce + user_id.encode("utf-8") + server_id.encode("utf-8")


def make_proof(keys: LoginKeys, nonce: bytes, user_id: str, server_id: str) -> str:
    """The LOGIN_PROOF `proof` (client side)."""
    signature = hmac.new(stored_key(keys.auth_key), auth_message(nonce, user_id, server_id), hashlib.sha256).digest()
    return b64url_encode(_xor(keys.auth_key, signature))


def check_proof(verifier: Verifier, proof: str, nonce: bytes, user_id: str, server_id: str) -> bool:
    """Server side: does `proof` show the password for this nonce, user and server?"""
    try:
        raw = b64url_decode(proof)
    except MalformedFrame:
        raw = b""
    if len(raw) != KEY_BYTES:
        raw = bytes(KEY_BYTES)   # same work as a real check, then a certain mismatch
    signature = hmac.new(verifier.stored_key, auth_message(nonce, user_id, server_id), hashlib.sha256).digest()
    return hmac.compare_digest(stored_key(_xor(raw, signature)), verifier.stored_key)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def challenge_fields(verifier: Verifier, nonce: bytes) -> dict[str, Any]:
    """The LOGIN_CHALLENGE payload for a user with this verifier."""
    return {"nonce": b64url_encode(nonce), "salt": b64url_encode(verifier.salt),
            "params": verifier.params.to_json()}


def answer_challenge(password: str, user_id: str, server_id: str,
                     challenge: dict[str, Any]) -> tuple[str, LoginKeys]:
    """Client side, from a LOGIN_CHALLENGE payload: (proof, keys). The keys then open
    the blob of LOGIN_BLOB with `decrypt_private_key(privkey_store, keys.enc_key)`."""
    try:
        nonce, salt = b64url_decode(challenge["nonce"]), b64url_decode(challenge["salt"])
    except (KeyError, MalformedFrame) as exc:
        raise LoginError("LOGIN_CHALLENGE has no readable nonce or salt") from exc
    if len(nonce) < 16 or not 8 <= len(salt) <= 64:
        raise LoginError("LOGIN_CHALLENGE nonce or salt has the wrong size")
    keys = derive(password, salt, ScryptParams.from_json(challenge.get("params")))
    return make_proof(keys, nonce, user_id, server_id), keys
