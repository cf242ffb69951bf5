"""Hand freed heap back to the operating system after crowds and big frames.

Two glibc habits keep an attack's memory after it ends (issue #15 item 6). Large
frames: glibc serves big allocations with mmap (returned at free) only below a
threshold it raises each time such a block is freed, so after a few 4 MiB frames it
serves them from the heap and keeps them; `fix_mmap_threshold` pins the threshold.
Crowds: after thousands of connections close, freed heap is kept for reuse; when the
number of open links has fallen to half of its recent peak, `malloc_trim(0)` gives
back what is free.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Any

from socp.gateway.context import GatewayContext

log = logging.getLogger("socp.gateway")

CHECK_INTERVAL = 5.0   # seconds between looks at the link count
MIN_PEAK = 256         # below this many links, a trim is not worth a look
M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD = 256 * 1024   # blocks from this size up are mmapped, and so returned at free


def _libc_function(name: str) -> Any:
    """A glibc function, or None (musl and macOS have neither of ours)."""
    library = ctypes.util.find_library("c")
    return None if library is None else getattr(ctypes.CDLL(library), name, None)


def _load_malloc_trim() -> Callable[[int], int] | None:
    trim: Callable[[int], int] | None = _libc_function("malloc_trim")
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int  # type: ignore[attr-defined]  # a ctypes function
    return trim


def fix_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold so big frames' memory goes back at free; False if
    this libc cannot."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


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
