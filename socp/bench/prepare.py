"""Frames made before the timed phase, on every core.

Each DM costs one OAEP encryption and one RSA-4096 PSS content signature (~6 ms of
CPU), so a bench that signed while sending would measure itself, not the server.
Frames are stamped with `ts` = the time they are prepared (the node accepts 10
minutes of age, targets.MAX_PREPARED_FRAMES keeps preparation well inside that);
every ciphertext is fresh, so no two frames are the same and none is a replay.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from socp.protocol import crypto, frames, signing
from socp.protocol.acks import msg_ref
from socp.protocol.encoding import b64url_encode
from socp.protocol.limits import OAEP_MAX_PLAINTEXT

from .targets import POOL_START_METHOD

BATCH = 32  # frames per task: large enough to amortise the pipe, small for progress

_keys: tuple[crypto.PrivateKey, ...] = ()
_public_texts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PreparedFrame:
    sender: int                  # index of the sending bench user
    receivers: tuple[int, ...]   # indices of the users that must receive it
    key: str                     # how a receiver recognises it (unique per frame)
    text: str                    # the wire text, ready to send
    ref: str = ""                # its msg_ref: how an ERROR refusing it names it (SOCP §7.5)


# A DM to prepare: (sender index, sender id, sender key, recipient index, recipient id, recipient key, seq).
DmJob = tuple[int, str, int, int, str, int, int]
# A public message: (sender index, sender id, sender key, channel key, seq).
PublicJob = tuple[int, str, int, int, int]


def now_ms() -> int:
    return int(time.time() * 1000)


def plaintext(seq: int, size: int) -> bytes:
    """Recognisable, `size` bytes (at most one OAEP block)."""
    return f"socp-bench {seq} ".encode().ljust(size, b".")[: min(size, OAEP_MAX_PLAINTEXT)]


def _init_worker(key_ders: Sequence[bytes]) -> None:
    global _keys, _public_texts
    _keys = tuple(crypto.load_private_key_der(der) for der in key_ders)
    _public_texts = tuple(crypto.encode_public_key(key) for key in _keys)


# What a worker returns per frame: (wire text, content_sig, msg_ref).
Made = tuple[str, str, str]


def _dm_batch(args: tuple[list[DmJob], int, bool]) -> list[Made]:
    jobs, size, transport_sig = args
    made = []
    for _sender, sender_id, sender_key, _recipient, recipient_id, recipient_key, seq in jobs:
        ts = now_ms()
        ciphertext = b64url_encode(crypto.oaep_encrypt(_keys[recipient_key].public_key(), plaintext(seq, size)))
        content_sig = signing.sign_dm(_keys[sender_key], ciphertext, sender_id, recipient_id, ts)
        frame = frames.msg_direct(sender_id, recipient_id, ts, ciphertext, _public_texts[sender_key], content_sig)
        if transport_sig:
            frame = signing.sign_envelope(_keys[sender_key], frame)
        made.append((frame.to_wire(), content_sig, msg_ref(frame)))
    return made


def _public_batch(args: tuple[list[PublicJob], int, bool]) -> list[Made]:
    jobs, size, transport_sig = args
    made = []
    for _sender, sender_id, sender_key, channel_key, seq in jobs:
        ts = now_ms()
        # SOCP §7.3 sender keys: one OAEP block under the sender's channel sending key.
        ciphertext = b64url_encode(crypto.oaep_encrypt(_keys[channel_key].public_key(), plaintext(seq, size)))
        content_sig = signing.sign_public(_keys[sender_key], ciphertext, sender_id, ts)
        frame = frames.msg_public_channel(sender_id, ts, ciphertext, _public_texts[sender_key], content_sig)
        if transport_sig:
            frame = signing.sign_envelope(_keys[sender_key], frame)
        made.append((frame.to_wire(), content_sig, msg_ref(frame)))
    return made


class FramePreparer:
    """A pool of worker processes holding the bench's keys; one per core."""

    def __init__(self, key_ders: Sequence[bytes], processes: int) -> None:
        self._pool = multiprocessing.get_context(POOL_START_METHOD).Pool(
            max(1, processes), initializer=_init_worker, initargs=(tuple(key_ders),))

    def __enter__(self) -> FramePreparer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.terminate()
        self._pool.join()

    def _run(self, batch_function: Callable[..., list[Made]], jobs: Sequence[tuple[Any, ...]], size: int,
             transport_sig: bool, progress: Callable[[int, int], None] | None) -> list[Made]:
        batches = [(list(jobs[i : i + BATCH]), size, transport_sig) for i in range(0, len(jobs), BATCH)]
        made: list[Made] = []
        for result in self._pool.imap(batch_function, batches, chunksize=1):
            made.extend(result)
            if progress is not None:
                progress(len(made), len(jobs))
        return made

    def direct_messages(self, jobs: Sequence[DmJob], size: int, transport_sig: bool = False,
                        progress: Callable[[int, int], None] | None = None) -> list[PreparedFrame]:
        made = self._run(_dm_batch, jobs, size, transport_sig, progress)
        return [PreparedFrame(sender=job[0], receivers=(job[3],), key=content_sig, text=text, ref=ref)
                for job, (text, content_sig, ref) in zip(jobs, made, strict=False)]

    def public_messages(self, jobs: Sequence[PublicJob], receivers: tuple[int, ...], size: int,
                        transport_sig: bool = False,
                        progress: Callable[[int, int], None] | None = None) -> list[PreparedFrame]:
        made = self._run(_public_batch, jobs, size, transport_sig, progress)
        return [PreparedFrame(sender=job[0], receivers=receivers, key=content_sig, text=text, ref=ref)
                for job, (text, content_sig, ref) in zip(jobs, made, strict=False)]
