"""How many failed content signatures a connection may cost a verifier. Pure; the
clock is passed in (STYLE §6).

Checking a content_sig that verifies in no accepted form tries every form (SOCP §9
variants): ~0.4 ms of RSA work, ten times less than the signature the node would
otherwise spend, but a flood of 3,000 such frames a second still fills two
verifiers, and honest frames wait behind it. A client whose content signatures fail
is broken or hostile, so each connection gets a budget of failures (a token bucket:
`burst`, refilled at `rate` per second); once it is spent, that connection's
content-signed frames are refused unchecked, RATE_LIMITED with a retry hint and
named like every refusal (no silent drops), until the budget refills. An honest
client never fails a check, so it never meets this limit.

Many connections each within their own budget still add up: 30 flooders were 300
failed checks in the flood's first second (5 per connection per verifier, each
trying every form: 0.4 ms on an idle machine, 2.4 ms on a busy one), and honest
frames waited up to 0.7 s behind them. So the connections that have failed at least
once also share one budget (`shared_rate`, `shared_burst`): while it is spent they
are all refused unchecked. A connection that never failed is always checked: one
flooder's failures can never get an honest client's frames refused.

Each verifier keeps its own budgets: a connection's frames are dealt across the pool,
so it may cost up to `burst` failures per verifier.

Both kinds, a failed check and a refusal unchecked, are also counted per connection
for the gateway (`take_report`, sent as `ChecksFailed`): it stops such frames before
they reach a verifier at all (gateway/check_throttle.py).
"""

from __future__ import annotations

from socp.ratelimit import Clock, KeyedBuckets, TokenBucket, retry_hint

FAILURE_RATE = 1.0       # failed content signatures per second per connection, after...
FAILURE_BURST = 5        # ...this many (an honest client fails none)
SHARED_FAILURE_RATE = 10.0   # failed checks per second, all connections that failed before together
SHARED_FAILURE_BURST = 10
MAX_CONNECTIONS = 10_000


class FailedChecks:
    def __init__(self, clock: Clock, rate: float = FAILURE_RATE, burst: float = FAILURE_BURST,
                 max_connections: int = MAX_CONNECTIONS, shared_rate: float = SHARED_FAILURE_RATE,
                 shared_burst: float = SHARED_FAILURE_BURST) -> None:
        self._budgets = KeyedBuckets(rate, burst, clock, max_connections)   # conn -> failures left
        self._shared = TokenBucket(shared_rate, shared_burst, clock)        # of every conn that failed
        self.unchecked = 0        # frames refused without a check (a counter you can read)
        self._report: dict[int, int] = {}   # conn -> failures and refusals since take_report

    def refusal(self, conn: int) -> str:
        """"" if a content signature of `conn` may be checked now; else the detail of
        its refusal (with the retry hint)."""
        if conn not in self._budgets:
            return ""
        if self._budgets.tokens(conn) >= 1 and self._shared.tokens >= 1:
            return ""
        self.unchecked += 1
        self._count(conn)
        retry_after = max(self._budgets.retry_after(conn), self._shared.retry_after())
        return ("too many frames whose content_sig verifies in no accepted form: the node stops checking "
                f"this connection's for a while; {retry_hint(retry_after)}")

    def failed(self, conn: int) -> None:
        """A content signature of `conn` did not verify."""
        if conn in self._budgets:
            self._shared.take()     # a first failure is free: a new connection is checked once
        self._budgets.take(conn)
        self._count(conn)

    def _count(self, conn: int) -> None:
        self._report[conn] = self._report.get(conn, 0) + 1

    def take_report(self) -> list[tuple[int, int]]:
        """(conn, failures and refusals) since the last call; empty if none. Bounded by
        the jobs between two calls (one round of checks)."""
        if not self._report:
            return []
        report, self._report = list(self._report.items()), {}
        return report

    def __len__(self) -> int:
        return len(self._budgets)
