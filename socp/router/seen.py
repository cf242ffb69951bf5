"""The duplicate cache (SOCP §8): bounded in size and in time."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class SeenCache:
    """Check-and-add in one step; entries expire after `ttl_ms` or when full.

    Only the router (one thread, one process) touches it, so check-and-add is
    atomic by construction.
    """

    def __init__(self, max_entries: int = 200_000, ttl_ms: int = 15 * 60 * 1000) -> None:
        self.max_entries = max_entries
        self.ttl_ms = ttl_ms
        self._entries: OrderedDict[Hashable, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def check_and_add(self, key: Hashable, now_ms: int) -> bool:
        """True if `key` is new (and now recorded); False if it is a duplicate."""
        self.expire(now_ms)
        if key in self._entries:
            return False
        self._entries[key] = now_ms
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def discard(self, key: Hashable) -> None:
        """Forget `key`: a frame that was refused may be sent again and take effect."""
        self._entries.pop(key, None)

    def expire(self, now_ms: int) -> None:
        horizon = now_ms - self.ttl_ms
        while self._entries:
            oldest_key, seen_at = next(iter(self._entries.items()))
            if seen_at >= horizon:
                break
            del self._entries[oldest_key]
