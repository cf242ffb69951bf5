"""The one exception tree of socp, and the error codes peers see.

    SocpError                 every error socp raises on purpose; has .code
    ├── MalformedFrame        not JSON, wrong shape, wrong types, too big   MALFORMED
    ├── UnknownType           a `type` we do not know                        UNKNOWN_TYPE
    ├── BadKey                not an RSA-4096 / e=65537 public key           BAD_KEY
    ├── InvalidSignature      a transport or content signature fails          INVALID_SIG
    ├── UserNotFound          no route to the named user                     USER_NOT_FOUND
    ├── NameInUse             the user id is taken                           NAME_IN_USE
    ├── Timeout               a deadline passed                              TIMEOUT
    ├── Replay                a frame seen before, or a stale `ts`           REPLAY
    ├── Forbidden             a frame this connection may not send           FORBIDDEN
    ├── RateLimited           too many frames; retry later                   RATE_LIMITED
    ├── Overloaded            a bounded queue is full                        OVERLOADED
    └── ResendNeeded          cannot tell a copy from a new frame: re-stamp  RESEND

Peers only ever see the code and a short detail, never a traceback.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    # SOCP §7.5: the six codes every implementation parses.
    USER_NOT_FOUND = "USER_NOT_FOUND"
    INVALID_SIG = "INVALID_SIG"
    BAD_KEY = "BAD_KEY"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    NAME_IN_USE = "NAME_IN_USE"
    # Project codes (peers treat unknown codes as generic errors).
    MALFORMED = "MALFORMED"
    REPLAY = "REPLAY"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    OVERLOADED = "OVERLOADED"
    # After an unclean restart the node cannot tell whether a frame stamped before it
    # is a copy of one it handled: send it again with a fresh ts (router/replay_log.py).
    RESEND = "RESEND"


class SocpError(Exception):
    """Root of every error socp raises on purpose."""

    code: ErrorCode = ErrorCode.MALFORMED

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedFrame(SocpError):
    code = ErrorCode.MALFORMED


class UnknownType(SocpError):
    code = ErrorCode.UNKNOWN_TYPE


class BadKey(SocpError):
    code = ErrorCode.BAD_KEY


class InvalidSignature(SocpError):
    code = ErrorCode.INVALID_SIG


class UserNotFound(SocpError):
    code = ErrorCode.USER_NOT_FOUND


class NameInUse(SocpError):
    code = ErrorCode.NAME_IN_USE


class Timeout(SocpError):
    code = ErrorCode.TIMEOUT


class Replay(SocpError):
    code = ErrorCode.REPLAY


class Forbidden(SocpError):
    code = ErrorCode.FORBIDDEN


class RateLimited(SocpError):
    code = ErrorCode.RATE_LIMITED


class Overloaded(SocpError):
    code = ErrorCode.OVERLOADED


class ResendNeeded(SocpError):
    code = ErrorCode.RESEND
