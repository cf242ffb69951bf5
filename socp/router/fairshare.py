"""Fair share of the node's signatures across senders (issue #15 item 4). Pure: no
sockets, the clock is passed in.

Signatures are what a node runs out of (RSA-4096: 1.2-6 ms each). Every frame the
router sends is one signing job for the verifier pool; with one FIFO in front of the
pool, 30 senders flooding at their own rate limit queued ~16,000 jobs and an honest
DM waited seconds behind them. So the router keeps a queue per sender and hands the
pool only a small window of jobs at a time (`window`: enough to keep every verifier
busy), choosing the next job by deficit round robin over the senders with work:

- a sender whose queue was empty (an honest user, a lone DM) goes to the `fresh`
  list, served before the senders that keep a backlog (the "new flows first" rule
  of fq_codel): its frame waits for the window, not for a round of every flooder;
- a lone sender on an idle node is the only one with work: it gets every signature;
- under contention each backlogged sender gets 1/n of the signatures.

Admission (`admission_problem`) keeps every queue bounded by length *and* time: a
sender may queue only what its share of the measured capacity signs within
`max_wait_ms`; past that its frame is refused OVERLOADED with a retry hint before
the router acknowledges it. A frame that was admitted is never dropped: it was
acknowledged as handed on (router/user_acks.py).

Capacity is measured, not assumed: each verifier reports how long every signature
took (ipc `Signed`), and `capacity_per_s` is the pool's size over the moving average.

Frames the node answers with on its own behalf (ACKs and ERRORs to the sender,
presence, heartbeats) mostly do not queue here: they are bounded elsewhere (ack
interval, error budgets), and they are counted in the window as they go
(`sent_directly`). ACKs, the lowest priority, take only the window's `spare_room`:
none while any sender's frame is queued (router/user_acks.py).

The exception: the ERRORs naming a sender's refused frames (router/refusals.py) are
`charge`d to that sender's own queue, behind its jobs and without the new-sender
priority. Sent directly, the answers to 30 flooders fell due together and reached
the pool as one burst each second, which every honest DM waited behind (issue #15
item 4); queued, they leave at the pool's pace, a window at a time, an honest
sender's fresh frame goes before them, and a flooder pays for its own refusals out
of its own share.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from socp.ipc.link_state import LinkState

from .peer_links import PeerLink

Job = TypeVar("Job")

# Senders are named by kind: "user:<id>" (our user), "server:<id>" (a linked server's relays).
USER, SERVER = "user:", "server:"


def sender_of(link: PeerLink | None) -> str | None:
    """The sender whose share `link`'s frames come out of: our user, or a linked
    server (its relays); None for a link that is neither yet."""
    if link is None or not link.peer_id:
        return None
    if link.is_user:
        return USER + link.peer_id
    if link.state is LinkState.JOINED:
        return SERVER + link.peer_id
    return None


@dataclass(slots=True)
class FairShare(Generic[Job]):
    verifiers: int = 1
    remote_verifiers: int = 0           # on other hosts, as the bridge last said (verifier/bridge.py)
    jobs_per_verifier: int = 2          # window: jobs at the pool at once, per verifier
    max_wait_ms: int = 1000             # a sender queues at most what its share signs in this time
    min_queue: int = 4                  # ...but always this many (a burst of a few parts)
    max_queued: int = 50_000            # all senders together (STYLE §5)
    sign_ms: float = 6.0                # moving average of one signature, from the verifiers
    sign_ms_weight: float = 0.05        # weight of each new measurement
    stall_ms: int = 5_000               # no result for this long with jobs out: presume them lost
    queues: dict[str, deque[Job]] = field(default_factory=dict)      # sender -> jobs waiting
    fresh: deque[str] = field(default_factory=deque)                  # senders whose queue was empty
    backlogged: deque[str] = field(default_factory=deque)             # senders served round robin
    out: int = 0                         # jobs at the pool, not yet reported signed
    last_result_ms: int = 0
    queued: int = 0
    # Counters you can read.
    admitted: int = 0
    refused: int = 0
    signed: int = 0
    presumed_lost: int = 0

    # --- measured capacity ----------------------------------------------------------------

    @property
    def pool(self) -> int:
        """Verifier processes signing for the node: its own and those on other hosts."""
        return max(1, self.verifiers + self.remote_verifiers)

    @property
    def window(self) -> int:
        return max(1, self.pool * self.jobs_per_verifier)

    @property
    def spare_room(self) -> int:
        """Signatures the node may spend on what can wait (ACKs) without delaying any
        sender's frame: the window's free places, none while a sender's frame is queued."""
        if self.queued:
            return 0
        return max(0, self.window - self.out)

    @property
    def capacity_per_s(self) -> float:
        """Signatures per second the pool makes, at the measured speed."""
        return self.pool * 1000.0 / max(self.sign_ms, 0.01)

    def signed_jobs(self, count: int, sign_ms: float, now_ms: int) -> None:
        """A verifier signed `count` jobs, the last in `sign_ms` (ipc Signed)."""
        self.out = max(0, self.out - count)
        self.signed += count
        self.last_result_ms = now_ms
        if sign_ms > 0:
            self.sign_ms += self.sign_ms_weight * (sign_ms - self.sign_ms)

    # --- admission ------------------------------------------------------------------------

    def share_limit(self, sender: str) -> int:
        """How many jobs `sender` may have queued: what its fair share of the capacity
        signs within max_wait_ms, with every sender that has work now (and it) sharing."""
        senders = len(self.queues) + (0 if sender in self.queues else 1)
        per_sender_per_s = self.capacity_per_s / senders
        return max(self.min_queue, int(per_sender_per_s * self.max_wait_ms / 1000))

    def admission_problem(self, sender: str) -> float | None:
        """None if `sender` may queue one more job; else in how many seconds to retry."""
        waiting = len(self.queues.get(sender, ()))
        if waiting < self.share_limit(sender) and self.queued < self.max_queued:
            self.admitted += 1
            return None
        self.refused += 1
        senders = max(1, len(self.queues))
        return (waiting + 1) * senders / self.capacity_per_s

    # --- queueing -------------------------------------------------------------------------

    def push(self, sender: str, job: Job, new_sender_first: bool = True) -> None:
        """Queue `sender`'s job. A sender with nothing queued goes to the `fresh` list,
        or with `new_sender_first` False to the end of the round robin."""
        queue = self.queues.get(sender)
        if queue is None:
            queue = self.queues[sender] = deque()
            (self.fresh if new_sender_first else self.backlogged).append(sender)
        queue.append(job)
        self.queued += 1

    def charge(self, sender: str, job: Job) -> None:
        """Queue a job the node owes `sender` (an answer to it) behind the sender's own
        jobs, never on the `fresh` list: answers go after every fresh sender's frame."""
        self.push(sender, job, new_sender_first=False)

    def waiting(self, sender: str) -> int:
        """Jobs `sender` has queued."""
        return len(self.queues.get(sender, ()))

    def sent_directly(self, count: int = 1) -> None:
        """The node's own frames went to the pool without queueing: they take room."""
        self.out += count

    def ready(self, now_ms: int) -> list[Job]:
        """The jobs to hand the pool now: as many as the window has room for, fresh
        senders first, then one job per backlogged sender in turn."""
        if self.out and now_ms - self.last_result_ms > self.stall_ms:
            # A verifier died with its jobs (InFlight sends them again): do not wait for ever.
            self.presumed_lost += self.out
            self.out = 0
        taken: list[Job] = []
        while self.out < self.window and self.queued:
            if self.out == 0:
                self.last_result_ms = now_ms      # the stall clock starts with the first job out
            taken.append(self._next())
            self.out += 1
        return taken

    def _next(self) -> Job:
        turn = self.fresh if self.fresh else self.backlogged
        sender = turn.popleft()
        queue = self.queues[sender]
        job = queue.popleft()
        self.queued -= 1
        if queue:
            self.backlogged.append(sender)
        else:
            del self.queues[sender]
        return job

    def __len__(self) -> int:
        return self.queued


__all__ = ["FairShare", "SERVER", "USER", "sender_of"]
