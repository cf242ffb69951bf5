"""The frames the check throttle refused (check_throttle.py), reported to the router a
batch at a time: pure, the clock is passed in (STYLE §6).

A throttled connection of the issue's flood sends 100 frames a second, each refused
here; reported one by one, each cost a message and a router event (3,000 a second for
30 flooders, a fifth of a core each for gateway and router), which honest DMs waited
behind on a busy machine (issue #15 item 4). Refused frames are named to their sender
at most once a second anyway (router/refusals.py), so the gateway gathers a
connection's refused msg_refs and reports them in one `Rejected` (`earlier_refs`):
once REPORT_AFTER_S has passed since the first of them, or REPORT_AT_MOST are
waiting, or before any other frame of that connection goes on (the router must learn
of them in the order they were sent: an ACK of a later frame would cover them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

REPORT_AFTER_S = 0.1     # a refused frame waits at most this long to be reported...
REPORT_AT_MOST = 64      # ...or until this many are waiting


@dataclass(slots=True)
class RefusedFrames:
    """One connection's refused frames not yet reported to the router."""

    refs: list[str] = field(default_factory=list)
    detail: str = ""            # the latest refusal's (its retry hint is the newest)
    frame_type: str = ""
    first_s: float = 0.0        # when the first of them was refused

    def add(self, ref: str, detail: str, frame_type: str, now_s: float) -> bool:
        """One more refused frame; True if the batch should be reported now."""
        if not self.refs:
            self.first_s = now_s
        self.refs.append(ref)
        self.detail, self.frame_type = detail, frame_type
        return len(self.refs) >= REPORT_AT_MOST or self.wait_s(now_s) <= 0

    def wait_s(self, now_s: float) -> float:
        """How long the batch may still wait."""
        return self.first_s + REPORT_AFTER_S - now_s

    def take(self) -> tuple[list[str], str, str]:
        """(refs in the order refused, detail, frame type), and the batch is empty again."""
        taken = (self.refs, self.detail, self.frame_type)
        self.refs = []
        return taken

    def __bool__(self) -> bool:
        return bool(self.refs)
