"""Rate limits as pure objects: a token bucket, buckets per key, and a per-address counter.

None reads a clock of its own: a bucket is handed one (STYLE §6), so tests
drive time by hand and never sleep. Shared by two actors, hence at the top of the
package, importing nothing: the gateway keeps one bucket per connection (frames
per second, SOCP §13 resource abuse), one counter of open connections per
remote address and one bucket per address for HTTP directory look-ups; the router
keeps buckets per user and per peer server (`socp.router.abuse_rules`) on its own
clock, `RouterState.now_ms`.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable

Clock = Callable[[], float]   # seconds, monotonic


class TokenBucket:
    """`burst` tokens at most, refilled at `rate` tokens per second.

    `take()` spends one token if there is one. A refused take leaves the bucket
    as it was, so a flood costs the flooder time, not us memory.
    """

    __slots__ = ("rate", "burst", "_clock", "_tokens", "_updated")

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        # A clock that stepped back never adds tokens; it only moves the reference.
        self._updated = now

    def take(self, tokens: float = 1.0) -> bool:
        """Spend `tokens` if the bucket holds them; False (and nothing spent) if not."""
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def retry_after(self, tokens: float = 1.0) -> float:
        """Seconds until `take(tokens)` would succeed (0 if it would now)."""
        missing = tokens - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    def full(self) -> bool:
        """True once the bucket has refilled completely (its holder may forget it)."""
        return self.tokens >= self.burst


class ElasticBucket:
    """A connection's own TokenBucket, topped up from a `spare` bucket every
    connection shares: a lone heavy sender may use what an idle node has spare, while
    under contention the spare runs dry and each connection keeps its own rate, which
    no flooder can take from it. (Issue #18: a fixed per-connection rate capped a
    lone sender while a core idled.) Reads like a TokenBucket: `rate`, `burst` and
    `retry_after` are the connection's own."""

    __slots__ = ("own", "spare", "from_spare")

    def __init__(self, own: TokenBucket, spare: TokenBucket | None) -> None:
        self.own = own
        self.spare = spare
        self.from_spare = 0      # tokens this connection took from the spare (a counter you can read)

    @property
    def rate(self) -> float:
        return self.own.rate

    @property
    def burst(self) -> float:
        return self.own.burst

    def take(self) -> bool:
        if self.own.take():
            return True
        if self.spare is not None and self.spare.take():
            self.from_spare += 1
            return True
        return False

    def retry_after(self) -> float:
        return self.own.retry_after()


def retry_hint(seconds: float) -> str:
    """The retry hint in a RATE_LIMITED detail: human words and a parseable field."""
    millis = max(1, math.ceil(seconds * 1000))
    return f"retry after {millis} ms (retry_after_ms={millis})"


_HINTED_MS = re.compile(r"retry_after_ms=(\d+)")


def hinted_retry_ms(detail: object) -> int | None:
    """The milliseconds a refusal's detail asks its reader to wait (`retry_hint`'s
    parseable field), or None when it gives no hint."""
    found = _HINTED_MS.search(detail) if isinstance(detail, str) else None
    return int(found.group(1)) if found else None


class KeyedBuckets:
    """One TokenBucket per key (a remote address, a user, a connection), for at most
    `max_keys` keys; the least recently used key is forgotten first (STYLE §5).
    Forgetting a key forgives its debt, so the bound must be well above the keys active
    within one refill."""

    __slots__ = ("rate", "burst", "max_keys", "_clock", "_buckets")

    def __init__(self, rate: float, burst: float, clock: Clock, max_keys: int = 10_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        TokenBucket(rate, burst, clock)   # the same checks of rate and burst
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def _bucket(self, key: Hashable) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self._clock)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: Hashable) -> bool:
        """Spend one of `key`'s tokens; False (nothing spent) if it has none."""
        return self._bucket(key).take()

    def tokens(self, key: Hashable) -> float:
        """`key`'s tokens now (a key not seen yet has a full bucket)."""
        bucket = self._buckets.get(key)
        return self.burst if bucket is None else bucket.tokens

    def retry_after(self, key: Hashable) -> float:
        """Seconds until `key` may take a token again."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.retry_after()

    def forget(self, key: Hashable) -> None:
        """Forget `key` now (its debt too): it will not be seen again."""
        self._buckets.pop(key, None)

    def keys(self) -> list[Hashable]:
        """Every key remembered, least recently used first."""
        return list(self._buckets)

    def __contains__(self, key: Hashable) -> bool:
        """True if `key` has taken a token and is not forgotten yet."""
        return key in self._buckets

    def __len__(self) -> int:
        return len(self._buckets)


class AddressSlots:
    """Open connections per remote address, at most `limit` each."""

    __slots__ = ("limit", "_open")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        """Count one more connection from `address`; False (not counted) if at the limit."""
        count = self._open.get(address, 0)
        if count >= self.limit:
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def open_from(self, address: str) -> int:
        return self._open.get(address, 0)

    def __len__(self) -> int:
        """How many addresses hold at least one connection."""
        return len(self._open)
