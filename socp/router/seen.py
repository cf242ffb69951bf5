"""The duplicate cache (SOCP §8): bounded in size and in time."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class SeenCache:
    """Check-and-add in one step; entries expire after `ttl_ms` or when full.

    An entry pushed out because the cache is full is still inside the replay window,
    so a copy of it would pass as new. The cache keeps a watermark instead: the
    newest frame time among the entries it had to evict, and refuses every frame at
    or before it (`too_old`). A frame's time counts no later than when we saw it,
    so a peer whose `ts` runs ahead (up to the window's skew) cannot push the
    watermark past the present and lock out everyone else; the price is a short
    gap for a copy of such a frame, until entries seen after its `ts` are evicted.

    Only the router (one thread, one process) touches it, so check-and-add is
    atomic by construction.
    """

    def __init__(self, max_entries: int = 200_000, ttl_ms: int = 15 * 60 * 1000) -> None:
        self.max_entries = max_entries
        self.ttl_ms = ttl_ms
        self._entries: OrderedDict[Hashable, tuple[int, int]] = OrderedDict()   # key -> (seen at, frame ts)
        self.watermark_ms = -1       # frames with a ts at or before it are refused
        self.evicted = 0             # entries pushed out by size (a counter you can read)

    def __len__(self) -> int:
        return len(self._entries)

    def too_old(self, ts: int) -> bool:
        """Is a frame of this time older than what the cache can still tell apart?"""
        return ts <= self.watermark_ms

    def check_and_add(self, key: Hashable, now_ms: int, ts: int | None = None) -> bool:
        """True if `key` is new (and now recorded); False if it is a duplicate, or if
        its frame time `ts` is at or before the watermark. A key with no frame time
        (`ts` None) is refused only as a duplicate."""
        self.expire(now_ms)
        if ts is not None and self.too_old(ts):
            return False
        if key in self._entries:
            return False
        self._entries[key] = (now_ms, now_ms if ts is None else ts)
        if len(self._entries) > self.max_entries:
            _, (seen_at, frame_ts) = self._entries.popitem(last=False)
            self.evicted += 1
            self.watermark_ms = max(self.watermark_ms, min(frame_ts, seen_at))
        return True

    def has(self, key: Hashable) -> bool:
        """Is `key` recorded (a look that adds nothing)?"""
        return key in self._entries

    def discard(self, key: Hashable) -> None:
        """Forget `key`: a frame that was refused may be sent again and take effect."""
        self._entries.pop(key, None)

    def expire(self, now_ms: int) -> None:
        horizon = now_ms - self.ttl_ms
        while self._entries:
            oldest_key, (seen_at, _) = next(iter(self._entries.items()))
            if seen_at >= horizon:
                break
            del self._entries[oldest_key]
