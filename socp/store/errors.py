"""What can go wrong with the store, as part of socp's one exception tree.

    SocpError
    └── StoreError                  anything the store or its client raises on purpose
        ├── StoreUnavailable        the database cannot be reached (retry later)   OVERLOADED
        │   └── StoreMisconfigured  bad URL, wrong credentials, unknown database   OVERLOADED
        ├── StoreOverloaded         the store's bounded write queue is full        OVERLOADED
        ├── StoreTimeout            the store actor did not answer in time         TIMEOUT
        ├── StoreRequestRejected    a request the store refuses (bad fields)       MALFORMED
        ├── StoreQueryError         a statement failed for a reason retrying
        │                           cannot fix (constraint, schema, data)          MALFORMED
        └── StoreClosed             the client was closed while waiting            TIMEOUT

Messages are one line and name the database without its password; callers print
them as they are, never with a traceback.
"""

from __future__ import annotations

from socp.protocol.errors import ErrorCode, SocpError


class StoreError(SocpError):
    code = ErrorCode.OVERLOADED


class StoreUnavailable(StoreError):
    """The database cannot be reached now; the same call may work later."""

    code = ErrorCode.OVERLOADED


class StoreMisconfigured(StoreUnavailable):
    """Retrying will not help: the URL, the credentials or the database name is wrong."""


class StoreOverloaded(StoreError):
    code = ErrorCode.OVERLOADED


class StoreTimeout(StoreError):
    code = ErrorCode.TIMEOUT


class StoreRequestRejected(StoreError):
    code = ErrorCode.MALFORMED


class StoreQueryError(StoreError):
    code = ErrorCode.MALFORMED


class StoreClosed(StoreError):
    code = ErrorCode.TIMEOUT
