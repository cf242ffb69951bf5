"""What limits a run: how much of each resource the timed phase used, busiest first. Pure.

- A node actor (gateway, router, store) is one event loop on one thread: it cannot
  use more than one core, however many the machine has.
- The verifier pool has one core per verifier process.
- Signatures: every frame a node sends a user is signed (RSA-4096), so the frames
  users received per second are set against the sign capacity measured in the same
  run (capacity.py).
- The machine: the node's processes and the load generator share its cores (and, on
  a shared machine, with whatever else runs there: say the load average beside it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .procstats import ProcessUsage

SINGLE_LOOP_ROLES = ("gateway", "router", "store")
SATURATED = 0.8        # a resource this busy is what a faster offer would run into


@dataclass(frozen=True, slots=True)
class ResourceUse:
    resource: str
    used: float            # fraction of what it has: 1.0 is all of it
    has: str               # what it has, in words ("one core", "2 cores", "412 signatures/s")


def resource_use(window_s: float, processes: list[ProcessUsage], client_cpu_s: float | None, cores: int,
                 signed_per_s: float, sign_capacity_per_s: float) -> list[ResourceUse]:
    """Each resource's use over a phase of `window_s` seconds, busiest first."""
    if window_s <= 0:
        return []
    nodes = {row.node for row in processes}
    cpu: dict[tuple[int, str], float] = defaultdict(float)
    count: dict[tuple[int, str], int] = defaultdict(int)
    for row in processes:
        cpu[row.node, row.role] += row.cpu_s
        count[row.node, row.role] += 1
    uses: list[ResourceUse] = []
    for (node, role), seconds in cpu.items():
        name = role if len(nodes) == 1 else f"node {node + 1} {role}"
        if role in SINGLE_LOOP_ROLES:
            uses.append(ResourceUse(name, seconds / window_s, "one core"))
        elif role == "verifier":
            pool = count[node, role]
            uses.append(ResourceUse(f"{name} pool", seconds / (window_s * pool),
                                    f"{pool} core{'s' if pool > 1 else ''}"))
    if client_cpu_s is not None:
        uses.append(ResourceUse("bench client", client_cpu_s / window_s, "one core"))
    total_cpu = sum(row.cpu_s for row in processes) + (client_cpu_s or 0.0)
    uses.append(ResourceUse("machine", total_cpu / (window_s * max(cores, 1)), f"{cores} cores"))
    if sign_capacity_per_s > 0:
        uses.append(ResourceUse("signatures", signed_per_s / sign_capacity_per_s,
                                f"{sign_capacity_per_s:.0f} signatures/s measured"))
    return sorted(uses, key=lambda use: use.used, reverse=True)


def describe(uses: list[ResourceUse]) -> str:
    """One line: the saturated resources (or the busiest one), then the next ones."""
    if not uses:
        return "not measured"
    saturated = [use for use in uses if use.used >= SATURATED]
    shown = ", ".join(f"{use.resource} {use.used:.2f} of {use.has}" for use in uses[:4])
    if saturated:
        names = " and ".join(use.resource for use in saturated)
        return f"saturated: {names} ({shown})"
    return f"nothing saturated ({shown})"
