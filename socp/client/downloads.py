"""Receiving a file safely (SOCP §7.4, §13 "chunks exposed before verification").

Chunks go to a private temporary file (mode 0600, hidden name) in the downloads
directory. Only after FILE_END, when size and SHA-256 match the manifest, is the
file linked under its final name (a manifest without a SHA-256, as G17's client
sends, is checked for its size only, and the user is told it is not verified:
docs/chat.md): the sender's name reduced to a safe basename, never overwriting
anything (' (1)', ' (2)', ... are added). On any failure the temporary file is
deleted. Nothing partial ever appears under a final name.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from socp.protocol.errors import SocpError

from ._files import private_dir
from .display import numbered_name, safe_filename

MAX_NAME_ATTEMPTS = 1000
# Parts that came after a missing one are held in memory until it comes: the sender
# sends a part again when the node refused it for a moment (OVERLOADED, RATE_LIMITED;
# file_sender.py), and the parts sent meanwhile arrive first. Bounded per download.
MAX_HELD_BYTES = 1024 * 1024


class TransferFailed(SocpError):
    """A file transfer cannot complete; the detail says why."""


@dataclass(slots=True)
class IncomingFile:
    file_id: str
    sender: str
    name: str
    size: int
    sha256: str                   # "" when the sender gave none: only the size is checked
    channel: str
    verified: bool
    creator_fingerprint: str      # public mode: whose channel key decrypts the chunks
    started: float
    tmp_path: Path
    _fd: int
    _hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    next_index: int = 0
    done: int = 0                 # bytes written, in order
    held: dict[int, bytes] = field(default_factory=dict)   # parts past a missing one, by index
    held_bytes: int = 0
    last_progress: float = 0.0
    last_activity: float = 0.0    # when the last chunk came (the session's clock)
    interrupted: bool = False     # the connection was lost since the last chunk: waiting to resume
    joined: bool = False          # a resumed transfer (file_resume.py) goes on into this one
    resumes: str = ""             # it goes on with a transfer that never reached us: must start at part 0
    accepted: bool = True         # False: larger than the auto-accept size, waits for /accept
    complete: bool = False        # checked after FILE_END, waiting for /accept to get its name

    @classmethod
    def open(cls, directory: Path, *, file_id: str, sender: str, name: str, size: int, sha256: str,
             channel: str, verified: bool, creator_fingerprint: str, now: float) -> IncomingFile:
        directory = private_dir(directory)
        fd, tmp = tempfile.mkstemp(prefix=".socp-", suffix=".part", dir=directory)  # mode 0600
        return cls(file_id=file_id, sender=sender, name=name, size=size, sha256=sha256.lower(), channel=channel,
                   verified=verified, creator_fingerprint=creator_fingerprint, started=now,
                   tmp_path=Path(tmp), _fd=fd, last_progress=now, last_activity=now)

    def write(self, index: int, data: bytes) -> bool:
        """Take part `index`: written when it is the next one (with the held parts it
        lets through), held when an earlier one is still missing. False for a part
        we have: a resumed transfer sends a few again (file_resume.py), and so may a
        sender whose part the node refused for a moment; with a SHA-256 to check at
        the end, a copy is harmless. Without one, a copy is an error."""
        if index < self.next_index or index in self.held:
            if self.joined or self.sha256:
                return False
            raise TransferFailed(f"chunk {index} arrived again (chunk {self.next_index} was expected)")
        if self.done + self.held_bytes + len(data) > self.size:
            raise TransferFailed(f"more data than the announced {self.size} bytes")
        if index > self.next_index:
            self._hold(index, data)
            return False
        self._append(data)
        while self.next_index in self.held:
            data = self.held.pop(self.next_index)
            self.held_bytes -= len(data)
            self._append(data)
        return True

    @property
    def missing_part(self) -> int | None:
        """The part that later parts are waiting for, if any."""
        return self.next_index if self.held else None

    def _hold(self, index: int, data: bytes) -> None:
        if self.held_bytes + len(data) > MAX_HELD_BYTES:
            raise TransferFailed(f"part {self.next_index} was lost on the way ({len(self.held)} later parts "
                                 "came without it)")
        self.held[index] = data
        self.held_bytes += len(data)

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._hasher.update(data)
        self.done += len(data)
        self.next_index += 1

    def finish(self, directory: Path) -> Path:
        """Check the manifest, then place the file under a safe, new name."""
        self.check()
        return self.place(directory)

    def check(self) -> None:
        """Size and SHA-256 against what the sender announced."""
        self._close()
        if self.held:
            raise TransferFailed(f"part {self.next_index} never came ({len(self.held)} later parts did)")
        if self.done != self.size:
            raise TransferFailed(f"it ended after {self.done} of the {self.size} bytes announced")
        if self.sha256 and self._hasher.hexdigest() != self.sha256:
            raise TransferFailed("its content does not match the SHA-256 the sender announced "
                                 "(changed or damaged on the way)")
        self.complete = True

    def place(self, directory: Path) -> Path:
        return place_without_overwrite(self.tmp_path, Path(directory), safe_filename(self.name))

    def abort(self) -> None:
        self._close()
        self.held.clear()
        self.held_bytes = 0
        try:
            self.tmp_path.unlink()
        except FileNotFoundError:
            pass

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def place_without_overwrite(tmp_path: Path, directory: Path, name: str) -> Path:
    """Give `tmp_path` the first free name among `name`, `name (1)`, ...

    A hard link is atomic and fails if the name exists, so a concurrent writer
    can never be overwritten; where links are not supported an exclusive create
    reserves the name and a rename fills it.
    """
    for n in range(MAX_NAME_ATTEMPTS):
        final = directory / numbered_name(name, n)
        try:
            os.link(tmp_path, final)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            try:
                os.close(os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                continue
            os.replace(tmp_path, final)
            return final
        tmp_path.unlink()
        return final
    tmp_path.unlink()
    raise TransferFailed(f"no free name for {name!r} in the downloads directory")
