"""The sign capacity of this machine: RSA-4096 PSS signatures per second, all cores.

Every frame a node emits costs one such signature, so this is the ceiling a node's
DM throughput is compared with. It is measured in the same run as the bench,
because the machine is shared and its speed drifts.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass

from socp.protocol import crypto

from .targets import POOL_START_METHOD

_worker_key: crypto.PrivateKey | None = None


def _load_key(der: bytes) -> None:
    global _worker_key
    _worker_key = crypto.load_private_key_der(der)


def _sign_for(seconds: float) -> tuple[int, float]:
    """Sign for `seconds` of wall time; return (signatures, CPU seconds used)."""
    assert _worker_key is not None
    data = os.urandom(600)  # about the size of a DM's signed bytes
    cpu_start = time.process_time()
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        crypto.sign_pss(_worker_key, data)
        count += 1
    return count, time.process_time() - cpu_start


@dataclass(frozen=True, slots=True)
class SignCapacity:
    signatures_per_s: float      # all cores together
    seconds_per_signature: float  # CPU time of one signature on one core
    cores: int
    measured_for_s: float


def measure_sign_capacity(key_der: bytes, seconds: float = 2.5, cores: int | None = None) -> SignCapacity:
    """One worker per core, each signing for `seconds`; the total per second."""
    cores = cores or os.cpu_count() or 1
    with multiprocessing.get_context(POOL_START_METHOD).Pool(cores, initializer=_load_key, initargs=(key_der,)) as pool:
        pool.map(_sign_for, [0.05] * cores, chunksize=1)  # warm up: imports, key loading
        results = pool.map(_sign_for, [seconds] * cores, chunksize=1)
    total = sum(count for count, _ in results)
    cpu = sum(cpu for _, cpu in results)
    return SignCapacity(signatures_per_s=total / seconds, seconds_per_signature=cpu / max(total, 1),
                        cores=cores, measured_for_s=seconds)
