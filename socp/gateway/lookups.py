"""`GET /directory/<user_id>`: the directory's signed key look-up over plain HTTP.

The WebSocket DIRECTORY_GET gets a DIRECTORY_ENTRY signed by the node (SOCP §10
`get_pubkey`; docs/store-and-login.md). Over HTTP the same entry comes back as JSON,
with the same signature. The gateway treats the request as a short-lived pseudo
connection with a negative id; the router answers it from its tables, and the node's
key never leaves the verifiers:

    HTTP GET ──► gateway ──DirectoryQuery(query, user_id)──► router
                    ▲                                          │ found: SignJob, one delivery to `query`
                    │◄────────────Deliver(query, 0, text)── verifier
                    │◄────────────DirectoryMiss(query, detail)─┘ not found (nothing to sign)

Answers (JSON bodies, `entry_answer` shows the 200 one):

    200  the entry: user_id, pubkey, server_id, remote, version, revoked (copied from
         `entry`), `entry` (exactly what was signed), `sig`, `signed_by`, `ts`
    404  USER_NOT_FOUND: no key known for that id, or not a user id at all
    429  RATE_LIMITED: too many look-ups from this address (Retry-After)
    503  NOT_READY: no router yet; OVERLOADED: too many look-ups at once on the node;
         TIMEOUT: no answer within LOOKUP_TIMEOUT (Retry-After)

Bounds (STYLE §5): every answer costs a signature, so look-ups are limited per
address (a token bucket each) and node-wide (another), at most MAX_PENDING wait at
once, and each waits LOOKUP_TIMEOUT at most. The rule the responses follow is pure
(`user_id_from_path`, `entry_answer` ...); `DirectoryLookups` is the driver.
"""

from __future__ import annotations

import asyncio
import http
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson

from socp.ipc.messages import DirectoryQuery
from socp.protocol.errors import ErrorCode
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import is_uuid4
from socp.ratelimit import Clock, KeyedBuckets, TokenBucket

DIRECTORY_PREFIX = "/directory/"
LOOKUP_TIMEOUT = 2.0        # seconds the router and a verifier get to answer
MAX_PENDING = 64            # look-ups waiting for an answer at once, node-wide
ADDRESS_RATE = 5.0          # look-ups per second per remote address...
ADDRESS_BURST = 20          # ...after a burst of this many
NODE_RATE = 50.0            # look-ups per second, all addresses together: each costs a signature
NODE_BURST = 100

if TYPE_CHECKING:
    from socp.gateway.bus import Bus
    from socp.gateway.health import GatewayStats

NOT_READY = "NOT_READY"     # an HTTP-only code: the node has no router yet

ENTRY_FIELDS = ("user_id", "pubkey", "server_id", "remote", "version", "revoked")


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


# --- the answers, pure -----------------------------------------------------------------------


def user_id_from_path(path: str) -> str | None:
    """The user id of `/directory/<user_id>` (percent-decoded), or None if that is no
    user id (SOCP §3: a UUID v4). The query string is not part of `path`."""
    if not path.startswith(DIRECTORY_PREFIX):
        return None
    user_id = unquote(path[len(DIRECTORY_PREFIX):])
    return user_id if is_uuid4(user_id) else None


def _error(status: int, code: str, detail: str, retry_after_s: float | None = None) -> HttpAnswer:
    body: dict[str, Any] = {"error": code, "detail": detail}
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after_s is not None:
        seconds = max(1, math.ceil(retry_after_s))
        body["retry_after_ms"] = max(1, math.ceil(retry_after_s * 1000))
        headers = (("Retry-After", str(seconds)),)
    return HttpAnswer(status, body, headers)


def not_a_user_id() -> HttpAnswer:
    return _error(http.HTTPStatus.NOT_FOUND, ErrorCode.USER_NOT_FOUND.value,
                  "not a user id: expected /directory/<user id> with a UUID v4")


def not_found(detail: str) -> HttpAnswer:
    return _error(http.HTTPStatus.NOT_FOUND, ErrorCode.USER_NOT_FOUND.value, detail)


def rate_limited(retry_after_s: float) -> HttpAnswer:
    return _error(http.HTTPStatus.TOO_MANY_REQUESTS, ErrorCode.RATE_LIMITED.value,
                  f"too many directory look-ups from your address: at most {ADDRESS_RATE:g} per second",
                  retry_after_s)


