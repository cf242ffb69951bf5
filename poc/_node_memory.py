"""The memory of the whole node under attack, not only its gateway's (issue #15 asks
for the node's RSS before and after a flood; /healthz reports the gateway's alone).

Linux only, and only for a node on this machine (the scripts attack loopback nodes):
the process listening on the node's port is its gateway; the node is that process
and every other child of its parent (the supervisor's actors: router, verifiers,
store). None where /proc cannot tell.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

PROC = Path("/proc")
LISTEN = "0A"      # TCP state in /proc/net/tcp


def node_rss_bytes(port: int) -> int | None:
    """Resident bytes of the node listening on `port`: its gateway and that process's
    siblings; None if they cannot be found."""
    listener = _listening_pid(port)
    if listener is None:
        return None
    parent = _parent(listener)
    actors = _children(parent) if parent is not None and parent > 1 else [listener]
    sizes = [_rss(pid) for pid in actors]
    known = [size for size in sizes if size is not None]
    return sum(known) if known else None


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _listening_pid(port: int) -> int | None:
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return None
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if fd.readlink().as_posix() in wanted:
                    return int(entry.name)
        except OSError:      # gone, or not ours to read
            continue
    return None


def _parent(pid: int) -> int | None:
    try:
        # The command name may hold spaces or parentheses: the fields after the last ")".
        return int((PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and _parent(int(entry.name)) == pid:
            found.append(int(entry.name))
    return found


def _rss(pid: int) -> int | None:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        return None
    return None


def port_of(ws_url: str) -> int:
    """The TCP port of a ws:// URL (the scripts' --url)."""
    parts = urlsplit(ws_url)
    return parts.port or (443 if parts.scheme == "wss" else 80)


def describe_node_rss(before: int | None, after: int | None) -> str:
    """A report line: the node's RSS before and after, or why it is not known."""
    if before is None or after is None:
        return "node RSS (all its actors): unknown (not a node on this machine, or no /proc)"
    return f"node RSS (all its actors) {before / 2**20:.0f} MiB before, {after / 2**20:.0f} MiB after"
