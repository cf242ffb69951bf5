"""Put a stream of numbered items back in order (one per connection and direction).

The verifier pool works on a connection's frames in parallel, so results come back
in any order; a ReorderBuffer releases them strictly by sequence number.
"""

from __future__ import annotations

from typing import Generic, TypeVar

Item = TypeVar("Item")


class ReorderOverflow(Exception):
    """More items are waiting for a gap to fill than the buffer may hold."""


class ReorderBuffer(Generic[Item]):
    __slots__ = ("next_seq", "_waiting", "max_waiting")

    def __init__(self, max_waiting: int = 4096, first_seq: int = 0) -> None:
        self.next_seq = first_seq
        self._waiting: dict[int, Item] = {}
        self.max_waiting = max_waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def push(self, seq: int, item: Item) -> list[Item]:
        """Add one item; return every item now ready, in order (maybe none)."""
        if seq < self.next_seq or seq in self._waiting:
            return []  # a duplicate: already released or already waiting
        if seq != self.next_seq:
            if len(self._waiting) >= self.max_waiting:
                raise ReorderOverflow(f"{len(self._waiting)} items wait for seq {self.next_seq}")
            self._waiting[seq] = item
            return []
        ready = [item]
        self.next_seq += 1
        while self.next_seq in self._waiting:
            ready.append(self._waiting.pop(self.next_seq))
            self.next_seq += 1
        return ready

    def skip_to(self, seq: int) -> list[Item]:
        """Give up on every seq below `seq` (lost with a dead actor): drop what waits
        below it, then release whatever is now in order."""
        for old in [s for s in self._waiting if s < seq]:
            del self._waiting[old]
        if seq <= self.next_seq:
            return []
        self.next_seq = seq
        ready = []
        while self.next_seq in self._waiting:
            ready.append(self._waiting.pop(self.next_seq))
            self.next_seq += 1
        return ready

    def drain(self) -> list[Item]:
        """Everything waiting, in seq order, skipping gaps (a stream that ended)."""
        ready = [self._waiting[s] for s in sorted(self._waiting)]
        self._waiting.clear()
        return ready

    def oldest_gap(self) -> int | None:
        """The seq being waited for, if anything is waiting behind it."""
        return self.next_seq if self._waiting else None
