"""Throttling at the gateway the connections whose signature checks keep failing
(issue #15): pure, the clock is passed in (STYLE §6).

The verifiers tell the gateway (`ChecksFailed`) how many content signatures of each
connection failed, or were refused unchecked because earlier ones failed
(verifier/budget.py). Each user connection gets an allowance of such failures, a
token bucket: `allowance` at most, refilled at `refill` per second. While it is
spent, the connection's content-signed frames (MSG_DIRECT, MSG_PUBLIC_CHANNEL: the
only ones a verifier checks at RSA cost for a user) are refused here, RATE_LIMITED
with a retry hint, before they cost a verifier anything; every other frame of it
still goes on. A connection that sends `close_after_refused` frames into the
throttle, ignoring the hints, is closed.

An honest client never fails a check; one with an occasional bad frame (fewer than
`refill` a second) never spends its allowance, and a connection that never failed
costs one dictionary look-up a frame.

Server links are never throttled: a peer server's users' DMs reach us inside its
frames, whose content signatures the recipient checks, not our verifiers (checks.py),
so one bad user there cannot spend this allowance; throttling the link would cut off
every user behind it. The verifiers report no failures for server links, and the
gateway ignores any it is told of (inbox.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from socp.protocol.frame_types import FrameType
from socp.ratelimit import Clock, KeyedBuckets, retry_hint

FAILURE_ALLOWANCE = 10       # failed (or refused unchecked) checks before a connection is throttled...
ALLOWANCE_REFILL = 1.0       # ...and how many a second it may fail after that
CLOSE_AFTER_REFUSED = 5_000  # frames refused by the throttle, then the connection is closed
MAX_CONNECTIONS = 100_000    # connections remembered (the least recently failed are forgotten)

# The frames whose check failing spends the allowance, and which a throttle refuses.
THROTTLED_TYPES = frozenset({FrameType.MSG_DIRECT.value, FrameType.MSG_PUBLIC_CHANNEL.value})

CLOSE_REASON = "too many frames whose signatures do not verify"


class Verdict(enum.Enum):
    CHECK = "check"     # on to a verifier
    REFUSE = "refuse"   # answer RATE_LIMITED with the detail, unchecked
    CLOSE = "close"     # close the connection with the detail as reason


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    detail: str = ""


GO_ON = Decision(Verdict.CHECK)


class CheckThrottle:
    """Every user connection's allowance of failed signature checks."""

    def __init__(self, clock: Clock, allowance: float = FAILURE_ALLOWANCE, refill: float = ALLOWANCE_REFILL,
                 close_after_refused: int = CLOSE_AFTER_REFUSED, max_connections: int = MAX_CONNECTIONS) -> None:
        self._allowances = KeyedBuckets(refill, allowance, clock, max_connections)   # conn -> failures left
        self._refused: dict[int, int] = {}     # conn -> frames refused so far (only throttled ones)
        self.close_after_refused = close_after_refused
        self.max_connections = max_connections
        self.failures_reported = 0             # counters you can read (/healthz)
        self.frames_refused = 0

    def failed(self, conn: int, count: int) -> None:
        """Verifiers report `count` failed (or refused unchecked) checks of `conn`."""
        self.failures_reported += count
        for _ in range(min(count, int(self._allowances.burst) + 1)):
            if not self._allowances.take(conn):
                break

    def throttles(self, conn: int) -> bool:
        """Has `conn` failed a check lately? (The cheap test the reader makes per frame.)"""
        return conn in self._allowances

    def decide(self, conn: int, frame_type: str) -> Decision:
        """What to do with a frame of type `frame_type` that `conn` sent now."""
        if frame_type not in THROTTLED_TYPES or conn not in self._allowances:
            return GO_ON
        if self._allowances.tokens(conn) >= 1:
            return GO_ON
        refused = self._refused.get(conn, 0) + 1
        if refused > self.close_after_refused:
            return Decision(Verdict.CLOSE, f"{CLOSE_REASON}: {self.close_after_refused} refused and it sent on")
        if conn not in self._refused and len(self._refused) >= self.max_connections:
            self._forget_refused_of_forgotten()
        self._refused[conn] = refused
        self.frames_refused += 1
        return Decision(Verdict.REFUSE, (
            f"{frame_type}: too many of this connection's frames failed their signature check "
            f"(content_sig, SOCP section 9): the node refuses its {' and '.join(sorted(THROTTLED_TYPES))} "
            f"unchecked for a while; {retry_hint(self._allowances.retry_after(conn))}"))

    def forget(self, conn: int) -> None:
        """`conn` closed."""
        self._allowances.forget(conn)
        self._refused.pop(conn, None)

    def _forget_refused_of_forgotten(self) -> None:
        for conn in [c for c in self._refused if c not in self._allowances]:
            del self._refused[conn]

    def __len__(self) -> int:
        """Connections with failures remembered."""
        return len(self._allowances)

    def throttled_now(self) -> int:
        """Connections whose allowance is spent now (for /healthz; walks every one)."""
        return sum(1 for conn in self._allowances.keys() if self._allowances.tokens(conn) < 1)
