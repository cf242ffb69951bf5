"""Verifiers on other hosts, as the node's bridge sees them (issue #18). Pure: no
sockets, the clock is passed in (STYLE §1, §6).

Remote verifiers sign; checks stay with the node's own verifiers (a check costs
~0.1 ms, a tenth of a signature, and would pay a network round trip). The bridge
(`bridge.py`) gives each remote a pipe of its own from the router's sign queue, so
the router's round robin counts it as one more verifier, and takes a job from that
pipe only while the remote has room for it (`credit`). A remote that says nothing
for `silence_ms` is presumed gone: it is forgotten with the jobs it held, which the
router sends again (router/inflight.py). So a host that disappears costs its jobs in
flight a re-send, never a message.

The wire between bridge and remote: ZeroMQ multipart messages, first part the kind,
over one CURVE-encrypted TCP connection per remote (ROUTER at the node, DEALER at the
remote):

    remote -> node   HELLO  version
                     DONE   jobs finished (ascii int), then (destination, message) pairs,
                            destination b"r" (router inbox) or b"g" (gateway inbox)
                     PING
    node -> remote   WELCOME  version, the node's signing key (DER), credit (ascii int)
                     JOB      one packed SignJob (or VerifyJob)
                     PING
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

VERSION = b"socp-remote-verifier/1"
HELLO, WELCOME, JOB, DONE, PING = b"HELLO", b"WELCOME", b"JOB", b"DONE", b"PING"
TO_ROUTER, TO_GATEWAY = b"r", b"g"

CREDIT_PER_REMOTE = 8        # jobs a remote holds at once: a few signatures plus the round trip
PING_INTERVAL_MS = 500
SILENCE_MS = 2_000           # no word for this long: the remote is gone (its jobs wait that long)
MAX_REMOTES = 256            # STYLE §5: the table of remotes is bounded too


class BadMessage(ValueError):
    """A multipart message that is not of the remote-verifier wire."""


@dataclass(slots=True)
class Remote:
    identity: bytes                  # the ROUTER's name for the connection
    key: str                         # its CURVE public key (z85), for the logs
    credit: int = CREDIT_PER_REMOTE
    held: int = 0                    # jobs handed to it, not yet reported done
    last_heard_ms: int = 0
    taken: int = 0                   # jobs handed to it in all (a counter you can read)


@dataclass(slots=True)
class RemotePool:
    remotes: dict[bytes, Remote] = field(default_factory=dict)
    silence_ms: int = SILENCE_MS
    # Counters you can read.
    joined: int = 0
    gone: int = 0
    jobs_lost_with_remotes: int = 0   # the node sends each of them again
    refused_hellos: int = 0           # the table was full

    def hello(self, identity: bytes, key: str, now_ms: int) -> bool:
        """A remote said HELLO (after CURVE let it in): True if it joins the pool. A
        second HELLO on the same connection starts it afresh (it restarted its loop)."""
        old = self.remotes.pop(identity, None)
        if old is not None:
            self.jobs_lost_with_remotes += old.held
        elif len(self.remotes) >= MAX_REMOTES:
            self.refused_hellos += 1
            return False
        self.remotes[identity] = Remote(identity=identity, key=key, last_heard_ms=now_ms)
        self.joined += 1
        return True

    def heard(self, identity: bytes, now_ms: int) -> Remote | None:
        remote = self.remotes.get(identity)
        if remote is not None:
            remote.last_heard_ms = now_ms
        return remote

    def done(self, identity: bytes, jobs: int, now_ms: int) -> None:
        """The remote finished `jobs` jobs (their results came with this report)."""
        remote = self.heard(identity, now_ms)
        if remote is not None:
            finished = max(0, min(jobs, remote.held))
            remote.held -= finished

    def room(self, identity: bytes) -> int:
        """Jobs the remote could take now (0 for one we do not know)."""
        remote = self.remotes.get(identity)
        return 0 if remote is None else max(0, remote.credit - remote.held)

    def took(self, identity: bytes) -> None:
        """A job went to the remote: it holds it until it reports it done."""
        remote = self.remotes[identity]
        remote.held += 1
        remote.taken += 1

    def expire(self, now_ms: int) -> list[Remote]:
        """Forget the remotes silent for `silence_ms`; return them (their held jobs are lost)."""
        silent = [r for r in self.remotes.values() if now_ms - r.last_heard_ms > self.silence_ms]
        for remote in silent:
            del self.remotes[remote.identity]
            self.gone += 1
            self.jobs_lost_with_remotes += remote.held
        return silent

    def __len__(self) -> int:
        return len(self.remotes)


# --- the wire ---------------------------------------------------------------------------


def done_message(jobs: int, results: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    parts = [DONE, str(jobs).encode()]
    for destination, data in results:
        parts += [destination, data]
    return parts


def read_done(parts: Sequence[bytes]) -> tuple[int, list[tuple[bytes, bytes]]]:
    """(jobs finished, [(destination, message)]) of a DONE message; BadMessage if malformed."""
    if len(parts) < 2 or parts[0] != DONE or len(parts) % 2 != 0:
        raise BadMessage("a DONE message is DONE, a count, then (destination, message) pairs")
    try:
        jobs = int(parts[1])
    except ValueError:
        raise BadMessage("the count of a DONE message is not a number") from None
    results = list(_pairs(parts[2:]))
    if any(destination not in (TO_ROUTER, TO_GATEWAY) for destination, _ in results):
        raise BadMessage("a DONE message names a destination other than router or gateway")
    return jobs, results


def _pairs(parts: Sequence[bytes]) -> Iterator[tuple[bytes, bytes]]:
    for index in range(0, len(parts), 2):
        yield parts[index], parts[index + 1]


def welcome_message(key_der: bytes, credit: int = CREDIT_PER_REMOTE) -> list[bytes]:
    return [WELCOME, VERSION, key_der, str(credit).encode()]


def read_welcome(parts: Sequence[bytes]) -> tuple[bytes, int]:
    """(the node's signing key, DER; credit) of a WELCOME; BadMessage otherwise."""
    if len(parts) != 4 or parts[0] != WELCOME:
        raise BadMessage("not a WELCOME")
    if parts[1] != VERSION:
        raise BadMessage(f"the node speaks {parts[1]!r}, we speak {VERSION!r}")
    try:
        return parts[2], int(parts[3])
    except ValueError:
        raise BadMessage("the credit of a WELCOME is not a number") from None


def group_by_destination(results: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, list[bytes]]]:
    """Consecutive results for one destination, together: each group leaves the bridge
    as one multipart message (the router reads each part as a message), in order."""
    groups: list[tuple[bytes, list[bytes]]] = []
    for destination, data in results:
        if groups and groups[-1][0] == destination:
            groups[-1][1].append(data)
        else:
            groups.append((destination, [data]))
    return groups
