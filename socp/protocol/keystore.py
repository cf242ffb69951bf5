"""Private keys on disk: PKCS#8 PEM, encrypted with a password, mode 0600.

A node's own key may be stored without a password (like an SSH host key) since
the node starts unattended; a user's key is always password-protected.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .crypto import PrivateKey, validate_public_key
from .errors import BadKey

PRIVATE_FILE_MODE = 0o600


class WrongPassword(BadKey):
    """The key file exists but the password does not open it."""


def private_key_to_pem(key: PrivateKey, password: str | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode("utf-8")) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def private_key_from_pem(data: bytes, password: str | None) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password.encode("utf-8") if password else None)
    except TypeError as exc:  # encrypted but no password given, or the reverse
        raise WrongPassword(
            "the key file needs a password" if not password else "the key file has no password"
        ) from exc
    except ValueError as exc:
        if b"ENCRYPTED" in data:
            raise WrongPassword("wrong password for the key file") from exc
        raise BadKey("the key file is not a readable private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BadKey("the key file does not hold an RSA key")
    validate_public_key(key.public_key())
    return key


def write_private_key(path: Path, key: PrivateKey, password: str | None) -> None:
    """Write atomically, never readable by others, even for an instant."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # A stale tmp file would keep its old (maybe world-readable) mode, and a planted
    # symlink would be followed: start from a file we create ourselves.
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        os.write(fd, private_key_to_pem(key, password))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, PRIVATE_FILE_MODE)
    os.replace(tmp, path)


def read_private_key(path: Path, password: str | None) -> PrivateKey:
    return private_key_from_pem(Path(path).read_bytes(), password)
