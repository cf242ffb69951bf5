"""What the operator sees of each server link (issue #14, "visible links").

One entry per peer server, keyed by the address it was dialled at or says it listens
on ("host:port"), so a dial and the link it becomes stay one row. An entry's life is
one table (STYLE §3), SERVER_LINK_MOVES of socp/ipc/link_state.py, whose states are
every link's:

    DIALLING --welcomed / linked-->      JOINED
    DIALLING --refused either way-->     REFUSED
    DIALLING --dial failed, closed-->    LOST
    JOINED   --link went down-->         LOST
    JOINED   --peer or we refused-->     REFUSED
    REFUSED / LOST --dialled again-->    DIALLING
    REFUSED / LOST --it linked to us-->  JOINED

A change of state, or a new refusal reason, is logged at once (so an operator reads
once per link why it was refused); frames dropped on a joined link are counted, and
logged at most once a minute per link. The router hands `rows()` to the gateway
(ipc ServerLinks) whenever `changed` is set; `/healthz` lists them as `server_links`
and `socp status` prints them as a table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from socp.ipc.link_state import SERVER_LINK_MOVES, LinkState

log = logging.getLogger("socp.router")

LOG_INTERVAL_MS = 60_000   # dropped frames: at most one log line a minute per link
REASON_CHARS = 300         # a reason may quote a peer's ERROR text: kept short and printable


def printable(text: str, limit: int = REASON_CHARS) -> str:
    """Peer-supplied text made safe for a log line, /healthz and a terminal (STYLE:
    escape control characters)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[:limit])


@dataclass(slots=True)
class LinkEntry:
    address: str                    # "host:port"
    state: LinkState
    peer_id: str = ""               # "" until the peer said who it is
    reason: str = ""                # the last refusal, loss or dropped frame, in words
    dropped: int = 0                # frames from this peer we could not use, since start
    dialect: str = ""               # whose wire habits it has: "", "g45", "g17", "g56", "g101"
    goes_by: str = ""               # the id we go by on this link when not our own (an opt-in alias)
    opt_in: str = ""                # the bootstrap opt-in this link runs under: "g101_link", … or ""
    since_ms: int = 0               # when it entered its state
    dropped_logged_ms: int = -LOG_INTERVAL_MS
    dropped_unlogged: int = 0       # dropped since the last log line


@dataclass(slots=True)
class LinkBook:
    entries: dict[str, LinkEntry] = field(default_factory=dict)
    changed: bool = False

    def _entry(self, address: str, state: LinkState, now_ms: int) -> LinkEntry:
        entry = self.entries.get(address)
        if entry is None:
            entry = self.entries[address] = LinkEntry(address=address, state=state, since_ms=now_ms)
            self.changed = True
        return entry

    def move(self, address: str, state: LinkState, now_ms: int, reason: str = "", peer_id: str = "") -> LinkEntry:
        """Put the link at `address` in `state`; log it if that is news."""
        entry = self._entry(address, state, now_ms)
        reason, peer_id = printable(reason), printable(peer_id, 128)
        if peer_id and entry.peer_id != peer_id:
            entry.peer_id = peer_id
            self.changed = True
        news = entry.state is not state or (reason and reason != entry.reason)
        if entry.state is not state:
            if state not in SERVER_LINK_MOVES[entry.state]:
                # Not a bug to die for: a peer can make us see odd orders (a welcome after
                # its close raced in). Record what is true now.
                log.debug("link %s: %s -> %s", address, entry.state.value, state.value)
            entry.state = state
            entry.since_ms = now_ms
            self.changed = True
        if reason and reason != entry.reason:
            entry.reason = reason
            self.changed = True
        if news and state is not LinkState.DIALLING:
            level = logging.WARNING if state is LinkState.REFUSED else logging.INFO
            log.log(level, "server link %s (%s): %s%s", address, entry.peer_id or "id not known yet", state.value,
                    f": {reason}" if reason else "")
        return entry

    def dropped(self, address: str, reason: str, now_ms: int) -> None:
        """A frame from the peer at `address` was refused or ignored; count it, log
        at most once a minute per link."""
        entry = self.entries.get(address)
        if entry is None:
            return
        reason = printable(reason)
        entry.dropped += 1
        entry.dropped_unlogged += 1
        entry.reason = reason
        self.changed = True
        if now_ms - entry.dropped_logged_ms >= LOG_INTERVAL_MS:
            log.warning("server link %s (%s): %d frame(s) dropped; last: %s", address, entry.peer_id or "?",
                        entry.dropped_unlogged, reason)
            entry.dropped_logged_ms = now_ms
            entry.dropped_unlogged = 0

    def set_dialect(self, address: str, dialect: str, now_ms: int) -> None:
        """Record whose habits the peer at `address` has (an accepted link's first
        row is made here, before it is joined)."""
        entry = self._entry(address, LinkState.DIALLING, now_ms)
        if dialect and entry.dialect != dialect:
            entry.dialect = dialect
            self.changed = True

    def set_goes_by(self, address: str, name: str) -> None:
        """Record that we go by `name` on the link at `address` ("" = our own id)."""
        self._note(address, "goes_by", name, "we go by %s on it (bootstrap opt-in)")

    def set_opt_in(self, address: str, name: str) -> None:
        """Record the operator's opt-in (a bootstrap key) the link at `address` runs under."""
        self._note(address, "opt_in", name, "read and written under the bootstrap opt-in `%s: true`")

    def _note(self, address: str, name: str, value: str, said: str) -> None:
        """Set the row's `name` to `value`; a new non-empty value is logged once."""
        entry = self.entries.get(address)
        if entry is None or getattr(entry, name) == value:
            return
        setattr(entry, name, value)
        self.changed = True
        if value:
            log.info("server link %s (%s): " + said, address, entry.peer_id or "id not known yet", value)

    def goes_by(self, address: str) -> str:
        entry = self.entries.get(address)
        return entry.goes_by if entry is not None else ""

    def dialect_of(self, address: str) -> str:
        entry = self.entries.get(address)
        return entry.dialect if entry is not None else ""

    def rows(self) -> list[tuple[str, str, str, str, int, str, str, str]]:
        """(peer id, address, state, reason, dropped, dialect, goes_by, opt_in), sorted by address."""
        return [(e.peer_id, e.address, e.state.value, e.reason, e.dropped, e.dialect, e.goes_by, e.opt_in)
                for _, e in sorted(self.entries.items())]
