#!/usr/bin/env python3
"""Signatures and verifications per second of a verifier pool of 1, then 2 processes.

Plays the gateway and the router over real ipc sockets in a temporary node
directory (with a throwaway RSA-4096 key, deleted afterwards), starts the verifiers
with `python -m socp.verifier`, and times how long the pool takes to answer a
burst of jobs.

    python scripts/verifier_throughput.py [--jobs 400] [--pools 1,2]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from socp.config import NodeConfig
from socp.identity import IDENTITY_FILE, KEY_FILE
from socp.ipc import messages
from socp.ipc.endpoints import ensure_runtime_dir
from socp.ipc.messages import ROLE_SERVER, SignJob, VerifyJob
from socp.protocol import crypto, frames, keystore
from socp.protocol.ids import new_id
from socp.protocol.signing import sign_envelope

TS = 1_700_000_000_000
TIMEOUT_S = 60.0


def bind(context: zmq.Context, kind: int, endpoint: str) -> zmq.Socket:
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    return sock


def watch_handshakes(sockets: list[zmq.Socket]) -> list[zmq.Socket]:
    """Monitors to attach before the verifiers start, so no handshake is missed."""
    return [sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED) for sock in sockets]


def wait_for_peers(sockets: list[zmq.Socket], monitors: list[zmq.Socket], count: int) -> None:
    """Block until each socket has `count` verifiers connected."""
    try:
        for monitor in monitors:
            for _ in range(count):
                if not monitor.poll(int(TIMEOUT_S * 1000)):
                    raise TimeoutError("verifiers did not connect")
                recv_monitor_message(monitor)
    finally:
        for sock, monitor in zip(sockets, monitors, strict=False):
            sock.disable_monitor()
            monitor.close(linger=0)


def pump(jobs_out: zmq.Socket, jobs: list[bytes], answers_in: zmq.Socket) -> float:
    """Send every job and receive one answer per job, interleaved so that no queue
    fills up and deadlocks; return the seconds it took."""
    poller = zmq.Poller()
    poller.register(answers_in, zmq.POLLIN)
    poller.register(jobs_out, zmq.POLLOUT)
    started = time.perf_counter()
    deadline = time.monotonic() + TIMEOUT_S
    sent = received = 0
    while received < len(jobs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pool answered {received} of {len(jobs)} jobs")
        ready = dict(poller.poll(1000))
        # Move whole batches per poll: this loop must not be what limits the pool.
        while answers_in in ready and received < len(jobs):
            try:
                answers_in.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            received += 1
        while jobs_out in ready and sent < len(jobs):
            try:
                jobs_out.send(jobs[sent], zmq.NOBLOCK)
            except zmq.Again:
                break
            sent += 1
            if sent == len(jobs):
                poller.unregister(jobs_out)
    return time.perf_counter() - started


def measure(data_dir: Path, key: crypto.PrivateKey, processes: int, jobs: int) -> tuple[float, float]:
    """Return (signatures/s, verifications/s) of a pool of `processes` verifiers."""
    endpoints = NodeConfig.load(data_dir).endpoints
    context = zmq.Context()
    verify_jobs = bind(context, zmq.PUSH, endpoints.verify_jobs)
    sign_jobs = bind(context, zmq.PUSH, endpoints.sign_jobs)
    router_inbox = bind(context, zmq.PULL, endpoints.router_inbox)
    gateway_inbox = bind(context, zmq.PULL, endpoints.gateway_inbox)
    monitors = watch_handshakes([sign_jobs, verify_jobs])
    procs = [subprocess.Popen([sys.executable, "-m", "socp.verifier", str(data_dir)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(processes)]
    try:
        wait_for_peers([sign_jobs, verify_jobs], monitors, processes)
        sender = new_id()
        sign = [messages.pack(SignJob("HEARTBEAT", sender, TS, {"n": n}, [(1, n, new_id())])) for n in range(jobs)]
        pinned = crypto.encode_public_key(key)
        signed = sign_envelope(key, frames.heartbeat(sender, new_id(), TS)).to_wire()
        verify = [messages.pack(VerifyJob(2, n, signed, ROLE_SERVER, pinned)) for n in range(jobs * 10)]

        pump(sign_jobs, sign[: processes * 4], gateway_inbox)  # warm up: imports, caches, connections
        sign_rate = len(sign) / pump(sign_jobs, sign, gateway_inbox)
        verify_rate = len(verify) / pump(verify_jobs, verify, router_inbox)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=10)
        context.destroy(linger=0)
    return sign_rate, verify_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400, help="SignJobs per run (10x as many VerifyJobs)")
    parser.add_argument("--pools", default="1,2", help="pool sizes to measure, comma-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="socp-vt-") as tmp:
        data_dir = Path(tmp)
        key = crypto.generate_private_key()
        keystore.write_private_key(data_dir / KEY_FILE, key, None)
        (data_dir / IDENTITY_FILE).write_text(json.dumps({"server_id": new_id()}) + "\n")
        config = NodeConfig(data_dir=data_dir)
        config.save()
        ensure_runtime_dir(config.run_dir)
        print(f"{'processes':>9}  {'signatures/s':>12}  {'verifications/s':>15}", flush=True)
        for processes in (int(p) for p in args.pools.split(",")):
            sign_rate, verify_rate = measure(data_dir, key, processes, args.jobs)
            print(f"{processes:>9}  {sign_rate:>12.0f}  {verify_rate:>15.0f}", flush=True)


if __name__ == "__main__":
    main()
