"""Sign jobs the router sent and the gateway has not yet released (pure bookkeeping).

A verifier killed mid-job takes its jobs with it; the gateway's reorder buffer would
then wait for their out seqs forever. The gateway reports, per connection, the first
out seq it has not released (ipc OutboundDone); a job whose items are not all below
those marks in time is sent again (to whichever verifier takes it), and after
`max_tries` it is given up: its items are released as empty texts, which the gateway
skips, so the connection moves on.

"In time" grows with the backlog: `timeout_ms` plus what the jobs in flight would take
the pool to sign at a pessimistic `sign_budget_ms` each. A fixed timeout re-sent every
job of a merely busy pool, which then had twice the work: a retry storm that took a
node under a 10,000-user connection ramp down to a fraction of its speed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

ConnId = int


@dataclass(slots=True)
class _Job:
    data: bytes
    sent_ms: int
    pending: set[tuple[ConnId, int]]
    tries: int = 1


@dataclass(slots=True)
class InFlight:
    timeout_ms: int = 2_000
    max_tries: int = 4
    verifiers: int = 1             # processes signing in parallel
    sign_budget_ms: int = 12       # about twice one RSA-4096 signature on a loaded core
    _jobs: dict[int, _Job] = field(default_factory=dict)
    _by_conn: dict[ConnId, deque[tuple[int, int]]] = field(default_factory=dict)   # conn -> (seq, job id)
    _next_id: int = 0
    resent: int = 0
    given_up: int = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def sent(self, data: bytes, targets: list[tuple[ConnId, int]], now_ms: int) -> None:
        job_id = self._next_id
        self._next_id += 1
        self._jobs[job_id] = _Job(data, now_ms, set(targets))
        for conn, seq in targets:
            self._by_conn.setdefault(conn, deque()).append((seq, job_id))

    def released(self, conn: ConnId, first_unreleased: int) -> None:
        """The gateway released every item of `conn` below `first_unreleased`."""
        queue = self._by_conn.get(conn)
        while queue and queue[0][0] < first_unreleased:
            seq, job_id = queue.popleft()
            self._done(job_id, conn, seq)
        if queue is not None and not queue:
            del self._by_conn[conn]

    def forget_conn(self, conn: ConnId) -> None:
        for seq, job_id in self._by_conn.pop(conn, ()):
            self._done(job_id, conn, seq)

    def patience_ms(self) -> int:
        """How old a job may grow before it is presumed lost with its verifier."""
        return self.timeout_ms + len(self._jobs) * self.sign_budget_ms // max(1, self.verifiers)

    def due(self, now_ms: int) -> tuple[list[bytes], list[tuple[ConnId, int]]]:
        """(jobs to send again, items to give up) at `now_ms`."""
        again: list[bytes] = []
        give_up: list[tuple[ConnId, int]] = []
        patience = self.patience_ms()
        # Jobs are kept oldest first (a re-sent job moves to the end): stop at the first young one.
        for job_id, job in list(self._jobs.items()):
            if now_ms - job.sent_ms < patience:
                break
            del self._jobs[job_id]
            if job.tries >= self.max_tries:
                give_up += sorted(job.pending)
                self.given_up += 1
                continue
            job.tries += 1
            job.sent_ms = now_ms
            self._jobs[job_id] = job
            self.resent += 1
            again.append(job.data)
        return again, give_up

    def _done(self, job_id: int, conn: ConnId, seq: int) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        job.pending.discard((conn, seq))
        if not job.pending:
            del self._jobs[job_id]
