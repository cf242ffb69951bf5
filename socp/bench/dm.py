"""`socp bench dm`: users exchange direct messages in pairs (SOCP §7.2).

User 2i and user 2i+1 write to each other. With two URLs the pair is split across
the servers (even users on the first, odd on the second), so every DM crosses
servers: MSG_DIRECT → SERVER_DELIVER → USER_DELIVER, two node signatures.

With `senders` = N (a few heavy senders, issue #18), the run has N senders and N
receivers instead: user 2i writes only to user 2i+1 (on the other server, with two
URLs), and receivers never send.
The frames are made before the run and are the same whichever server they go to,
so `--url` may name a peer's server as well as ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_decode
from socp.protocol.envelope import parse
from socp.protocol.errors import SocpError

from .capacity import SignCapacity, measure_sign_capacity
from .drive import Progress
from .keys import KeyPool
from .phase import TimedPhase, cores, timed_run
from .prepare import DmJob, FramePreparer
from .report import BenchResult
from .simulated_users import BenchUser, make_users
from .targets import MAX_DRAIN_S, MAX_DURATION_S, MAX_PREPARED_FRAMES, Target
from .tracker import DeliveryTracker

# Closed loop prepares sign capacity × duration × this: a node signs every DM once,
# so it cannot deliver more than the machine signs (two nodes: half of it).
CLOSED_LOOP_HEADROOM = 1.25


@dataclass(frozen=True, slots=True)
class DmOptions:
    users: int = 10
    duration_s: float = 10.0
    rate: float | None = None          # total DMs per second; None: closed loop
    window: int = 4                    # closed loop: outstanding DMs per sender
    size: int = 64                     # plaintext bytes per DM (at most 446)
    keys: int = 4                      # distinct RSA keys shared by the users
    senders: int | None = None         # N heavy senders, each to its own receiver; None: `users` in pairs
    drain_s: float = 10.0
    sample: int = 20                   # deliveries decrypted and verified afterwards
    transport_sig: bool = False        # also sign each MSG_DIRECT's envelope, as `socp chat` does
    capacity_s: float = 2.5
    max_frames: int = MAX_PREPARED_FRAMES
    progress: bool = True


def partner(index: int) -> int:
    return index + 1 if index % 2 == 0 else index - 1


@dataclass(frozen=True, slots=True)
class Pairing:
    """Who writes to whom: `count` users, of which `senders` send in turn."""

    count: int
    senders: int
    one_way: bool

    @classmethod
    def of(cls, options: DmOptions) -> Pairing:
        if options.senders is not None:
            return cls(count=2 * options.senders, senders=options.senders, one_way=True)
        count = max(2, options.users + options.users % 2)
        return cls(count=count, senders=count, one_way=False)

    def sender(self, seq: int) -> int:
        """One way: the even users send; in pairs: everyone."""
        return 2 * (seq % self.senders) if self.one_way else seq % self.senders

    def recipient(self, sender: int) -> int:
        return partner(sender)


def delivery_key(sender: str, content_sig: str) -> str:
    return f"{sender}:{content_sig}"


def delivery_key_of(frame: dict[str, Any]) -> str | None:
    """How a receiver recognises a USER_DELIVER: its sender and content_sig."""
    payload = frame.get("payload") or {}
    sender, content_sig = payload.get("sender") or payload.get("from"), payload.get("content_sig")
    if isinstance(sender, str) and isinstance(content_sig, str):
        return delivery_key(sender, content_sig)
    return None


def closed_loop_estimate(capacity: SignCapacity) -> float:
    """Signatures per second the node could reach: the measured capacity, or, when
    other load on a shared machine depressed the measurement, what the cores give
    at the measured cost of one signature."""
    unloaded = capacity.cores / capacity.seconds_per_signature if capacity.seconds_per_signature else 0.0
    return max(capacity.signatures_per_s, unloaded)


def frames_to_prepare(options: DmOptions, capacity: SignCapacity, users: int) -> tuple[int, str]:
    """How many DMs to prepare, and a note when the cap applies."""
    if options.rate is not None:
        wanted = math.ceil(options.rate * options.duration_s)
    else:
        wanted = math.ceil(closed_loop_estimate(capacity) * options.duration_s * CLOSED_LOOP_HEADROOM)
    wanted = max(wanted, users)
    if wanted > options.max_frames:
        return options.max_frames, (f"prepared {options.max_frames} DMs (cap), {wanted} wanted: "
                                    "the run ends early if they run out")
    return wanted, ""


def check_sample(tracker: DeliveryTracker, users: list[BenchUser], keys: KeyPool,
                 server_keys: dict[str, str]) -> tuple[int, int, list[str]]:
    """Decrypt and verify each sampled delivery in full; (checked, failed, why)."""
    checked = failed = 0
    problems: list[str] = []
    for receiver_index, text in tracker.sample:
        receiver = users[receiver_index]
        checked += 1
        try:
            envelope = parse(text)
            payload = envelope.payload
            sender = frames.deliver_sender(envelope)
            ok = sender is not None and signing.verify_dm(
                crypto.decode_public_key(payload["sender_pub"]), payload["content_sig"], payload["ciphertext"],
                sender, receiver.user_id, envelope.ts)
            clear = crypto.oaep_decrypt(keys.keys[receiver.key_index], b64url_decode(payload["ciphertext"]))
            ok = ok and clear.startswith(b"socp-bench ")
            server_key = server_keys.get(receiver.url)
            if ok and server_key:
                signing.verify_transport(crypto.decode_public_key(server_key), envelope)
        except (SocpError, KeyError) as exc:
            ok = False
            problems.append(f"sample from {receiver.user_id}: {exc}")
        if not ok:
            failed += 1
    return checked, failed, problems[:5]


def run_dm(target: Target, options: DmOptions, keys: KeyPool | None = None) -> BenchResult:
    duration = min(options.duration_s, MAX_DURATION_S)
    options = replace(options, duration_s=duration, drain_s=min(options.drain_s, MAX_DRAIN_S))
    pairing = Pairing.of(options)
    count_users = pairing.count
    progress = Progress("bench dm", options.progress)
    keys = keys or KeyPool.generate(min(options.keys, count_users), cores())
    progress.note(f"measuring the sign capacity for {options.capacity_s:g} s")
    capacity = measure_sign_capacity(keys.ders[0], options.capacity_s)
    users = make_users(keys, target.urls, count_users)
    count, cap_note = frames_to_prepare(options, capacity, count_users)
    jobs: list[DmJob] = []
    for seq in range(count):
        sender = users[pairing.sender(seq)]
        recipient = users[pairing.recipient(sender.index)]
        jobs.append((sender.index, sender.user_id, sender.key_index, recipient.index, recipient.user_id,
                     recipient.key_index, seq))
    progress.note(f"preparing {count} DMs on {cores()} cores")
    with FramePreparer(keys.ders, cores()) as preparer:
        with progress:
            prepared = preparer.direct_messages(jobs, options.size, options.transport_sig,
                                                lambda done, total: progress.show(f"prepared {done}/{total}"))
    # Receivers recognise a DM by (sender, content_sig).
    prepared = [replace(p, key=delivery_key(users[p.sender].user_id, p.key)) for p in prepared]
    phase = TimedPhase("dm", list(target.urls), duration, options.rate, options.window, options.sample, options.drain_s,
                       "USER_DELIVER", delivery_key_of)
    result, outcome, tracker = timed_run(phase, users, prepared, target.data_dirs, capacity, progress)
    server_keys = dict(zip(target.urls, target.server_keys, strict=False))
    result.sample_checked, result.sample_failed, problems = check_sample(tracker, users, keys, server_keys)
    result.extra["cross_server"] = len(target.urls) > 1
    if pairing.one_way:
        result.extra["senders_x_receivers"] = f"{pairing.senders} x {pairing.senders}"
    if len(target.urls) > 1 and capacity.signatures_per_s:
        # Across servers a DM is signed twice on this machine (SERVER_DELIVER, USER_DELIVER).
        result.extra["throughput_over_half_sign_capacity"] = round(
            result.throughput_per_s / (capacity.signatures_per_s / 2), 3)
    result.extra["window_stalls"] = outcome.send.window_stalls
    result.extra["drained_s"] = round(outcome.drained_s, 2)
    result.notes += [n for n in (cap_note,) if n] + problems
    if outcome.send.ran_out:
        result.notes.append("closed loop used every prepared DM before the duration ended")
    if outcome.closed_users:
        result.notes.append(f"{outcome.closed_users} users were disconnected by the server")
    return result
