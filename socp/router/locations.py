"""Where each known user is (SOCP §3 `user_locations`), with a count per place.

A plain dict that also keeps how many users each location holds, so the router can
bound the users one linked server may claim (issue #15 weakness 3: a server that
advertises thousands of made-up users) without counting the whole table each time.
"""

from __future__ import annotations

from collections import Counter


class Locations(dict[str, str]):
    """user_id -> LOCAL or a server id. Only item assignment and `del` change it."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        super().__init__()
        self._counts: Counter[str] = Counter()

    def __setitem__(self, user_id: str, location: str) -> None:
        old = self.get(user_id)
        if old == location:
            return
        if old is not None:
            self._drop(old)
        super().__setitem__(user_id, location)
        self._counts[location] += 1

    def __delitem__(self, user_id: str) -> None:
        self._drop(self[user_id])
        super().__delitem__(user_id)

    def _drop(self, location: str) -> None:
        self._counts[location] -= 1
        if self._counts[location] <= 0:
            del self._counts[location]

    def count_at(self, location: str) -> int:
        return self._counts.get(location, 0)

    # The dict methods that would change it behind the counts' back are refused.
    def _unsupported(self, *args: object, **kwargs: object) -> None:
        raise TypeError("Locations changes only by item assignment and del")

    update = setdefault = pop = popitem = clear = _unsupported  # type: ignore[assignment]  # dict's own signatures differ: these only raise
