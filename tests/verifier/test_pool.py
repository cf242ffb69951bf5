"""A pool of two real verifier processes over real ZeroMQ ipc sockets.

The test plays the gateway and the router: it binds verify_jobs and sign_jobs
(PUSH) and router_inbox and gateway_inbox (PULL), as they do, and the verifiers
connect to them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from socp.config import NodeConfig
from socp.identity import IDENTITY_FILE, KEY_FILE
from socp.ipc import messages
from socp.ipc.endpoints import ensure_runtime_dir
from socp.ipc.messages import ROLE_SERVER, ROLE_USER, Deliver, Rejected, SignJob, Verified, VerifyJob
from socp.ipc.reorder import ReorderBuffer
from socp.protocol import envelope, frames, keystore
from socp.protocol.crypto import encode_public_key
from socp.protocol.ids import new_id
from socp.protocol.signing import sign_envelope, verify_transport

POOL_SIZE = 2
TS = 1_700_000_000_000
WAIT_S = 30.0


@dataclass
class Pool:
    """The verifier processes and the sockets of the fake gateway and router."""

    config: NodeConfig
    procs: list[subprocess.Popen[bytes]]
    stderr_paths: list[Path]
    verify_jobs: zmq.Socket
    sign_jobs: zmq.Socket
    router_inbox: zmq.Socket
    gateway_inbox: zmq.Socket

    def stderr(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in self.stderr_paths)


def _bind(context: zmq.Context, kind: int, endpoint: str) -> zmq.Socket:
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    return sock


def _watch_handshakes(sockets: list[zmq.Socket]) -> list[zmq.Socket]:
    """Monitors attached before the verifiers start, so no handshake is missed."""
    return [sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED) for sock in sockets]


def _wait_for_peers(sockets: list[zmq.Socket], monitors: list[zmq.Socket], count: int, deadline: float) -> None:
    """Block until every socket has completed `count` ZMTP handshakes."""
    try:
        for monitor in monitors:
            seen = 0
            while seen < count:
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0 or not monitor.poll(remaining_ms):
                    raise TimeoutError(f"only {seen} of {count} verifiers connected")
                if recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    seen += 1
    finally:
        for sock, monitor in zip(sockets, monitors, strict=False):
            sock.disable_monitor()
            monitor.close(linger=0)


def _receive(sock: zmq.Socket, count: int, timeout: float = WAIT_S,
             signed: list[messages.Signed] | None = None) -> list[messages.Message]:
    """Receive exactly `count` actor messages, or fail after `timeout` seconds. The
    router's inbox also gets a `Signed` report per signature: kept in `signed`, not counted."""
    deadline = time.monotonic() + timeout
    received: list[messages.Message] = []
    while len(received) < count:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0 or not sock.poll(remaining_ms):
            raise TimeoutError(f"received {len(received)} of {count} messages")
        message = messages.unpack(sock.recv())
        if isinstance(message, messages.Signed):
            if signed is not None:
                signed.append(message)
            continue
        received.append(message)
    return received


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_pool(data_dir: Path, node_key) -> Iterator[Pool]:
    """POOL_SIZE verifier processes of a node in `data_dir`, connected and ready."""
    keystore.write_private_key(data_dir / KEY_FILE, node_key, None)
    (data_dir / IDENTITY_FILE).write_text(json.dumps({"server_id": new_id()}) + "\n")
    config = NodeConfig(data_dir=data_dir, verifiers=POOL_SIZE)
    config.save()
    ensure_runtime_dir(config.run_dir)
    endpoints = config.endpoints
    context = zmq.Context()
    verify_jobs = _bind(context, zmq.PUSH, endpoints.verify_jobs)
    sign_jobs = _bind(context, zmq.PUSH, endpoints.sign_jobs)
    router_inbox = _bind(context, zmq.PULL, endpoints.router_inbox)
    gateway_inbox = _bind(context, zmq.PULL, endpoints.gateway_inbox)
    monitors = _watch_handshakes([verify_jobs, sign_jobs])
    procs, stderr_paths = [], []
    for index in range(POOL_SIZE):
        stderr_path = data_dir / f"verifier-{index}.stderr"
        with stderr_path.open("wb") as stderr:
            procs.append(subprocess.Popen([sys.executable, "-m", "socp.verifier", str(data_dir)],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr))
        stderr_paths.append(stderr_path)
    pool = Pool(config, procs, stderr_paths, verify_jobs, sign_jobs, router_inbox, gateway_inbox)
    try:
        _wait_for_peers([verify_jobs, sign_jobs], monitors, POOL_SIZE, time.monotonic() + WAIT_S)
        yield pool
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=WAIT_S)
        context.destroy(linger=0)
        if not config.run_dir.is_relative_to(data_dir):
            shutil.rmtree(config.run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, keys) -> Iterator[Pool]:
    with running_pool(tmp_path_factory.mktemp("verifier-node"), keys[0]) as started:
        yield started


