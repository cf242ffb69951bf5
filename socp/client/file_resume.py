"""Files cut by a lost connection: resume them or say they failed (issue #16 item 1). Pure.

Sender. Every file we send is kept (`UnconfirmedFile`) until the server confirmed the
whole of it (the ACK covering its FILE_END). ACKs are cumulative in wire order, so the
highest chunk index the server acknowledged is also the highest one acknowledged
without a hole, but for the parts it refused for its load, which go again later
(`retrying`). After a reconnect (`socp chat --reconnect`) a cut file goes again from
RESUME_MARGIN_CHUNKS before that chunk (the node acknowledges a chunk once handed on,
and what it had queued for another server dies with it), under a NEW file id, since
our node refuses a second FILE_START for a transfer id still open there, with the
project field `resumes` (the first attempt's id) in the FILE_START. SOCP §7.4 lists the
manifest's fields; peers ignore unknown payload fields (§2, project decision on `part`),
and our node carries a payload unchanged (router/users.route_frame_to_user). A file is
NOT resumed, and the user is told so, without --reconnect, when the connection came
back more than RESUME_WINDOW seconds after the cut, or after more than MAX_CUTS cuts.

Receiver. A FILE_START with `resumes` joins the download it names only when the
sender, name, size, SHA-256 and mode all match (`join_refusal`); chunks it already
has are skipped, a gap it cannot fill fails the file, and the SHA-256 check at
FILE_END stays: a resumed file is saved byte for byte or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .display import human_bytes

RESUME_MARGIN_CHUNKS = 256   # chunks sent again before the last one acknowledged
RESUME_WINDOW = 90.0         # seconds from the cut to the reconnect, at most
MAX_CUTS = 5                 # cuts one file survives; the next one fails it


@dataclass(slots=True)
class UnconfirmedFile:
    """A file we are sending, or sent, that the server has not confirmed whole yet."""

    first_id: str                # the first attempt's file id: what `resumes` names
    file_id: str                 # the attempt going now
    to: str                      # a user id, or "public"
    name: str
    path: Path
    size: int
    sha256: str
    channel: str                 # "dm" or "public"
    done: int = 0                # bytes handed to the connection (this attempt included)
    acked_through: int = -1      # highest chunk index the server acknowledged; -1: none
    cuts: int = 0                # connections lost while it was unconfirmed
    cut_at: float | None = None  # when the last cut came (None: not cut now)
    resumes: int = 0             # attempts after the first
    retrying: set[int] = field(default_factory=set)   # parts refused for the node's load, not acknowledged yet

    def percent(self) -> int:
        return int(100 * self.done / self.size) if self.size else 100


def resume_start(acked_through: int, retrying: Iterable[int] = ()) -> int:
    """The chunk index a cut file is sent again from (the whole file if nothing was
    acknowledged): a margin before the last part acknowledged, and never after a part
    the node refused and has not taken yet."""
    if acked_through < 0:
        return 0
    return max(0, min([acked_through - RESUME_MARGIN_CHUNKS, *retrying]))


def cut_summary(cut: UnconfirmedFile) -> str:
    return f"the connection was lost at {cut.percent()} % ({human_bytes(cut.done)} of {human_bytes(cut.size)})"


def resume_refusal(cut: UnconfirmedFile, *, reconnect: bool, now: float) -> str:
    """"" when the cut file may resume now; else why not, for the user."""
    if not reconnect:
        return "files go on after a lost connection only with --reconnect"
    if cut.cuts > MAX_CUTS:
        return f"it was cut {cut.cuts} times (a file goes on after {MAX_CUTS} cuts at most)"
    if cut.cut_at is not None and now - cut.cut_at > RESUME_WINDOW:
        return (f"the connection came back only {now - cut.cut_at:.0f} s later "
                f"(a file goes on within {RESUME_WINDOW:g} s)")
    return ""


def failure_reason(cut: UnconfirmedFile, why: str) -> str:
    """The whole line's reason: where it was cut, `why` it does not go on, what to do."""
    if cut.done >= cut.size:
        lost = ("the connection was lost before the server confirmed the whole file, so it may not have "
                "arrived")
    else:
        lost = cut_summary(cut)
    return f"{lost}; {why}; send it again with /file"


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a FILE_START says of a file (the fields a join compares)."""

    sender: str
    name: str
    size: int
    sha256: str
    channel: str


def join_refusal(earlier: Manifest, resumed: Manifest) -> str:
    """"" when a resumed transfer may go on into the earlier download; else why not.
    Never a wrong file: without a SHA-256 on both sides nothing ties them together."""
    if not earlier.sha256 or not resumed.sha256:
        return "it has no SHA-256 to tie it to the earlier part"
    for what, before, now in (("sender", earlier.sender, resumed.sender), ("name", earlier.name, resumed.name),
                              ("size", earlier.size, resumed.size), ("SHA-256", earlier.sha256, resumed.sha256),
                              ("mode", earlier.channel, resumed.channel)):
        if before != now:
            return f"its {what} differs from the earlier part's"
    return ""
