"""Measure what the protocol core costs per call on this machine.

RSA-4096 PSS sign/verify and OAEP encrypt/decrypt, canonical JSON of a typical DM
payload (orjson path vs the standard's json.dumps recipe), and parse() of a typical
frame. Each figure is the median of several repetitions of a timed batch, so one
noisy neighbour on a shared machine does not skew it.

    python scripts/measure_crypto.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_encode, canonical_json
from socp.protocol.envelope import parse
from socp.protocol.ids import new_id


def median_seconds_per_call(work: Callable[[], object], calls_per_batch: int, repeats: int) -> float:
    """Median over `repeats` batches of the mean time of one call in a batch."""
    work()  # warm up caches and lazy imports outside the timing
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls_per_batch):
            work()
        per_call.append((time.perf_counter() - start) / calls_per_batch)
    return statistics.median(per_call)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed batches per measurement (default 7)")
    args = parser.parse_args()

    print("generating two RSA-4096 keys ...", file=sys.stderr)
    sender_key, recipient_key = crypto.generate_private_key(), crypto.generate_private_key()
    recipient_public = recipient_key.public_key()
    sender_public = sender_key.public_key()

    # A typical DM: one full OAEP block of text, as MSG_DIRECT carries it (§7.2).
    sender_id, recipient_id, ts = new_id(), new_id(), 1_700_000_003_000
    ciphertext_bytes = crypto.oaep_encrypt(recipient_public, b"x" * 446)
    ciphertext = b64url_encode(ciphertext_bytes)
    content_sig = signing.sign_dm(sender_key, ciphertext, sender_id, recipient_id, ts)
    frame = frames.msg_direct(sender_id, recipient_id, ts, ciphertext, crypto.encode_public_key(sender_key),
                              content_sig)
    frame = signing.sign_envelope(sender_key, frame)
    payload, wire = frame.payload, frame.to_wire()
    signed_bytes = signing.dm_signed_bytes(ciphertext, sender_id, recipient_id, ts)
    signature = crypto.sign_pss(sender_key, signed_bytes)

    def stdlib_canonical() -> bytes:
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    assert canonical_json(payload) == stdlib_canonical()
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("RSA-4096 PSS sign", lambda: crypto.sign_pss(sender_key, signed_bytes), 20),
        ("RSA-4096 PSS verify", lambda: crypto.verify_pss(sender_public, signature, signed_bytes), 200),
        ("RSA-4096 OAEP encrypt (446 B)", lambda: crypto.oaep_encrypt(recipient_public, b"x" * 446), 200),
        ("RSA-4096 OAEP decrypt", lambda: crypto.oaep_decrypt(recipient_key, ciphertext_bytes), 20),
        ("canonical JSON, orjson path", lambda: canonical_json(payload), 20_000),
        ("canonical JSON, json.dumps", stdlib_canonical, 20_000),
        ("parse() of a MSG_DIRECT frame", lambda: parse(wire), 20_000),
    ]

    print(f"payload {len(canonical_json(payload))} B canonical, frame {len(wire)} B on the wire; "
          f"median of {args.repeats} batches")
    print(f"{'operation':<32} {'ms/call':>10} {'calls/s':>12}")
    for name, work, batch in cases:
        seconds = median_seconds_per_call(work, batch, args.repeats)
        print(f"{name:<32} {seconds * 1e3:>10.4f} {1 / seconds:>12,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
