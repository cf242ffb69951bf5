"""Hand freed heap back to the operating system once a crowd of connections is gone.

A burst of thousands of connections (an attack, or a network coming back at once)
leaves the process's heap large after they close: glibc keeps freed memory for reuse
rather than returning it. When the number of open links has fallen to half of its
recent peak, `malloc_trim(0)` gives back what is free (issue #15 item 6).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

from socp.gateway.context import GatewayContext

log = logging.getLogger("socp.gateway")

CHECK_INTERVAL = 5.0   # seconds between looks at the link count
MIN_PEAK = 256         # below this many links, a trim is not worth a look


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)   # glibc only (not musl, not macOS)
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


class HeapTrimmer:
    """Decides when to trim: once the link count fell to half of the most links open
    at once since the last trim. Pure apart from the `trim` callable it is given."""

    def __init__(self, trim: Callable[[int], int] | None, min_peak: int = MIN_PEAK) -> None:
        self._trim = trim
        self._min_peak = min_peak
        self.peak = 0

    def observe(self, open_links: int, most_since_last_look: int) -> bool:
        """Note the current count and the most open since the last look; True if
        memory was handed back now."""
        self.peak = max(self.peak, most_since_last_look, open_links)
        if self._trim is None or self.peak < self._min_peak or open_links * 2 > self.peak:
            return False
        self._trim(0)
        self.peak = open_links
        return True


async def trim_after_crowds(context: GatewayContext) -> None:
    """Watch the link count until cancelled."""
    trimmer = HeapTrimmer(_load_malloc_trim())
    links = context.links
    while True:
        await asyncio.sleep(CHECK_INTERVAL)
        peak = max(trimmer.peak, links.take_high_water())
        if trimmer.observe(len(links), peak):
            context.stats.heap_trims += 1
            log.info("freed memory handed back after %d connections fell to %d", peak, len(links))