def test_sign_jobs_are_shared_by_the_pool_and_come_back_once_each(pool: Pool, keys) -> None:
    conn, jobs = 41, 200
    node_key = keys[0].public_key()
    sender = new_id()
    cpu_before = [_cpu_seconds(proc.pid) for proc in pool.procs]
    for out_seq in range(jobs):
        payload = {"user_id": new_id(), "server_id": sender, "meta": {"n": out_seq}}
        job = SignJob("USER_ADVERTISE", sender, TS + out_seq, payload, [(conn, out_seq, "*")])
        pool.sign_jobs.send(messages.pack(job))
    delivers = _receive(pool.gateway_inbox, jobs)
    cpu_used = [_cpu_seconds(proc.pid) - before for proc, before in zip(pool.procs, cpu_before, strict=False)]

    items = [item for deliver in delivers for item in deliver.items]
    assert all(isinstance(deliver, Deliver) for deliver in delivers)
    assert sorted(seq for _, seq, _ in items) == list(range(jobs))
    for item_conn, out_seq, text in items:
        frame = envelope.parse(text)
        assert (item_conn, frame.ts, frame.payload["meta"]["n"]) == (conn, TS + out_seq, out_seq)
        verify_transport(node_key, frame)

    # Two processes signing in parallel hand results back out of order; the
    # gateway's ReorderBuffer puts them back.
    reorder: ReorderBuffer[str] = ReorderBuffer()
    released = [text for _, out_seq, text in items for text in reorder.push(out_seq, text)]
    assert [envelope.parse(text).payload["meta"]["n"] for text in released] == list(range(jobs))

    # Each signature is reported to the router with what it cost (router/fairshare.py).
    reports: list[messages.Signed] = []
    with pytest.raises(TimeoutError):
        _receive(pool.router_inbox, 1, timeout=1.0, signed=reports)
    assert sum(report.count for report in reports) == jobs
    assert all(report.sign_us > 0 for report in reports)

    # Each signature costs milliseconds of CPU: a process that signed its share
    # shows it in its own CPU time.
    assert all(used >= 0.25 * sum(cpu_used) for used in cpu_used), (cpu_used, pool.stderr())


def test_one_busy_connections_checks_are_shared_by_the_pool_and_come_back_in_order(tmp_path, keys) -> None:
    # The verify-side twin of the test above, on a pool of its own: each process's
    # counters are read from the line it logs when it stops.
    conn, jobs = 44, 200
    server_key = encode_public_key(keys[0])
    link_from, link_to = new_id(), new_id()
    texts = [sign_envelope(keys[0], frames.heartbeat(link_from, link_to, TS + seq)).to_wire() for seq in range(jobs)]
    with running_pool(tmp_path, keys[0]) as own_pool:
        for seq, text in enumerate(texts):
            own_pool.verify_jobs.send(messages.pack(VerifyJob(conn, seq, text, ROLE_SERVER, server_key)))
        answers = _receive(own_pool.router_inbox, jobs)
        for proc in own_pool.procs:
            proc.send_signal(signal.SIGTERM)
        assert [proc.wait(timeout=5.0) for proc in own_pool.procs] == [0] * POOL_SIZE, own_pool.stderr()
        verified_by_each = [int(re.search(r"VerifierStats\(verified=(\d+)", path.read_text()).group(1))
                            for path in own_pool.stderr_paths]

    assert all(isinstance(answer, Verified) and answer.conn == conn for answer in answers), answers
    assert sum(verified_by_each) == jobs
    assert all(count >= 0.25 * jobs for count in verified_by_each), verified_by_each

    reorder: ReorderBuffer[Verified] = ReorderBuffer()
    released = [ready for answer in answers for ready in reorder.push(answer.seq, answer)]
    assert [answer.seq for answer in released] == list(range(jobs))
    assert [answer.frame for answer in released] == [envelope.parse(text).to_dict() for text in texts]


