"""What the client core tells its drivers: one frozen dataclass per event.

The session (`session.py`) turns incoming frames and local commands into these;
the drivers only render them (`render.py`: a line of text, or one JSON object).
Peer-supplied strings (names, texts, file names) are carried raw; every display
surface escapes them with `display.safe_text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Channel = Literal["dm", "public"]
# How the content of a message reached us (SOCP §7.3 project decision).
ContentForm = Literal["encrypted", "unencrypted", "undecryptable"]
Direction = Literal["send", "receive"]


@dataclass(frozen=True, slots=True)
class Ready:
    user_id: str
    display_name: str
    fingerprint: str
    server: str


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """Where the connection stands, for the status line (issue #16 item 3): `Ready`
    says connected; this says the rest."""

    state: Literal["connecting", "reconnecting", "offline"]
    detail: str                 # why, in words
    retry_in: float | None = None   # seconds until the next attempt


@dataclass(frozen=True, slots=True)
class MessageReceived:
    sender: str
    label: str                  # display name from the directory, else the id
    text: str
    ts: int
    channel: Channel
    verified: bool              # content_sig verified under the key the frame carried
    trusted: bool               # that key matches the TOFU pin for the sender
    form: ContentForm = "encrypted"
    parts: int = 1              # frames the text arrived in
    message_id: str | None = None  # payload.part.id when the sender split the text
    while_away: bool = False    # sent well before this connection's hello: kept for us by the server


@dataclass(frozen=True, slots=True)
class MessageSent:
    recipient: str              # a user id, or "public"
    label: str
    channel: Channel
    text: str
    parts: int
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRejected:
    sender: str
    channel: Channel
    reason: str
    ts: int = 0


@dataclass(frozen=True, slots=True)
class NotDelivered:
    """The server refused (part of) a message or file of ours: an ERROR named its
    frames (msg_ref / msg_refs). Said once per message, however many frames."""

    kind: Literal["dm", "public", "file"]
    recipient: str              # a user id, or "public"
    label: str
    summary: str                # the text, or the file name
    code: str
    detail: str
    file_id: str = ""           # for a file


@dataclass(frozen=True, slots=True)
class PartsToRetry:
    """File parts the server refused for its load (OVERLOADED, RATE_LIMITED), stamped
    afresh: the file's sender sends them again after `pause` seconds. Internal: never
    rendered (the file goes on; it fails only if they are refused too often)."""

    frames: tuple[Any, ...]     # Envelopes (FILE_CHUNK)
    pause: float
    code: str                   # OVERLOADED or RATE_LIMITED: the report's code if a part cannot go again


@dataclass(frozen=True, slots=True)
class Restamped:
    """Frames the server answered ERROR RESEND, stamped afresh: the driver sends them.
    Internal: never rendered (the user saw the message as sent once)."""

    frames: tuple[Any, ...]     # Envelopes


@dataclass(frozen=True, slots=True)
class ListPageWanted:
    """A LIST_RESPONSE page said `next`: the driver sends this LIST_REQUEST {after}
    for the following page. Internal: never rendered (one ListResult ends the list)."""

    frame: Any                  # Envelope


@dataclass(frozen=True, slots=True)
class KeyChanged:
    user: str
    label: str
    old_fingerprint: str
    new_fingerprint: str


@dataclass(frozen=True, slots=True)
class ChannelKeyReceived:
    sender: str                 # user id when known, else the creator key's fingerprint
    label: str
    fingerprint: str            # of the creator's user key


@dataclass(frozen=True, slots=True)
class FileProgress:
    file_id: str
    name: str
    direction: Direction
    done: int                   # bytes
    total: int
    rate: float                 # bytes per second since the start
    eta: float | None           # seconds, None while unknown

    @classmethod
    def since(cls, file_id: str, name: str, direction: Direction, done: int, total: int, started: float,
              now: float, base: int = 0) -> FileProgress:
        """The progress of a transfer started at `started` (seconds) with `base` bytes
        already there (a resumed one), as of `now`."""
        rate = (done - base) / max(now - started, 1e-6)
        return cls(file_id, name, direction, done, total, rate, (total - done) / rate if rate > 0 else None)


@dataclass(frozen=True, slots=True)
class FileReceived:
    file_id: str
    sender: str
    label: str
    name: str                   # the name the sender gave (raw)
    path: str                   # where it was saved
    size: int
    sha256: str
    channel: Channel
    verified: bool              # the manifest carried a content_sig that verified
    hashed: bool = True         # False: the sender gave no SHA-256, only the size was checked


@dataclass(frozen=True, slots=True)
class FileSent:
    file_id: str
    recipient: str
    name: str
    size: int
    sha256: str
    resumes: int = 0            # times it went on after a lost connection (file_resume.py)


@dataclass(frozen=True, slots=True)
class FileFailed:
    file_id: str
    sender: str
    name: str
    reason: str
    outgoing: bool = False      # a file we were sending (sender is then our own id)
    label: str = ""             # the sender's (incoming) or recipient's (outgoing) name, if known


@dataclass(frozen=True, slots=True)
class FileOffered:
    """A FILE_START for us: saved by itself when `auto` (at most the home's
    auto-accept size), else it waits for /accept or /reject."""

    file_id: str
    sender: str
    label: str
    name: str
    size: int
    channel: Channel
    auto: bool
    auto_limit: int             # the auto-accept size, to say why it waits


@dataclass(frozen=True, slots=True)
class Transfer:
    file_id: str
    name: str
    direction: Direction
    peer: str                   # who sends it to us, or whom we send it to (a name)
    done: int
    total: int
    state: str                  # "sending", "receiving", "waiting for /accept", "complete, waiting for /accept"


@dataclass(frozen=True, slots=True)
class TransferList:
    """/files: every transfer going on, both ways."""

    transfers: tuple[Transfer, ...]


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """A user came online or left: from a USER_ADVERTISE / USER_REMOVE the server
    pushed, or from the difference between two list answers."""

    user_id: str
    label: str
    server_id: str
    joined: bool


@dataclass(frozen=True, slots=True)
class QueryOpened:
    """/query: the app opens (or shows) the window of direct messages with this user."""

    user_id: str
    label: str


@dataclass(frozen=True, slots=True)
class UserEntry:
    user_id: str
    label: str
    display_name: str
    server_id: str
    fingerprint: str            # "" when the directory gave no key
    is_self: bool = False


@dataclass(frozen=True, slots=True)
class ListResult:
    users: tuple[UserEntry, ...]
    requested: bool = True      # False for the driver's own refreshes (not shown in --script)


@dataclass(frozen=True, slots=True)
class WhoisResult:
    user_id: str
    label: str
    display_name: str
    server_id: str
    fingerprint: str            # the key the directory or the last message showed
    pinned_fingerprint: str     # the TOFU pin ("" if none yet)
    trusted: bool


@dataclass(frozen=True, slots=True)
class HelpResult:
    commands: tuple[tuple[str, str], ...]   # (usage, help)


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    code: str
    detail: str
    source: Literal["server", "client"] = "server"


@dataclass(frozen=True, slots=True)
class Info:
    text: str


@dataclass(frozen=True, slots=True)
class LoginRegistered:
    """The server keeps our encrypted key and password verifier (LOGIN_REGISTER ACK):
    this user can now log in from another machine with the password."""

    server_id: str


@dataclass(frozen=True, slots=True)
class LoginRegisterFailed:
    """Storing the login on the server failed; chatting goes on, roaming will not work."""

    code: str                   # the server's ERROR code, or TIMEOUT when it never answered
    detail: str


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """`socp chat --login`: the key came back from the server and opened with the password."""

    user_id: str
    server_id: str
    server: str                 # the URL
    fingerprint: str


Event = (
    Ready
    | ConnectionState
    | MessageReceived
    | MessageSent
    | MessageRejected
    | NotDelivered
    | Restamped
    | PartsToRetry
    | ListPageWanted
    | KeyChanged
    | ChannelKeyReceived
    | FileProgress
    | FileReceived
    | FileSent
    | FileFailed
    | FileOffered
    | TransferList
    | PresenceChanged
    | QueryOpened
    | ListResult
    | WhoisResult
    | HelpResult
    | ErrorReceived
    | Info
    | LoginRegistered
    | LoginRegisterFailed
    | LoggedIn
)
