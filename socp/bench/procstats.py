"""CPU seconds and memory of a local node's processes, read from /proc (Linux).

A node's actors are found by their command line, which names the node's data
directory (`socp actor gateway --data-dir D`, supervisord's config in D/run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .launcher import processes_of

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
ROLES = ("gateway", "router", "verifier", "store", "metrics")


@dataclass(frozen=True, slots=True)
class ProcessSample:
    pid: int
    role: str             # gateway, router, verifier, store, metrics, supervisord, up
    cpu_s: float          # user + system since the process started
    rss_kib: int          # VmRSS now
    peak_rss_kib: int     # VmHWM: the largest RSS so far


def _role(cmdline: list[str]) -> str:
    if "actor" in cmdline:
        after = cmdline[cmdline.index("actor") + 1 : cmdline.index("actor") + 2]
        if after and after[0] in ROLES:
            return after[0]
    joined = " ".join(cmdline)
    if "supervisord" in joined:
        return "supervisord"
    if " up " in f" {joined} ":
        return "up"
    return "other"


def _status_kib(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def sample_process(pid: int, role: str) -> ProcessSample | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None  # it ended between listing and reading
    # Fields after the parenthesised name; utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    return ProcessSample(pid=pid, role=role, cpu_s=cpu_s, rss_kib=_status_kib(status, "VmRSS"),
                         peak_rss_kib=_status_kib(status, "VmHWM"))


def node_processes(data_dir: str) -> dict[int, str]:
    """pid -> role of every live process whose command line names `data_dir`."""
    return {pid: _role(cmdline) for pid, cmdline in processes_of(data_dir).items()}


def snapshot(processes: dict[int, str]) -> dict[int, ProcessSample]:
    samples = {}
    for pid, role in processes.items():
        sample = sample_process(pid, role)
        if sample is not None:
            samples[pid] = sample
    return samples


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """One process over the timed phase."""

    node: int             # index of the node (its data dir) in the target
    pid: int
    role: str
    cpu_s: float          # CPU seconds spent during the phase
    rss_mib: float        # RSS at the end of the phase
    peak_rss_mib: float   # VmHWM at the end of the phase


def usage_between(node: int, before: dict[int, ProcessSample], after: dict[int, ProcessSample]) -> list[ProcessUsage]:
    rows = []
    for pid, end in sorted(after.items(), key=lambda item: (item[1].role, item[0])):
        start = before.get(pid)
        cpu = end.cpu_s - start.cpu_s if start is not None else end.cpu_s
        rows.append(ProcessUsage(node=node, pid=pid, role=end.role, cpu_s=round(cpu, 2),
                                 rss_mib=round(end.rss_kib / 1024, 1), peak_rss_mib=round(end.peak_rss_kib / 1024, 1)))
    return rows


class NodeMeter:
    """Snapshots of every local node of a target, before and after a phase."""

    def __init__(self, data_dirs: tuple[str, ...]) -> None:
        self._processes = [node_processes(d) for d in data_dirs]
        self._before: list[dict[int, ProcessSample]] = []

    def start(self) -> None:
        self._before = [snapshot(p) for p in self._processes]

    def rss_kib(self) -> int:
        """Total RSS of the node processes now (for memory per connection)."""
        return sum(s.rss_kib for p in self._processes for s in snapshot(p).values())

    def stop(self) -> list[ProcessUsage]:
        rows: list[ProcessUsage] = []
        for index, (processes, before) in enumerate(zip(self._processes, self._before, strict=False)):
            rows += usage_between(index, before, snapshot(processes))
        return rows
