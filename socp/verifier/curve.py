"""CURVE keys for verifiers on other hosts (issue #18): made by socp with
`zmq.curve_keypair`, kept as Z85 text in the data directories.

    node data dir      verifier_curve.key / .pub   the node's listening key pair
                       allowed_verifiers           the remote verifiers' public keys it lets in
    verifier data dir  verifier_curve.key / .pub   the remote verifier's key pair
                       node_curve.pub              the node's public key (whom it talks to)

`allowed_verifiers` holds one public key per line, anything after it (past a space)
a comment; other lines that start with `#` are comments (`#` is a Z85 character, so
"#KEY" is 41 characters: a key commented out). The node reads it again when it
changes, so a verifier can be added or removed while it runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SECRET_FILE = "verifier_curve.key"
PUBLIC_FILE = "verifier_curve.pub"
NODE_PUBLIC_FILE = "node_curve.pub"
ALLOWED_FILE = "allowed_verifiers"
Z85_KEY_CHARS = 40          # a 32-byte CURVE key in Z85
_Z85_ALPHABET = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")


class CurveKeyError(ValueError):
    """A key file or a key that is not a CURVE key in Z85."""


@dataclass(frozen=True, slots=True)
class CurveKeyPair:
    public: str
    secret: str


def check_key(text: str, what: str = "key") -> str:
    """`text` stripped, if it is a Z85 CURVE key; CurveKeyError otherwise."""
    key = text.strip()
    if len(key) != Z85_KEY_CHARS or not set(key) <= _Z85_ALPHABET:
        raise CurveKeyError(f"{what} is not a CURVE public key ({Z85_KEY_CHARS} Z85 characters): {key[:50]!r}")
    return key


def parse_allowed(text: str) -> frozenset[str]:
    """The keys of an `allowed_verifiers` file; CurveKeyError naming the first bad line."""
    keys = set()
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        try:
            keys.add(check_key(words[0]))
        except CurveKeyError:
            if words[0].startswith("#"):
                continue
            raise CurveKeyError(f"{ALLOWED_FILE} line {number} is not a CURVE public key "
                                f"({Z85_KEY_CHARS} Z85 characters) nor a # comment: {line[:50]!r}") from None
    return frozenset(keys)


def load_or_create_keypair(data_dir: Path) -> tuple[CurveKeyPair, bool]:
    """The key pair in `data_dir`, made on first use (the secret readable by us only);
    (pair, True if it was made now)."""
    import zmq  # here, so the pure parts of this module load without it

    data_dir = Path(data_dir)
    secret_path, public_path = data_dir / SECRET_FILE, data_dir / PUBLIC_FILE
    if secret_path.exists() and public_path.exists():
        return CurveKeyPair(public=check_key(public_path.read_text(), str(public_path)),
                            secret=check_key(secret_path.read_text(), str(secret_path))), False
    data_dir.mkdir(parents=True, exist_ok=True)
    public, secret = (key.decode("ascii") for key in zmq.curve_keypair())
    descriptor = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    public_path.write_text(public + "\n")
    return CurveKeyPair(public=public, secret=secret), True


class AllowedKeys:
    """The node's `allowed_verifiers`, read again whenever the file changes. A file
    that cannot be read or parsed lets nobody in (and says why, once per change)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._keys: frozenset[str] = frozenset()
        self.problem = ""

    def keys(self) -> frozenset[str]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys = None, frozenset()
            self.problem = f"{self.path} does not exist: no verifier may join"
            return self._keys
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._keys, self.problem = parse_allowed(self.path.read_text()), ""
            except (OSError, UnicodeDecodeError, CurveKeyError) as exc:
                self._keys, self.problem = frozenset(), f"{exc}: no verifier may join"
        return self._keys

    def allows(self, key: str) -> bool:
        return key in self.keys()
