"""What we sent and what became of it: the client side of "no silent drops". Pure.

The node names every acknowledged frame it refuses in an ERROR (`msg_ref`, or several
in `msg_refs`, protocol/acks.py) before the cumulative ACK that covers the frames
after it. So the client keeps, per connection, the frames it sent in wire order with
what they belong to (a DM, a public message, a file), and:

  ERROR RESEND   the node restarted after a crash and cannot tell the frame from a
                 copy: the session re-stamps it (new ts, new signatures, the same
                 ciphertext) and sends it again, once; a second RESEND is a refusal
  ERROR REPLAY   the frame had been handed on already: delivered
  ERROR OVERLOADED / RATE_LIMITED for a file part
                 the node is busy for a moment: the part goes again, re-stamped,
                 after a pause (file_sender.py), at most MAX_PART_RETRIES times
  other ERROR    the frame is refused: its message is "not delivered", said once
                 per message (a long text or a file is many frames)
  ACK X          X and every frame sent before it on this connection are through

Bounded: at most MAX_TRACKED frames (a server that never ACKs, as peers' servers do
not, just ages the oldest out) and MAX_REPORTED message keys remembered.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Literal

from socp.protocol.acks import msg_ref
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode
from socp.protocol.frame_types import FrameType as T
from socp.ratelimit import hinted_retry_ms

Kind = Literal["dm", "public", "file"]
MAX_TRACKED = 8192
MAX_REPORTED = 1024
RESEND = "RESEND"
REPLAY = "REPLAY"
BUSY = frozenset({ErrorCode.OVERLOADED.value, ErrorCode.RATE_LIMITED.value})
# One refused part would ruin a whole file; a node that refuses the same part this
# many times is not busy for a moment, and the file fails.
MAX_PART_RETRIES = 4
RETRY_PAUSE = 0.5                    # seconds, when the ERROR gives no retry hint
RETRY_PAUSE_BOUNDS = (0.05, 5.0)     # a hint is followed within these


@dataclass(frozen=True, slots=True)
class Tracked:
    """One acknowledged frame we built: what it belongs to, for the user."""

    frame: Envelope
    message: str          # what a refusal is reported once for: a part id, a file id, a ref
    kind: Kind
    recipient: str        # a user id or "public"
    summary: str          # the text, or the file name
    restamped: bool = False   # already re-sent once after a RESEND
    retries: int = 0          # a file part: times sent again after the node refused it for its load


@dataclass(frozen=True, slots=True)
class Refused:
    """What one ERROR naming frames of ours means for them."""

    resend: list[Tracked]       # ERROR RESEND: re-stamped and sent again at once
    retry: list[Tracked]        # file parts refused for the node's load: again after a pause
    refusals: list[Refusal]     # to report, once per message


@dataclass(frozen=True, slots=True)
class Refusal:
    """What one ERROR means for one message of ours."""

    tracked: Tracked
    code: str
    detail: str


class Outbox:
    def __init__(self) -> None:
        self._built: OrderedDict[str, Tracked] = OrderedDict()     # msg_ref -> frame, built, maybe not sent yet
        self._on_wire: OrderedDict[str, None] = OrderedDict()      # refs sent on this connection, in order
        self._reported: OrderedDict[str, None] = OrderedDict()     # message keys already said "not delivered"
        self.server_acks = False    # this server ACKs our frames by msg_ref (ours does; peers may not)

    def track(self, tracked: Tracked) -> str:
        """Remember a frame we built; returns its msg_ref (also its message key if it has none)."""
        ref = msg_ref(tracked.frame)
        if not tracked.message:
            tracked = replace(tracked, message=ref)
        self._built[ref] = tracked
        self._built.move_to_end(ref)
        while len(self._built) > MAX_TRACKED:
            old, _ = self._built.popitem(last=False)
            self._on_wire.pop(old, None)
        return ref

    def sent(self, *frames: Envelope) -> None:
        """The driver wrote these frames to this connection, in this order (wire order
        is ACK order)."""
        for frame in frames:
            ref = msg_ref(frame)
            if ref in self._built:
                self._on_wire[ref] = None

    def connection_reset(self) -> list[Tracked]:
        """A new connection: ACKs no longer cover what the old one sent. Returns the
        frames sent and never acknowledged nor refused (their fate is unknown)."""
        unsure = [self._built[ref] for ref in self._on_wire if ref in self._built]
        self._on_wire.clear()
        for ref in [ref for ref, t in self._built.items() if t in unsure]:
            del self._built[ref]
        return unsure

    def acked(self, ref: str) -> list[Tracked]:
        """Cumulative ACK: `ref` and everything sent before it. Returns the frames it covers."""
        if ref not in self._on_wire:
            return []
        self.server_acks = True
        covered = []
        while self._on_wire:
            head, _ = self._on_wire.popitem(last=False)
            tracked = self._built.pop(head, None)
            if tracked is not None:
                covered.append(tracked)
            if head == ref:
                break
        return covered

    def refused(self, refs: list[str], code: str, detail: str) -> Refused:
        """Frames this ERROR names, sorted by what becomes of them. REPLAY means the
        frame went through: none of them."""
        outcome = Refused([], [], [])
        for ref in refs:
            tracked = self._built.pop(ref, None)
            self._on_wire.pop(ref, None)
            if tracked is None or code == REPLAY:
                continue
            if code == RESEND and not tracked.restamped:
                outcome.resend.append(tracked)
            elif (code in BUSY and tracked.frame.type == T.FILE_CHUNK and tracked.retries < MAX_PART_RETRIES
                  and not self.was_refused(tracked.message)):
                outcome.retry.append(tracked)
            elif self.mark_reported(tracked.message):
                outcome.refusals.append(Refusal(tracked, code, detail))
        return outcome

    def unacknowledged(self, message: str) -> bool:
        """Is a frame of `message` written and neither acknowledged nor refused yet?"""
        return any(self._built[ref].message == message for ref in self._on_wire if ref in self._built)

    def mark_reported(self, message: str) -> bool:
        """Note that `message` is reported as not delivered; False if it already was."""
        if message in self._reported:
            return False
        self._reported[message] = None
        while len(self._reported) > MAX_REPORTED:
            self._reported.popitem(last=False)
        return True

    def knows(self, ref: str) -> bool:
        return ref in self._built

    def was_refused(self, message: str) -> bool:
        return message in self._reported


def retry_pause(detail: str) -> float:
    """The pause an ERROR's detail asks for (`retry_after_ms=N`, socp/ratelimit.py),
    within RETRY_PAUSE_BOUNDS; RETRY_PAUSE without one."""
    millis = hinted_retry_ms(detail)
    if millis is None:
        return RETRY_PAUSE
    low, high = RETRY_PAUSE_BOUNDS
    return min(high, max(low, millis / 1000))


__all__ = ["Kind", "Outbox", "Refusal", "Refused", "Tracked", "retry_pause"]
