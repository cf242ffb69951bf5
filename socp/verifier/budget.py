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

Each verifier keeps its own budgets: a connection's frames are dealt across the pool,
so it may cost up to `burst` failures per verifier.
"""

from __future__ import annotations

from socp.ratelimit import Clock, KeyedBuckets, retry_hint

FAILURE_RATE = 1.0       # failed content signatures per second per connection, after...
FAILURE_BURST = 5        # ...this many (an honest client fails none)
MAX_CONNECTIONS = 10_000


class FailedChecks:
    def __init__(self, clock: Clock, rate: float = FAILURE_RATE, burst: float = FAILURE_BURST,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self._budgets = KeyedBuckets(rate, burst, clock, max_connections)   # conn -> failures left
        self.unchecked = 0        # frames refused without a check (a counter you can read)

    def refusal(self, conn: int) -> str:
        """"" if a content signature of `conn` may be checked now; else the detail of
        its refusal (with the retry hint)."""
        if self._budgets.tokens(conn) >= 1:
            return ""
        self.unchecked += 1
        return ("too many frames whose content_sig verifies in no accepted form: the node stops checking "
                f"this connection's for a while; {retry_hint(self._budgets.retry_after(conn))}")

    def failed(self, conn: int) -> None:
        """A content signature of `conn` did not verify."""
        self._budgets.take(conn)

    def __len__(self) -> int:
        return len(self._budgets)
