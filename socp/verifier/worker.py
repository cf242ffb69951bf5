"""The verifier process: a synchronous ZeroMQ loop around `checks` and `signer`.

Sockets (the gateway and router bind, we connect; ZeroMQ guide):

    PULL  ← verify_jobs (gateway)      taken first: a check costs ~0.1 ms, a signature ~6 ms
    PULL  ← sign_jobs (router)         one at a time, between rounds of checks
    PUSH  → router_inbox     Verified / Rejected, one multipart message per round of checks;
                             Signed after each signature (what it cost)
    PUSH  → gateway_inbox    Deliver; ChecksFailed after a round of checks in which
                             content signatures failed (gateway/check_throttle.py)

Every job gets exactly one answer per sequence number, whatever happens to it: a
connection's frames are reordered downstream by seq, and a missing answer would
stall that connection.

Bounds (STYLE §5): each job pipe holds at most JOB_QUEUE_HWM messages, so a busy
verifier does not hoard work the binder's PUSH could give an idle one; each output
pipe holds at most RESULT_QUEUE_HWM. When an output is full the verifier blocks
(it stops taking jobs, so the backpressure reaches the gateway and the router); a
SIGTERM still ends it within STOP_POLL_MS.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType as StackFrame
from typing import TypeVar

import zmq

from socp.config import NodeConfig
from socp.identity import load_identity
from socp.ipc import messages
from socp.ipc.messages import ChecksFailed, Deliver, Rejected, Signed, SignJob, VerifyJob
from socp.metrics import verifier as metrics
from socp.protocol.crypto import PrivateKey, fingerprint
from socp.protocol.errors import ErrorCode, SocpError
from socp.runtime import setup_logging

from .budget import FailedChecks
from .checks import check_job, content_sig_checks
from .signer import ReusedSignatures, sign_job

log = logging.getLogger("socp.verifier")

JOB_QUEUE_HWM = 64
# Checks taken before each signature: enough that a frame never waits behind a queue
# of signatures, few enough that a flood of checks cannot starve the signing.
CHECKS_PER_SIGNATURE = 64
RESULT_QUEUE_HWM = 1000
STOP_POLL_MS = 100


@dataclass(slots=True)
class VerifierStats:
    """Counters of one verifier process, logged when it stops."""

    verified: int = 0
    rejected: int = 0
    signed: int = 0              # signatures made (one per SignJob)
    delivered: int = 0           # frame texts handed to the gateway
    internal_errors: int = 0     # bugs: a job raised something other than SocpError
    bad_messages: int = 0        # actor messages we could not read or do not take
    blocked_sends: int = 0       # times an output queue was full


class _Stopping(Exception):
    """A stop was requested while blocked on a full output queue."""


class Verifier:
    """One process's sockets and key; `serve()` runs until `should_stop()` is true."""

    def __init__(self, config: NodeConfig, private_key: PrivateKey, should_stop: Callable[[], bool],
                 context: zmq.Context[zmq.Socket[bytes]] | None = None) -> None:
        self._init_work(private_key, should_stop)
        self._context = context or zmq.Context.instance()
        endpoints = config.endpoints
        self.verify_jobs = self._socket(zmq.PULL, JOB_QUEUE_HWM, endpoints.verify_jobs)
        self.sign_jobs = self._socket(zmq.PULL, JOB_QUEUE_HWM, endpoints.sign_jobs)
        self.to_router = self._socket(zmq.PUSH, RESULT_QUEUE_HWM, endpoints.router_inbox)
        self.to_gateway = self._socket(zmq.PUSH, RESULT_QUEUE_HWM, endpoints.gateway_inbox)

    def _init_work(self, private_key: PrivateKey, should_stop: Callable[[], bool]) -> None:
        """What any verifier holds, whatever carries its jobs (a remote one too, remote.py)."""
        self.private_key = private_key
        self.reused_signatures = ReusedSignatures()
        self.check_content = content_sig_checks()
        self.failed_checks = FailedChecks(time.monotonic)
        if not self.check_content:
            log.warning("SOCP_CHECK_CONTENT_SIG=0: users' content_sig NOT checked before signing (testing only)")
        self.should_stop = should_stop
        self.stats = VerifierStats()
        # Results of one round of checks leave as one multipart message (one wakeup of
        # ZeroMQ's I/O thread instead of one per result); the router reads each part.
        self._results_waiting: list[bytes] = []

    def _socket(self, kind: int, hwm: int, *connect_to: str) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = self._context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM if kind == zmq.PUSH else zmq.RCVHWM, hwm)
        for endpoint in connect_to:
            sock.connect(endpoint)
        return sock

    def close(self) -> None:
        for sock in (self.verify_jobs, self.sign_jobs, self.to_router, self.to_gateway):
            sock.close(linger=0)

    def serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.verify_jobs, zmq.POLLIN)
        poller.register(self.sign_jobs, zmq.POLLIN)
        try:
            while not self.should_stop():
                if not poller.poll(STOP_POLL_MS):
                    continue
                # Work through what is queued before polling again; stop checks stay cheap.
                while not self.should_stop():
                    checked = self._take(self.verify_jobs, CHECKS_PER_SIGNATURE)
                    self._report_failed_checks()
                    self._send_results()
                    signed = self._take(self.sign_jobs, 1)
                    self._send_results()
                    if not checked and not signed:
                        break
        except _Stopping:
            pass

    def _take(self, sock: zmq.Socket[bytes], limit: int) -> int:
        """Handle up to `limit` waiting jobs from `sock`; return how many there were."""
        for taken in range(limit):
            try:
                data = sock.recv(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return taken
            self.handle(data)
        return limit

    def handle(self, data: bytes) -> None:
        try:
            job = messages.unpack(data)
        except SocpError as exc:
            self.stats.bad_messages += 1
            log.error("dropped an unreadable actor message: %s", exc.detail)
            return
        except Exception:
            # A bug in the wire form; with no conn or seq to answer, all we can do is tell.
            self.stats.internal_errors += 1
            log.exception("dropped an actor message that broke unpack")
            return
        if isinstance(job, VerifyJob):
            self._verify(job)
        elif isinstance(job, SignJob):
            self._sign(job)
        else:
            self.stats.bad_messages += 1
            log.error("dropped a %s: verifiers take VerifyJob and SignJob only", type(job).__name__)

    def _verify(self, job: VerifyJob) -> None:
        started = time.perf_counter()
        try:
            result = check_job(job, self.check_content, self.failed_checks)
            data = messages.pack(result)
        except Exception:
            # A bug, not the peer's fault; still answer so the connection's order moves on.
            self.stats.internal_errors += 1
            log.exception("internal error verifying conn %r seq %r", job.conn, job.seq)
            result = Rejected(job.conn, job.seq, ErrorCode.MALFORMED.value, "internal error", "")
            data = messages.pack(result)
        if isinstance(result, Rejected):
            self.stats.rejected += 1
        else:
            self.stats.verified += 1
        metrics.frame_checked(result, time.perf_counter() - started)
        self._results_waiting.append(data)

    def _report_failed_checks(self) -> None:
        """Tell the gateway whose content signatures failed in the round just done."""
        report = self.failed_checks.take_report()
        if report:
            self._deliver([messages.pack(ChecksFailed(report))])

    def _send_results(self) -> None:
        if self._results_waiting:
            results, self._results_waiting = self._results_waiting, []
            self._send(self.to_router, results)

    def _sign(self, job: SignJob) -> None:
        started = time.perf_counter()
        try:
            delivers = sign_job(self.private_key, job, self.reused_signatures)
            packed = [messages.pack(deliver) for deliver in delivers]
        except Exception:
            # A bug in us or the router. The contract has no failure answer to a
            # SignJob, so an empty text stands in for each out seq: the connections'
            # order moves on instead of stalling behind a seq that never comes.
            self.stats.internal_errors += 1
            log.exception("internal error signing a %r frame", job.frame_type)
            delivers = [Deliver(items=[(entry[0], entry[1], "") for entry in job.deliveries
                                       if isinstance(entry, (list, tuple)) and len(entry) == 3])]
            packed = [messages.pack(delivers[0])]
        else:
            self.stats.signed += 1
            metrics.job_signed(time.perf_counter() - started)
        for deliver in delivers:
            self.stats.delivered += len(deliver.items)
        self._deliver(packed)
        # The router shares signatures by what they really cost here (router/fairshare.py).
        sign_us = int((time.perf_counter() - started) * 1_000_000)
        self._results_waiting.append(messages.pack(Signed(1, sign_us)))

    def _deliver(self, packed: list[bytes]) -> None:
        """Signed frames to the gateway, at once (a remote verifier sends them with its report)."""
        self._send(self.to_gateway, packed)

    def _send(self, sock: zmq.Socket[bytes], parts: list[bytes]) -> None:
        """Send `parts` as one message (the receiver reads each part as a message),
        blocking while the queue is full, but never past a stop request."""
        try:
            sock.send_multipart(parts, zmq.NOBLOCK)
            return
        except zmq.Again:
            self.stats.blocked_sends += 1
        while not self.should_stop():
            if sock.poll(STOP_POLL_MS, zmq.POLLOUT):
                try:
                    sock.send_multipart(parts, zmq.NOBLOCK)
                    return
                except zmq.Again:
                    continue
        raise _Stopping


V = TypeVar("V", bound=Verifier)


@contextmanager
def serving(make: Callable[[Callable[[], bool]], V]) -> Iterator[V]:
    """The verifier `make(should_stop)` builds, for the caller to serve. SIGTERM and
    SIGINT (supervisord's stop, Ctrl-C) make `should_stop()` true, so the job in hand
    is finished, never cut. On leaving, the verifier is closed and the signal handlers
    from before are back."""
    stop_requested = False

    def request_stop(signum: int, frame: StackFrame | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        verifier = make(lambda: stop_requested)
        try:
            yield verifier
        finally:
            verifier.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(config: NodeConfig) -> None:
    """Run one verifier until SIGTERM or SIGINT (supervisord's stop); return normally then."""
    setup_logging("verifier")
    identity = load_identity(config.data_dir)
    with serving(lambda should_stop: Verifier(config, identity.private_key, should_stop)) as verifier:
        started = time.monotonic()
        log.info("verifier ready, server %s, key %s", identity.server_id,
                 fingerprint(identity.private_key.public_key()))
        verifier.serve()
    log.info("verifier stopped after %.1f s: %s", time.monotonic() - started, verifier.stats)


def main(argv: list[str] | None = None) -> int:
    """`python -m socp.verifier DATA_DIR`: run one verifier of the node in DATA_DIR."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m socp.verifier DATA_DIR", file=sys.stderr)
        return 2
    run(NodeConfig.load(Path(args[0])))
    return 0
