"""`socp verifier --node tcp://HOST:PORT --data-dir D`: a verifier on another host
(issue #18). It does what a local verifier does (`worker.Verifier`: checks and
signatures), fed over one ZeroMQ TCP connection to the node's bridge (`bridge.py`),
authenticated and encrypted with CURVE (`curve.py`); the wire is in `remote_pool.py`.

It says HELLO; a node that lists its public key answers WELCOME with the node's
signing key, which it keeps in memory only; then it takes jobs and answers each with
DONE and the job's results. A node that says nothing for SILENCE_MS is presumed gone:
the verifier drops what it held (the node sends those jobs again) and says HELLO
again until the node answers. A node that never answers (our key is not in its
`allowed_verifiers`, or the keys do not match) is reported once, and retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from socp.protocol.crypto import fingerprint, load_private_key_der
from socp.runtime import setup_logging

from . import remote_pool as wire
from .curve import NODE_PUBLIC_FILE, CurveKeyPair, check_key, load_or_create_keypair
from .worker import Verifier, serving

log = logging.getLogger("socp.verifier")

POLL_MS = 100
HELLO_AGAIN_MS = 2_000          # no WELCOME yet: say HELLO again this often
WELCOME_PATIENCE_MS = 5_000     # then tell the operator why nothing happens (once)


class RemoteVerifier(Verifier):
    """A Verifier whose jobs come from, and whose results go to, one DEALER socket."""

    def __init__(self, node_url: str, node_key: str, own: CurveKeyPair, should_stop: Callable[[], bool],
                 context: zmq.Context[zmq.Socket[bytes]] | None = None) -> None:
        self.node_url = node_url
        self._init_work(None, should_stop)  # type: ignore[arg-type]   # the node's key comes with WELCOME
        self._context = context or zmq.Context.instance()
        self._node_key, self._own = node_key, own
        self._delivered: list[bytes] = []
        self.sock = self._connect()
        self.welcomed = False
        self.jobs_taken = 0

    def _connect(self) -> zmq.Socket[bytes]:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_serverkey = self._node_key.encode()
        sock.curve_publickey = self._own.public.encode()
        sock.curve_secretkey = self._own.secret.encode()
        # Dead TCP peers are noticed by ZeroMQ's own heartbeats as well as by silence.
        sock.setsockopt(zmq.HEARTBEAT_IVL, wire.PING_INTERVAL_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, wire.SILENCE_MS)
        sock.setsockopt(zmq.RECONNECT_IVL, 200)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2_000)
        sock.connect(self.node_url)
        return sock

    def close(self) -> None:
        self.sock.close(linger=0)

    def _deliver(self, packed: list[bytes]) -> None:
        self._delivered += packed

    def serve(self) -> None:
        last_heard = last_hello = last_ping = 0.0
        started = _ms()
        told_no_welcome = False
        while not self.should_stop():
            now = _ms()
            if not self.welcomed and now - last_hello >= HELLO_AGAIN_MS:
                self._send_now([wire.HELLO, wire.VERSION])
                last_hello = now
                if not told_no_welcome and now - started >= WELCOME_PATIENCE_MS:
                    told_no_welcome = True
                    log.warning("no answer from the node at %s yet: is this verifier's public key %s in its "
                                "allowed_verifiers, and is the node's key right?", self.node_url, self._own.public)
            if self.welcomed and now - last_heard > wire.SILENCE_MS:
                log.warning("the node at %s fell silent: reconnecting (it sends again what we held)", self.node_url)
                self._reconnect()
                continue
            if self.welcomed and now - last_ping >= wire.PING_INTERVAL_MS:
                self._send_now([wire.PING])
                last_ping = now
            if not self.sock.poll(POLL_MS, zmq.POLLIN):
                continue
            while not self.should_stop():
                try:
                    parts = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                last_heard = _ms()
                self._receive(parts)

    def _receive(self, parts: list[bytes]) -> None:
        kind = parts[0] if parts else b""
        if kind == wire.WELCOME:
            try:
                key_der, _credit = wire.read_welcome(parts)
                self.private_key = load_private_key_der(key_der)
            except (wire.BadMessage, ValueError) as exc:
                log.error("the node's WELCOME is not one we read: %s", exc)
                return
            if not self.welcomed:
                log.info("remote verifier joined the node at %s, signing as %s", self.node_url,
                         fingerprint(self.private_key.public_key()))
            self.welcomed = True
        elif kind == wire.JOB and len(parts) == 2 and self.welcomed:
            if not self.jobs_taken:
                log.info("first job from the node")
            self.jobs_taken += 1
            self.handle(parts[1])
            self._report_failed_checks()
            results = [(wire.TO_GATEWAY, data) for data in self._delivered]
            results += [(wire.TO_ROUTER, data) for data in self._results_waiting]
            self._delivered, self._results_waiting = [], []
            self._send_now(wire.done_message(1, results))
        elif kind != wire.PING:
            self.stats.bad_messages += 1

    def _send_now(self, parts: list[bytes]) -> None:
        """The DEALER queues while the node is away (up to its HWM); a full queue means
        the node is gone, and what would be sent is lost like the jobs it answers."""
        try:
            self.sock.send_multipart(parts, zmq.NOBLOCK)
        except zmq.Again:
            self.stats.blocked_sends += 1

    def _reconnect(self) -> None:
        self.sock.close(linger=0)
        self.sock = self._connect()
        self.welcomed = False


def _ms() -> float:
    return time.monotonic() * 1000


def node_key_for(data_dir: Path, given: str | None) -> str:
    """The node's CURVE public key: `given` (then kept in the data dir for next time),
    or the one kept there before. ValueError with what to do if neither."""
    path = Path(data_dir) / NODE_PUBLIC_FILE
    if given:
        key = check_key(given, "--node-key")
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        path.write_text(key + "\n")
        return key
    if path.exists():
        return check_key(path.read_text(), str(path))
    raise ValueError(f"the node's verifier key is needed once: --node-key KEY (`socp up --verifier-listen` "
                     f"prints it; it is kept in {path} after)")


def run(node_url: str, data_dir: Path, node_key: str, on_ready: Callable[[CurveKeyPair], None] | None = None) -> None:
    """Run one remote verifier until SIGTERM or SIGINT."""
    setup_logging("verifier")
    own, _ = load_or_create_keypair(data_dir)
    with serving(lambda should_stop: RemoteVerifier(node_url, node_key, own, should_stop)) as verifier:
        started = time.monotonic()
        log.info("remote verifier with key %s dialling %s", own.public, node_url)
        if on_ready is not None:
            on_ready(own)
        verifier.serve()
    log.info("remote verifier stopped after %.1f s, %d jobs: %s", time.monotonic() - started,
             verifier.jobs_taken, verifier.stats)
