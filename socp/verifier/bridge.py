"""The node's door for verifiers on other hosts (issue #18): one actor, run by
supervisord when `socp up --verifier-listen tcp://HOST:PORT` is given.

Towards the node, each remote is one more verifier that signs:

    PULL  <- sign_jobs (router)         one pipe per remote, read while it has room
    PUSH  -> router_inbox, gateway_inbox  the remotes' results; and to the router, how
                                        many remotes there are (its window of sign
                                        jobs grows with them: router/fairshare.py)

Towards the remotes it binds a ROUTER on the TCP address, as a CURVE server: every
connection is encrypted, and ZeroMQ's ZAP handshake lets in only the public keys
listed in the data dir's `allowed_verifiers` (curve.py; read again when it changes).
Checks stay with the node's own verifiers (remote_pool.py says why).

A remote's pipe opens when it says HELLO and closes when it is presumed gone: the
jobs it held, and those still in its pipe, are lost here and re-sent by the router
(router/inflight.py): a re-send, never a lost message.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType as StackFrame

import zmq
from zmq.auth.thread import ThreadAuthenticator

from socp.config import NodeConfig
from socp.identity import load_identity
from socp.ipc.messages import Signed, pack
from socp.protocol.crypto import private_key_der
from socp.runtime import setup_logging

from . import remote_pool as wire
from .curve import ALLOWED_FILE, AllowedKeys, CurveKeyPair, load_or_create_keypair
from .remote_pool import RemotePool

log = logging.getLogger("socp.verifier")

JOB_PIPE_HWM = 4         # jobs parked in the bridge's pipe from the gateway or router: few
RESULT_QUEUE_HWM = 1000
POLL_MS = 100
STOP_POLL_MS = 100


class _AllowedVerifiers:
    """ZAP credentials provider (called in the authenticator's thread)."""

    def __init__(self, allowed: AllowedKeys) -> None:
        self.allowed = allowed
        self.refused: list[str] = []          # keys refused since the bridge last looked

    def callback(self, domain: str, key: bytes) -> bool:
        text = key.decode("ascii", "replace")
        if self.allowed.allows(text):
            return True
        self.refused.append(text)
        return False


class Bridge:
    def __init__(self, config: NodeConfig, listen: str, keys: CurveKeyPair, key_der: bytes,
                 should_stop: Callable[[], bool], context: zmq.Context[zmq.Socket[bytes]] | None = None) -> None:
        self.config = config
        self.should_stop = should_stop
        self.pool = RemotePool()
        self._context = context or zmq.Context.instance()
        self._key_der = key_der
        self.allowed = AllowedKeys(Path(config.data_dir) / ALLOWED_FILE)
        self._provider = _AllowedVerifiers(self.allowed)
        self.auth = ThreadAuthenticator(self._context)
        self.auth.start()
        self.auth.configure_curve_callback("*", credentials_provider=self._provider)
        self.remotes = self._context.socket(zmq.ROUTER)
        self.remotes.setsockopt(zmq.LINGER, 0)
        self.remotes.curve_server = True
        self.remotes.curve_secretkey = keys.secret.encode()
        self.remotes.curve_publickey = keys.public.encode()
        self.remotes.setsockopt(zmq.HEARTBEAT_IVL, wire.PING_INTERVAL_MS)
        self.remotes.setsockopt(zmq.HEARTBEAT_TIMEOUT, wire.SILENCE_MS)
        self.remotes.setsockopt(zmq.ROUTER_MANDATORY, 1)    # a send to a gone remote fails, not vanishes
        self.remotes.bind(listen)
        endpoints = config.endpoints
        self.to_router = self._socket(zmq.PUSH, endpoints.router_inbox)
        self.to_gateway = self._socket(zmq.PUSH, endpoints.gateway_inbox)
        self.pipes: dict[bytes, zmq.Socket[bytes]] = {}       # remote -> its PULL from the router's sign queue
        self._polling: tuple[tuple[bytes, ...], zmq.Poller] | None = None
        self.problem_told = ""
        self.pool_told = -1
        self.jobs_forwarded = 0

    def _socket(self, kind: int, endpoint: str, hwm: int = RESULT_QUEUE_HWM) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = self._context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM if kind == zmq.PUSH else zmq.RCVHWM, hwm)
        sock.connect(endpoint)
        return sock

    def _open_pipe(self, identity: bytes) -> None:
        self._close_pipe(identity)
        self._polling = None
        self.pipes[identity] = self._socket(zmq.PULL, self.config.endpoints.sign_jobs, JOB_PIPE_HWM)

    def _close_pipe(self, identity: bytes) -> None:
        pipe = self.pipes.pop(identity, None)
        self._polling = None
        if pipe is not None:
            pipe.close(linger=0)

    def close(self) -> None:
        for identity in list(self.pipes):
            self._close_pipe(identity)
        for sock in (self.remotes, self.to_router, self.to_gateway):
            sock.close(linger=0)
        self.auth.stop()

    def serve(self) -> None:
        last_ping = 0
        while not self.should_stop():
            now = _ms()
            self._tell_problems()
            for remote in self.pool.expire(now):
                self._close_pipe(remote.identity)
                log.warning("remote verifier %s gone (silent %d ms) after %d jobs; its %d in flight are sent again",
                            remote.key, self.pool.silence_ms, remote.taken, remote.held)
                if remote.held:
                    # Their places in the router's window are free now (the router re-sends
                    # the jobs themselves, router/inflight.py): the node does not stall.
                    self._send(self.to_router, [pack(Signed(remote.held, 0, remote_verifiers=len(self.pool)))])
            if now - last_ping >= wire.PING_INTERVAL_MS or len(self.pool) != self.pool_told:
                for identity in list(self.pool.remotes):
                    self._to_remote(identity, [wire.PING])
                last_ping = now
                self._tell_router_pool_size()
            ready = dict(self._poller().poll(POLL_MS))
            if self.remotes in ready:
                self._from_remotes()
            self._hand_out_jobs()

    def _poller(self) -> zmq.Poller:
        """The remotes' socket, and the pipes of the remotes with room; made again
        only when that set changes (most turns of the loop it does not)."""
        wanted = tuple(identity for identity in self.pipes if self.pool.room(identity))
        if self._polling is None or self._polling[0] != wanted:
            poller = zmq.Poller()
            poller.register(self.remotes, zmq.POLLIN)
            for identity in wanted:
                poller.register(self.pipes[identity], zmq.POLLIN)
            self._polling = (wanted, poller)
        return self._polling[1]

    def _from_remotes(self) -> None:
        while True:
            try:
                frames = self.remotes.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity, *parts = [frame.bytes for frame in frames]
            now = _ms()
            kind = parts[0] if parts else b""
            if kind == wire.HELLO:
                # ZAP stamps every message with the key CURVE authenticated.
                self._hello(identity, parts, now, str(frames[-1].get("User-Id") or "?"))
            elif kind == wire.DONE:
                try:
                    jobs, results = wire.read_done(parts)
                except wire.BadMessage as exc:
                    log.error("remote verifier sent a bad report: %s", exc)
                    continue
                self.pool.done(identity, jobs, now)
                for destination, group in wire.group_by_destination(results):
                    self._send(self.to_router if destination == wire.TO_ROUTER else self.to_gateway, group)
            elif kind == wire.PING:
                self.pool.heard(identity, now)

    def _hello(self, identity: bytes, parts: list[bytes], now: int, key: str) -> None:
        if len(parts) != 2 or parts[1] != wire.VERSION:
            log.error("a remote verifier speaks %r, we speak %r: not let in", parts[1:2], wire.VERSION)
            return
        if not self.pool.hello(identity, key, now):
            log.error("remote verifier %s not let in: %d remotes already", key, len(self.pool))
            return
        log.info("remote verifier %s joined (%d in the pool)", key, len(self.pool))
        self._to_remote(identity, wire.welcome_message(self._key_der))
        self._open_pipe(identity)

    def _tell_router_pool_size(self) -> None:
        """The router sizes its window of sign jobs by the pool (router/fairshare.py);
        said again every ping interval, so a restarted router learns it too."""
        self.pool_told = len(self.pool)
        self._send(self.to_router, [pack(Signed(0, 0, remote_verifiers=self.pool_told))])

    def _hand_out_jobs(self) -> None:
        """Each remote takes from its own pipe while it has room."""
        for identity, pipe in self.pipes.items():
            while self.pool.room(identity):
                try:
                    data = pipe.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.pool.took(identity)
                self.jobs_forwarded += 1
                self._to_remote(identity, [wire.JOB, data])

    def _to_remote(self, identity: bytes, parts: list[bytes]) -> None:
        try:
            self.remotes.send_multipart([identity, *parts], zmq.NOBLOCK)
        except (zmq.Again, zmq.ZMQError):
            # Gone or full: what it would have held is sent again by the node.
            pass

    def _send(self, sock: zmq.Socket[bytes], parts: list[bytes]) -> None:
        """Results to the router or gateway; while its queue is full the bridge waits
        (backpressure, as a local verifier), never past a stop request."""
        while not self.should_stop():
            try:
                sock.send_multipart(parts, zmq.NOBLOCK)
                return
            except zmq.Again:
                sock.poll(STOP_POLL_MS, zmq.POLLOUT)

    def _tell_problems(self) -> None:
        self.allowed.keys()
        problem = self.allowed.problem
        if problem and problem != self.problem_told:
            log.error("%s", problem)
        self.problem_told = problem
        refused, self._provider.refused = self._provider.refused, []
        for key in dict.fromkeys(refused):
            log.warning("refused a verifier whose key %s is not in %s", key, self.allowed.path)


def _ms() -> int:
    return int(time.monotonic() * 1000)


def run(config: NodeConfig) -> None:
    """Run the bridge until SIGTERM or SIGINT (supervisord's stop)."""
    setup_logging("verifier-bridge")
    if not config.verifier_listen:
        log.error("no --verifier-listen address: nothing to do")
        return
    identity = load_identity(config.data_dir)
    keys, _ = load_or_create_keypair(Path(config.data_dir))
    stop_requested = False

    def request_stop(signum: int, frame: StackFrame | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    try:
        bridge = Bridge(config, config.verifier_listen, keys, private_key_der(identity.private_key),
                        lambda: stop_requested)
    except zmq.ZMQError as exc:
        log.error("verifier bridge cannot listen on %s: %s", config.verifier_listen, exc)
        raise SystemExit(2) from None
    log.info("verifier bridge listening on %s, key %s", config.verifier_listen, keys.public)
    try:
        bridge.serve()
    finally:
        bridge.close()
    pool = bridge.pool
    log.info("verifier bridge stopped: %d remotes joined, %d gone, %d jobs forwarded, %d lost with remotes "
             "(sent again)", pool.joined, pool.gone, bridge.jobs_forwarded, pool.jobs_lost_with_remotes)
