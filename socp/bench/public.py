"""`socp bench public`: one sender writes to the public channel, k members receive
(SOCP §7.3). With sender keys a message costs one OAEP block and one content
signature whatever k is, and the node signs its payload once for the whole fan-out;
the bench counts the distinct node signatures the members see to check that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from socp.protocol import crypto, signing
from socp.protocol.encoding import b64url_decode
from socp.protocol.envelope import parse
from socp.protocol.errors import SocpError

from .capacity import measure_sign_capacity
from .dm import closed_loop_estimate
from .drive import Progress
from .keys import KeyPool
from .phase import TimedPhase, cores, timed_run
from .prepare import FramePreparer, PublicJob
from .report import BenchResult
from .simulated_users import make_users
from .targets import MAX_DRAIN_S, MAX_DURATION_S, MAX_PREPARED_FRAMES, Target
from .tracker import DeliveryTracker

CLOSED_LOOP_HEADROOM = 1.25   # as in dm.py


@dataclass(frozen=True, slots=True)
class PublicOptions:
    members: int = 10                  # receivers, besides the sender
    duration_s: float = 10.0
    rate: float | None = None          # messages per second; None: closed loop
    window: int = 8                    # closed loop: messages not yet received by every member
    size: int = 64
    keys: int = 2                      # the sender's key and its channel sending key
    drain_s: float = 10.0
    sample: int = 20
    transport_sig: bool = False
    capacity_s: float = 2.5
    max_frames: int = MAX_PREPARED_FRAMES
    progress: bool = True


def _key_of(frame: dict[str, Any]) -> str | None:
    content_sig = (frame.get("payload") or {}).get("content_sig")
    sender = frame.get("from")
    if isinstance(sender, str) and isinstance(content_sig, str):
        return f"{sender}:{content_sig}"
    return None


def check_sample(tracker: DeliveryTracker, channel_key: crypto.PrivateKey) -> tuple[int, int]:
    """Decrypt with the sender's channel key and verify content_sig over ct‖from‖ts."""
    checked = failed = 0
    for _receiver, text in tracker.sample:
        checked += 1
        try:
            envelope = parse(text)
            payload = envelope.payload
            ok = signing.verify_public(crypto.decode_public_key(payload["sender_pub"]), payload["content_sig"],
                                       payload["ciphertext"], envelope.from_, envelope.ts)
            ok = ok and crypto.oaep_decrypt(channel_key, b64url_decode(payload["ciphertext"])).startswith(
                b"socp-bench "
            )
        except (SocpError, KeyError):
            ok = False
        failed += 0 if ok else 1
    return checked, failed


def run_public(target: Target, options: PublicOptions, keys: KeyPool | None = None) -> BenchResult:
    options = replace(
        options, duration_s=min(options.duration_s, MAX_DURATION_S), drain_s=min(options.drain_s, MAX_DRAIN_S)
    )
    progress = Progress("bench public", options.progress)
    keys = keys or KeyPool.generate(max(2, options.keys), cores())
    channel_key_index = 1 if len(keys.keys) > 1 else 0
    progress.note(f"measuring the sign capacity for {options.capacity_s:g} s")
    capacity = measure_sign_capacity(keys.ders[0], options.capacity_s)
    count_users = options.members + 1
    # User 0 sends; the members share the remaining keys.
    users = make_users(keys, target.urls, count_users, key_of=lambda i: 0 if i == 0 else keys.for_user(i))
    receivers = tuple(range(1, count_users))
    if options.rate is not None:
        wanted = math.ceil(options.rate * options.duration_s)
    else:
        # The node signs once per message, so it can pass at most ~capacity messages/s.
        wanted = math.ceil(closed_loop_estimate(capacity) * options.duration_s * CLOSED_LOOP_HEADROOM)
    count = max(1, min(wanted, options.max_frames))
    sender = users[0]
    jobs: list[PublicJob] = [(0, sender.user_id, 0, channel_key_index, seq) for seq in range(count)]
    progress.note(f"preparing {count} public messages on {cores()} cores")
    with FramePreparer(keys.ders, cores()) as preparer:
        with progress:
            prepared = preparer.public_messages(
                jobs,
                receivers,
                options.size,
                options.transport_sig,
                lambda done, total: progress.show(f"prepared {done}/{total}"),
            )
    prepared = [replace(p, key=f"{sender.user_id}:{p.key}") for p in prepared]
    phase = TimedPhase(
        "public",
        list(target.urls),
        options.duration_s,
        options.rate,
        options.window,
        options.sample,
        options.drain_s,
        "MSG_PUBLIC_CHANNEL",
        _key_of,
    )
    result, outcome, tracker = timed_run(phase, users, prepared, target.data_dirs, capacity, progress)
    result.sample_checked, result.sample_failed = check_sample(tracker, keys.keys[channel_key_index])
    messages_delivered = len({key for (_receiver, key) in tracker.seen})
    result.extra["members"] = options.members
    result.extra["messages_per_s"] = round(result.throughput_per_s / max(options.members, 1), 1)
    result.extra["messages_delivered"] = messages_delivered
    # Each distinct `sig` on a delivered copy is one node signature (SOCP §5 signs the
    # payload only, so one can serve every member on a server).
    result.extra["node_signatures_seen"] = len(tracker.signatures)
    result.extra["signatures_per_message"] = round(len(tracker.signatures) / max(messages_delivered, 1), 3)
    verifier_cpu = sum(p.cpu_s for p in outcome.processes if p.role == "verifier")
    if verifier_cpu and capacity.seconds_per_signature:
        result.extra["verifier_cpu_s_per_message"] = round(verifier_cpu / max(messages_delivered, 1), 4)
        result.extra["verifier_cpu_in_signatures_per_message"] = round(
            verifier_cpu / capacity.seconds_per_signature / max(messages_delivered, 1), 2
        )
    if outcome.closed_users:
        result.notes.append(f"{outcome.closed_users} users were disconnected by the server")
    return result
