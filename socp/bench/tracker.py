"""Counting deliveries exactly: every prepared frame has a unique key (its
content_sig, or file_id:index for a file chunk) and a known set of receivers.

A frame the server refused (an ERROR naming its msg_ref: RATE_LIMITED, OVERLOADED)
is counted as refused, apart from lost: the server said it would not carry it, so
its sender knows; lost means it was neither delivered nor refused.

A receiver only looks the key up (no decryption in the timed phase); a reservoir
keeps a uniform random sample of delivered frames, checked in full afterwards.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .prepare import PreparedFrame


@dataclass(slots=True)
class _Expected:
    sender: int
    receivers: tuple[int, ...]
    sent_at: float = -1.0          # perf_counter when sent (open loop: when it was due)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass(slots=True)
class DeliveryTracker:
    sample_size: int = 20
    on_fully_delivered: Callable[[int], None] | None = None  # gets the sender index
    on_refused: Callable[[int, float], None] | None = None    # sender index, seconds to wait (retry hint)
    expected: dict[str, _Expected] = field(default_factory=dict)
    seen: Counter[tuple[int, str]] = field(default_factory=Counter)            # (receiver, key) -> times received
    latencies_s: list[float] = field(default_factory=list)
    delivered_times: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)          # refused frames by code (or ERRORs naming none)
    refused_by_code: Counter[str] = field(default_factory=Counter)  # our frames an ERROR named, by its code
    refused_keys: set[str] = field(default_factory=set)
    refs: dict[str, str] = field(default_factory=dict)        # msg_ref -> key
    refused_then_delivered: int = 0                           # a server that refuses and delivers anyway
    unexpected: int = 0                                       # deliveries of keys we never sent
    signatures: set[str] = field(default_factory=set)         # distinct node `sig`s on deliveries
    sample: list[tuple[int, str]] = field(default_factory=list)   # (receiver, frame text)
    _reservoir_seen: int = 0
    _sent: int = 0
    _due: int = 0                                             # deliveries owed for the frames sent
    _refused_missing: int = 0                                 # of them, for refused frames, not arrived
    _rng: random.Random = field(default_factory=random.Random)

    def expect(self, prepared: Iterable[PreparedFrame]) -> None:
        for frame in prepared:
            self.expected[frame.key] = _Expected(frame.sender, frame.receivers)
            if frame.ref:
                self.refs[frame.ref] = frame.key

    def sent(self, key: str, when: float) -> None:
        expected = self.expected[key]
        if expected.sent_at < 0:
            self._sent += 1
            self._due += len(expected.receivers)
        expected.sent_at = when

    def delivered(self, receiver: int, key: str, when: float, text: str, sig: str) -> None:
        expected = self.expected.get(key)
        if expected is None or expected.sent_at < 0:
            self.unexpected += 1
            return
        seen_key = (receiver, key)
        self.seen[seen_key] += 1
        if self.seen[seen_key] > 1:
            return  # a duplicate: counted by duplicates(), not timed again
        if key in self.refused_keys:
            self._refused_missing -= 1    # refused, then delivered after all: it counts as delivered
            self.refused_then_delivered += 1
        if sig:
            self.signatures.add(sig)
        self.latencies_s.append(when - expected.sent_at)
        self.delivered_times.append(when)
        self._keep_for_sample(receiver, text)
        if self.on_fully_delivered is not None and self.seen_by_all(key, expected):
            self.on_fully_delivered(expected.sender)

    def seen_by_all(self, key: str, expected: _Expected) -> bool:
        # The common case (one receiver) answers without a loop.
        if len(expected.receivers) == 1:
            return True
        return all((r, key) in self.seen for r in expected.receivers)

    def _keep_for_sample(self, receiver: int, text: str) -> None:
        """Reservoir sampling (Algorithm R): every delivery equally likely kept."""
        self._reservoir_seen += 1
        if len(self.sample) < self.sample_size:
            self.sample.append((receiver, text))
            return
        slot = self._rng.randrange(self._reservoir_seen)
        if slot < self.sample_size:
            self.sample[slot] = (receiver, text)

    def error(self, code: str, frames_named: int = 0) -> None:
        """An ERROR: it counts once per frame it names (one ERROR may name a whole
        refused burst in `msg_refs`), or once if it names none."""
        self.errors[code] += max(1, frames_named)

    def refused(self, ref: str, code: str, retry_s: float = 0.0) -> bool:
        """An ERROR named one of our frames by its msg_ref. True if it was a frame we
        sent and had not seen refused before (a slot of its sender comes back after
        the retry hint, as a client that honours the hint would wait)."""
        key = self.refs.get(ref)
        expected = self.expected.get(key) if key is not None else None
        if key is None or expected is None or expected.sent_at < 0 or key in self.refused_keys:
            return False
        self.refused_keys.add(key)
        self.refused_by_code[code] += 1
        self._refused_missing += sum(1 for receiver in expected.receivers if (receiver, key) not in self.seen)
        if self.on_refused is not None:
            self.on_refused(expected.sender, retry_s)
        return True

    # --- results -----------------------------------------------------------------------

    def sent_count(self) -> int:
        return self._sent

    def deliveries_expected(self) -> int:
        return self._due

    def deliveries(self) -> int:
        return len(self.latencies_s)

    def refused_count(self) -> int:
        return len(self.refused_keys)

    def refused_undelivered(self) -> int:
        """Deliveries that were due for the refused frames and have not arrived."""
        return self._refused_missing

    def lost(self) -> int:
        """Deliveries that were due (the frame was sent), never arrived, and were not
        refused by the server."""
        return self.deliveries_expected() - self.deliveries() - self.refused_undelivered()

    def duplicates(self) -> int:
        return sum(count - 1 for count in self.seen.values() if count > 1)

    def outstanding(self) -> int:
        return self.lost()
