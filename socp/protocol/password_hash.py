"""G17's password login values: an argon2id hash in PHC form, checked against a
password its client sends in clear (docs/store-and-login.md, "G17's login"). Pure.

G17's client registers `pake_password` = argon2-cffi's `PasswordHasher().hash(pw)`,
a PHC string `$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>` (standard base64, no
padding), and logs in with LOGIN_REQUEST {password}. Unlike our own login (a
challenge answered with a proof; socp.protocol.login) the server sees the password,
so this is only for G17's client, whose flow cannot work any other way.

Checking costs what the hash's parameters say (about 0.3 s and 64 MiB with the
defaults), so parameters are bounded at registration: a registered hash can never
make the node spend more than `MAX_MEMORY_KIB` and `MAX_ITERATIONS`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from .errors import SocpError

ARGON2_VERSION = 19
MAX_MEMORY_KIB = 128 * 1024      # argon2-cffi's default is 64 MiB
MAX_ITERATIONS = 6               # its default is 3
MAX_LANES = 8                    # its default is 4
MIN_SALT_BYTES, MAX_SALT_BYTES = 8, 64
MIN_HASH_BYTES, MAX_HASH_BYTES = 16, 64
EXPECTED = "an argon2id hash: $argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<hash>"


class PeerLoginError(SocpError):
    """A registered hash this node will not use (MALFORMED)."""


@dataclass(frozen=True, slots=True)
class Argon2Hash:
    memory_kib: int
    iterations: int
    lanes: int
    salt: bytes
    digest: bytes


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PeerLoginError(f"pake_password must be {EXPECTED}") from exc


def parse_argon2(phc: str) -> Argon2Hash:
    """Read a PHC argon2id string within the node's bounds, else PeerLoginError."""
    parts = phc.split("$")
    if len(parts) != 6 or parts[0] or parts[1] != "argon2id" or parts[2] != f"v={ARGON2_VERSION}":
        raise PeerLoginError(f"pake_password must be {EXPECTED}")
    params: dict[str, int] = {}
    for item in parts[3].split(","):
        name, _, value = item.partition("=")
        if name not in ("m", "t", "p") or not value.isdigit() or len(value) > 9:
            raise PeerLoginError(f"pake_password must be {EXPECTED}")
        params[name] = int(value)
    if set(params) != {"m", "t", "p"}:
        raise PeerLoginError(f"pake_password must be {EXPECTED}")
    memory, iterations, lanes = params["m"], params["t"], params["p"]
    if not (1 <= lanes <= MAX_LANES and 8 * lanes <= memory <= MAX_MEMORY_KIB and 1 <= iterations <= MAX_ITERATIONS):
        raise PeerLoginError(f"argon2 parameters beyond this node's bounds (m <= {MAX_MEMORY_KIB} KiB, "
                             f"t <= {MAX_ITERATIONS}, p <= {MAX_LANES})")
    salt, digest = _b64(parts[4]), _b64(parts[5])
    if not (MIN_SALT_BYTES <= len(salt) <= MAX_SALT_BYTES and MIN_HASH_BYTES <= len(digest) <= MAX_HASH_BYTES):
        raise PeerLoginError("argon2 salt or hash of an unusable length")
    return Argon2Hash(memory, iterations, lanes, salt, digest)


def check_password(stored: Argon2Hash, password: str) -> bool:
    """True if `password` hashes to `stored` (constant-time compare by cryptography)."""
    kdf = Argon2id(salt=stored.salt, length=len(stored.digest), iterations=stored.iterations,
                   lanes=stored.lanes, memory_cost=stored.memory_kib)
    try:
        kdf.verify(password.encode("utf-8", "surrogatepass"), stored.digest)
    except InvalidKey:
        return False
    return True


def make_hash(password: str, salt: bytes, memory_kib: int = 65536, iterations: int = 3, lanes: int = 4) -> str:
    """The PHC string G17's client registers (argon2-cffi's format); for tests and tools."""
    digest = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes,
                      memory_cost=memory_kib).derive(password.encode("utf-8", "surrogatepass"))

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii").rstrip("=")

    return f"$argon2id$v={ARGON2_VERSION}$m={memory_kib},t={iterations},p={lanes}${b64(salt)}${b64(digest)}"