def test_verify_jobs_get_one_answer_each_for_the_right_seq(pool: Pool, keys) -> None:
    conn = 42
    server_key = encode_public_key(keys[0])
    user_hello = frames.user_hello(new_id(), None, TS, encode_public_key(keys[1])).to_wire()
    heartbeat = frames.heartbeat(new_id(), new_id(), TS)
    cases = [
        (ROLE_USER, "", user_hello, None),
        (ROLE_USER, "", "{not json", "MALFORMED"),
        (ROLE_SERVER, server_key, sign_envelope(keys[0], heartbeat).to_wire(), None),
        (ROLE_SERVER, server_key, sign_envelope(keys[1], heartbeat).to_wire(), "INVALID_SIG"),
        (ROLE_SERVER, server_key, heartbeat.to_wire(), "INVALID_SIG"),
        (ROLE_USER, "", '{"type":"NOPE","from":"x","to":"y","ts":1,"payload":{}}', "UNKNOWN_TYPE"),
    ] * 5
    # An unreadable actor message is dropped without taking the process down.
    pool.verify_jobs.send(b"not msgpack")
    for seq, (role, key, text, _) in enumerate(cases):
        pool.verify_jobs.send(messages.pack(VerifyJob(conn, seq, text, role, key)))
    answers = {answer.seq: answer for answer in _receive(pool.router_inbox, len(cases))}

    assert sorted(answers) == list(range(len(cases)))
    for seq, (_, _, text, code) in enumerate(cases):
        answer = answers[seq]
        assert answer.conn == conn
        if code is None:
            assert isinstance(answer, Verified) and answer.frame == envelope.parse(text).to_dict()
        else:
            assert isinstance(answer, Rejected) and answer.code == code, answer
    assert all(proc.poll() is None for proc in pool.procs), pool.stderr()


def test_checks_do_not_wait_behind_a_queue_of_signatures(pool: Pool, keys) -> None:
    # A check costs ~0.1 ms and a signature 1.3 to 6 ms: frames waiting for their check
    # are taken before the next signature, not one check per signature.
    conn, signatures, checks = 43, 100 * POOL_SIZE, 20
    sender = new_id()
    sign_jobs = [messages.pack(SignJob("USER_ADVERTISE", sender, TS, {"user_id": new_id(), "server_id": sender,
                                                                      "meta": {}}, [(conn, out_seq, "*")]))
                 for out_seq in range(signatures)]
    hello = frames.user_hello(new_id(), None, TS, encode_public_key(keys[1])).to_wire()
    verify_jobs = [messages.pack(VerifyJob(conn, seq, hello, ROLE_USER, "")) for seq in range(checks)]
    for job in sign_jobs:
        pool.sign_jobs.send(job)
    # Signatures finished while those were being sent could not delay a check that did
    # not exist yet: count them apart. A long queue of them is still waiting.
    signed_before = _drain(pool.gateway_inbox)
    assert signed_before < signatures - 10 * POOL_SIZE, "the signatures were done before any check was sent"
    for job in verify_jobs:
        pool.verify_jobs.send(job)
    signed_meanwhile = _signed_until_answered(pool, checks)
    # One signature in progress per verifier, and maybe the next one started before the
    # checks arrived; alternating one check with one signature would have made ~20.
    assert signed_meanwhile <= 3 * POOL_SIZE, signed_meanwhile
    _receive(pool.gateway_inbox, signatures - signed_before - signed_meanwhile)


def _drain(sock: zmq.Socket) -> int:
    """Take every message waiting on `sock` now; return how many there were, bar Signed reports."""
    count = 0
    while sock.poll(0):
        # A Signed report (one per signature, to the router) is no answer to a check.
        count += not isinstance(messages.unpack(sock.recv()), messages.Signed)
    return count


def _signed_until_answered(pool: Pool, checks: int, timeout: float = WAIT_S) -> int:
    """Wait for `checks` check results; return how many signed frames came meanwhile
    (counted as they arrive, so the signing that goes on after the last answer is not)."""
    poller = zmq.Poller()
    poller.register(pool.router_inbox, zmq.POLLIN)
    poller.register(pool.gateway_inbox, zmq.POLLIN)
    deadline = time.monotonic() + timeout
    answered = signed = 0
    while answered < checks:
        assert time.monotonic() < deadline, f"{answered} of {checks} checks answered"
        ready = dict(poller.poll(100))
        if pool.router_inbox in ready:
            answered += _drain(pool.router_inbox)
        if answered < checks and pool.gateway_inbox in ready:
            signed += _drain(pool.gateway_inbox)
    return signed


def test_sigterm_stops_every_verifier_even_when_its_outputs_are_full(pool: Pool) -> None:
    # Stop reading the router inbox and keep sending cheap jobs until every queue on
    # the way is full, so the verifiers sit blocked on a send.
    job = messages.pack(VerifyJob(43, 0, "{not json", ROLE_USER, ""))
    deadline = time.monotonic() + 10.0
    refused_since = None
    while time.monotonic() < deadline:
        try:
            pool.verify_jobs.send(job, zmq.NOBLOCK)
            refused_since = None
        except zmq.Again:
            refused_since = refused_since or time.monotonic()
            if time.monotonic() - refused_since > 0.5:
                break
            time.sleep(0.01)
    assert refused_since is not None, "the verifiers never pushed back"

    for proc in pool.procs:
        proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    codes = [proc.wait(timeout=5.0) for proc in pool.procs]
    assert codes == [0] * POOL_SIZE, pool.stderr()
    assert time.monotonic() - started < 3.0
    assert "stopped after" in pool.stderr()
