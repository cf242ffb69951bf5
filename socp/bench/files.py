"""`socp bench files`: file throughput in MB/s with FILE_START / FILE_CHUNK /
FILE_END (SOCP §7.4), one 446-byte plaintext per OAEP chunk.

User 2i sends one file to user 2i+1 (split across servers with two URLs). Chunks
need no content signature, only encryption (~0.1 ms each), so they are made in
this process before the timed phase. A receiver recognises a chunk by
file_id:index and FILE_START / FILE_END by file_id:start / file_id:end.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from typing import Any

from socp.protocol import crypto, frames, signing
from socp.protocol.acks import msg_ref
from socp.protocol.encoding import b64url_decode, b64url_encode
from socp.protocol.envelope import Envelope, parse
from socp.protocol.errors import SocpError
from socp.protocol.ids import new_id
from socp.protocol.limits import OAEP_MAX_PLAINTEXT
from socp.runtime import fast_runner

from .capacity import measure_sign_capacity
from .drive import Progress, SendPlan
from .keys import KeyPool
from .phase import cores, run_phase
from .prepare import PreparedFrame, now_ms
from .report import BenchResult
from .simulated_users import BenchUser, make_users
from .targets import MAX_DRAIN_S, MAX_DURATION_S, Target
from .tracker import DeliveryTracker

MAX_FILE_MB = 20.0   # per pair: bounds preparation time and memory


@dataclass(frozen=True, slots=True)
class FilesOptions:
    pairs: int = 1
    size_mb: float = 1.0
    duration_s: float = 60.0           # upper bound: the run ends when every file is through
    rate: float | None = None          # chunks per second in total; None: closed loop
    window: int = 32                   # closed loop: chunks in flight per sender
    keys: int = 2
    drain_s: float = 10.0
    sample: int = 20
    transport_sig: bool = False
    capacity_s: float = 2.5
    progress: bool = True


def _key_of(frame: dict[str, Any]) -> str | None:
    payload = frame.get("payload") or {}
    file_id = payload.get("file_id")
    if not isinstance(file_id, str):
        return None
    frame_type = frame.get("type")
    if frame_type == "FILE_CHUNK":
        return f"{file_id}:{payload.get('index')}"
    return f"{file_id}:{'start' if frame_type == 'FILE_START' else 'end'}"


def file_frames(sender: BenchUser, recipient: BenchUser, recipient_key: crypto.PublicKey, data: bytes,
                sender_key: crypto.PrivateKey, transport_sig: bool) -> tuple[str, list[PreparedFrame]]:
    file_id = new_id()

    def ready(envelope: Envelope, key: str) -> PreparedFrame:
        if transport_sig:
            envelope = signing.sign_envelope(sender_key, envelope)
        return PreparedFrame(sender=sender.index, receivers=(recipient.index,), key=f"{file_id}:{key}",
                             text=envelope.to_wire(), ref=msg_ref(envelope))

    made = [ready(frames.file_start(sender.user_id, recipient.user_id, now_ms(), file_id, "bench.bin", len(data),
                                    hashlib.sha256(data).hexdigest(), "dm"), "start")]
    for index, offset in enumerate(range(0, len(data), OAEP_MAX_PLAINTEXT)):
        ciphertext = b64url_encode(crypto.oaep_encrypt(recipient_key, data[offset : offset + OAEP_MAX_PLAINTEXT]))
        made.append(ready(frames.file_chunk(sender.user_id, recipient.user_id, now_ms(), file_id, index, ciphertext),
                          str(index)))
    made.append(ready(frames.file_end(sender.user_id, recipient.user_id, now_ms(), file_id), "end"))
    return file_id, made


def run_files(target: Target, options: FilesOptions, keys: KeyPool | None = None) -> BenchResult:
    options = replace(options, duration_s=min(options.duration_s, MAX_DURATION_S),
                      drain_s=min(options.drain_s, MAX_DRAIN_S), size_mb=min(options.size_mb, MAX_FILE_MB))
    progress = Progress("bench files", options.progress)
    count_users = 2 * max(1, options.pairs)
    keys = keys or KeyPool.generate(min(options.keys, count_users), cores())
    progress.note(f"measuring the sign capacity for {options.capacity_s:g} s")
    capacity = measure_sign_capacity(keys.ders[0], options.capacity_s)
    users = make_users(keys, target.urls, count_users)
    size = int(options.size_mb * 1_000_000)
    progress.note(f"encrypting {options.pairs} file(s) of {size} bytes")
    contents: dict[str, bytes] = {}
    per_sender: list[list[PreparedFrame]] = []
    for pair in range(max(1, options.pairs)):
        sender, recipient = users[2 * pair], users[2 * pair + 1]
        data = os.urandom(size)
        file_id, made = file_frames(sender, recipient, keys.keys[recipient.key_index].public_key(), data,
                                    keys.keys[sender.key_index], options.transport_sig)
        contents[file_id] = data
        per_sender.append(made)
    # Interleave the files so that an open-loop schedule spreads over every sender.
    prepared = [frame for group in zip(*per_sender, strict=False) for frame in group]
    tracker = DeliveryTracker(sample_size=options.sample)
    tracker.expect(prepared)
    plan = SendPlan(frames=prepared, duration_s=options.duration_s, rate=options.rate, window=options.window)
    with progress, fast_runner() as runner:
        outcome = runner.run(run_phase(users, plan, tracker, frozenset({"FILE_START", "FILE_CHUNK", "FILE_END"}),
                                       _key_of, target.data_dirs, options.drain_s, progress))
    mode = f"open loop at {options.rate:g} chunks/s" if options.rate else f"closed loop, window {options.window}"
    started = outcome.send.started
    last = max(tracker.delivered_times, default=started)
    result = BenchResult(scenario="files", urls=list(target.urls), mode=mode, users=count_users,
                         duration_s=round(last - started, 2), prepared=len(prepared))
    result.fill_deliveries(tracker, started, max(last, started + 1e-3))
    result.fill_capacity(capacity)
    result.fill_processes(outcome.processes, outcome.client_cpu_s)
    chunks_delivered = sum(1 for (_r, key) in tracker.seen if not key.endswith((":start", ":end")))
    chunks_total = sum(1 for p in prepared if not p.key.endswith((":start", ":end")))
    delivered_bytes = size * len(contents) * chunks_delivered / max(chunks_total, 1)
    result.extra["file_bytes"] = size * len(contents)
    result.extra["chunks_delivered"] = f"{chunks_delivered} of {chunks_total}"
    result.extra["MB_per_s"] = round(delivered_bytes / 1e6 / max(last - started, 1e-6), 3)
    result.sample_checked, result.sample_failed = _check_sample(tracker, users, keys, contents)
    if outcome.closed_users:
        result.notes.append(f"{outcome.closed_users} users were disconnected by the server")
    return result


def _check_sample(tracker: DeliveryTracker, users: list[BenchUser], keys: KeyPool,
                  contents: dict[str, bytes]) -> tuple[int, int]:
    """Decrypt sampled chunks and compare them with the bytes that were sent."""
    checked = failed = 0
    for receiver, text in tracker.sample:
        try:
            envelope = parse(text)
        except SocpError:
            checked, failed = checked + 1, failed + 1
            continue
        if envelope.type != "FILE_CHUNK":
            continue
        checked += 1
        payload = envelope.payload
        data = contents.get(payload["file_id"], b"")
        offset = payload["index"] * OAEP_MAX_PLAINTEXT
        try:
            clear = crypto.oaep_decrypt(keys.keys[users[receiver].key_index], b64url_decode(payload["ciphertext"]))
        except SocpError:
            clear = b""
        failed += 0 if clear == data[offset : offset + OAEP_MAX_PLAINTEXT] else 1
    return checked, failed