def not_ready() -> HttpAnswer:
    return _error(http.HTTPStatus.SERVICE_UNAVAILABLE, NOT_READY,
                  "the node is starting: its router has not said hello yet", 1.0)


def overloaded(retry_after_s: float = 1.0) -> HttpAnswer:
    return _error(http.HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.OVERLOADED.value,
                  "too many directory look-ups on this node now", retry_after_s)


def timed_out() -> HttpAnswer:
    return _error(http.HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.TIMEOUT.value,
                  f"the directory did not answer within {LOOKUP_TIMEOUT:g} s", 1.0)


def entry_answer(frame_text: str) -> HttpAnswer:
    """200 with the signed DIRECTORY_ENTRY a verifier made, as JSON for people and
    scripts: the entry's fields at the top level, and `entry` + `sig` to check it.

    `sig` is the node's transport signature (SOCP §5): RSASSA-PSS (SHA-256) over the
    canonical JSON of `entry`, by the key of server `signed_by`. An empty text means a
    verifier could not sign (its bug, logged there): 503, like no answer."""
    try:
        frame = orjson.loads(frame_text) if frame_text else None
    except orjson.JSONDecodeError:
        frame = None
    payload = frame.get("payload") if isinstance(frame, dict) else None
    if not isinstance(frame, dict) or not isinstance(payload, dict) or frame.get("type") != T.DIRECTORY_ENTRY.value:
        return _error(http.HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.OVERLOADED.value,
                      "the directory entry could not be signed; try again", 1.0)
    body: dict[str, Any] = {name: payload.get(name) for name in ENTRY_FIELDS}
    body.update(entry=payload, sig=frame.get("sig", ""), signed_by=frame.get("from", ""), ts=frame.get("ts"))
    return HttpAnswer(http.HTTPStatus.OK, body)


# --- the driver ------------------------------------------------------------------------------


class DirectoryLookups:
    """The look-ups waiting for the router, by query id; `answer` serves one request,
    the inbox resolves it (`answered`, `missed`). Only the event loop thread uses it."""

    def __init__(self, bus: Bus, stats: GatewayStats, router_ready: Callable[[], bool],
                 clock: Clock = time.monotonic, timeout: float = LOOKUP_TIMEOUT,
                 max_pending: int = MAX_PENDING) -> None:
        self._bus = bus
        self._stats = stats
        self._router_ready = router_ready
        self._timeout = timeout
        self._max_pending = max_pending
        self._per_address = KeyedBuckets(ADDRESS_RATE, ADDRESS_BURST, clock)
        self._node = TokenBucket(NODE_RATE, NODE_BURST, clock)
        self._pending: dict[int, asyncio.Future[HttpAnswer]] = {}
        self._last_query = 0

    def __len__(self) -> int:
        return len(self._pending)

    async def answer(self, path: str, address: str) -> HttpAnswer:
        stats = self._stats
        if not self._per_address.take(address):
            stats.directory_refused += 1
            return rate_limited(self._per_address.retry_after(address))
        user_id = user_id_from_path(path)
        if user_id is None:
            return not_a_user_id()
        if not self._router_ready():
            stats.directory_refused += 1
            return not_ready()
        if len(self._pending) >= self._max_pending or not self._node.take():
            stats.directory_refused += 1
            return overloaded(max(1.0, self._node.retry_after()))
        self._last_query -= 1
        query = self._last_query
        answer: asyncio.Future[HttpAnswer] = asyncio.get_running_loop().create_future()
        self._pending[query] = answer
        try:
            async with asyncio.timeout(self._timeout):
                await self._bus.tell_router(DirectoryQuery(query, user_id))
                result = await answer
        except TimeoutError:
            stats.directory_timeouts += 1
            return timed_out()
        finally:
            del self._pending[query]
        stats.directory_lookups += 1
        return result

    def answered(self, query: int, frame_text: str) -> None:
        """A verifier's Deliver for a query id: the signed entry (late ones are dropped)."""
        self._resolve(query, entry_answer(frame_text))

    def missed(self, query: int, detail: str) -> None:
        self._resolve(query, not_found(detail))

    def _resolve(self, query: int, result: HttpAnswer) -> None:
        answer = self._pending.get(query)
        if answer is None or answer.done():
            self._stats.dropped += 1
            return
        answer.set_result(result)
