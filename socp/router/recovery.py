"""The router's side of recovery (docs/recovery.md is the contract; read it first).

Five jobs, one section each:

  inbound order    each connection's events in the gateway's order; the hold-back while
                   a new router takes the gateway's replay (InboundOrder)
  restored links   a restarted router learns the gateway's live links (LinkReplay)
  re-sent jobs     sign jobs lost with a verifier are sent again (InFlight)
  re-parked content  what a lost gateway may not have written is parked for the reconnect
  credit           a server link is handed no more unwritten frames than its outbox holds

The replay keys that outlive a restart are replay_log.py's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from socp.ipc import messages as m
from socp.ipc.link_state import LinkState
from socp.ipc.messages import CLOSE_GOING_AWAY, FIRST_DIALLED_CONN, ROLE_SERVER, ROLE_USER
from socp.ipc.reorder import ReorderBuffer, ReorderOverflow
from socp.protocol.crypto import normalise_public_key
from socp.protocol.envelope import Envelope, parse
from socp.protocol.errors import SocpError
from socp.protocol.frame_types import FrameType as T

from . import federation, users
from .core_io import Action, Close, Event, FrameIn, FrameRejected, LinkDown, LinkRestored, LinkUp, Relay, Send
from .peer_links import PeerLink
from .state import PARKED_LIMIT, Outflow, RouterState, forget_older

log = logging.getLogger("socp.router")


# --- Inbound order (docs/recovery.md, Sequence numbers; Inbound 4-6) ------------------------

# The actor messages that carry a connection's events, each with its inbound seq.
InboundMessage = m.LinkReplay | m.Verified | m.Rejected | m.LinkClosed | m.LinkOpened
INBOUND_TYPES = (m.LinkReplay, m.Verified, m.Rejected, m.LinkClosed, m.LinkOpened)
Inbound = tuple[int, Event]            # (seq, event)
Ready = tuple[int, int, Event]         # (conn, seq, event), to apply now


@dataclass
class InboundOrder:
    """Each connection's events in the gateway's order, and how far they took effect.

    A new router first learns the live links (LinkReplay) and only then, once the
    gateway says GatewayHello, takes their frames: until `end_replay`, only the
    restored links go through. A frame may name a user whose connection is replayed
    after the frame's own link (a server's SERVER_DELIVER for our user), and the
    verifiers' results can overtake the gateway's replay. The rest waits, in order."""

    buffers: dict[int, ReorderBuffer[Inbound]] = field(default_factory=dict)
    replaying: bool = True
    held_back: list[Ready] = field(default_factory=list)
    applied: dict[int, int] = field(default_factory=dict)      # conn -> first inbound seq not applied
    applied_changed: set[int] = field(default_factory=set)
    applied_unreported: int = 0    # events applied since the last applied_marks
    links_replayed: int = 0
    reorder_overflows: int = 0

    def take(self, message: InboundMessage, known_links: Container[int]) -> list[Ready]:
        """(conn, seq, event) to apply now for one actor message."""
        conn = message.conn
        ready = [(conn, seq, event) for seq, event in self.events_from(message, known_links)]
        if not self.replaying:
            return ready
        self.held_back += [item for item in ready if not isinstance(item[2], LinkRestored)]
        return [item for item in ready if isinstance(item[2], LinkRestored)]

    def end_replay(self) -> list[Ready]:
        """Every live link is restored (GatewayHello, or none came in time): what was
        held back, in the order it became ready."""
        self.replaying = False
        held, self.held_back = self.held_back, []
        return held

    def applied_up_to(self, conn: int, seq: int) -> None:
        self.applied[conn] = seq + 1
        self.applied_changed.add(conn)
        self.applied_unreported += 1

    def applied_marks(self) -> list[tuple[int, int]]:
        """(conn, first seq not applied) of each connection that moved: InboundDone."""
        marks = [(conn, self.applied[conn]) for conn in self.applied_changed if conn in self.applied]
        self.applied_changed.clear()
        self.applied_unreported = 0
        return marks

    def forget(self, conn: int) -> None:
        self.buffers.pop(conn, None)
        self.applied.pop(conn, None)

    def gateway_restarted(self) -> None:
        """Every connection of the gateway before is gone."""
        self.buffers.clear()
        self.applied.clear()
        self.applied_changed.clear()

    def events_from(self, message: InboundMessage, known_links: Container[int]) -> list[Inbound]:
        """Translate one actor message into core events, in its connection's order,
        each with its inbound seq."""
        if isinstance(message, m.LinkReplay):
            if message.conn in known_links:
                return []   # we heard its hello ourselves; the re-submitted frames are duplicates
            self.links_replayed += 1
            restored: list[Inbound] = []
            if message.opening or message.role in (m.ROLE_SERVER, m.ROLE_USER):
                restored.append((message.seq - 1, LinkRestored(message.conn, message.role, message.opening,
                                                               message.verify_key)))
            # The old router applied everything below `seq`: start there. Results may be
            # waiting already: each verifier reconnects to a new router on its own timer,
            # often before the gateway does, so this replay can trail the results of the
            # very frames it replays, or of frames that came in since. Those at or after
            # `seq` are frames the gateway still keeps: take them. The gateway submits a
            # frame again only after VERIFY_TIMEOUT, and never once its link is closed,
            # as a server link the new router replaces by a fresh one soon is.
            buffer = self.buffers.get(message.conn)
            if buffer is None:
                buffer = self.buffers[message.conn] = ReorderBuffer(first_seq=message.seq)
            return restored + buffer.skip_to(message.seq)
        if isinstance(message, m.Verified):
            event: Event = FrameIn(message.conn, _envelope(message.frame), message.payload_digest,
                                   message.link_signed)
        elif isinstance(message, m.Rejected):
            earlier = tuple(ref for ref in message.earlier_refs if isinstance(ref, str))
            event = FrameRejected(message.conn, message.code, message.detail, message.frame_type, message.msg_ref,
                                  earlier)
        elif isinstance(message, m.LinkClosed):
            event = LinkDown(message.conn, message.reason)
        else:
            event = LinkUp(message.conn, message.address)
        buffer = self.buffers.get(message.conn)
        if buffer is None:
            buffer = self.buffers[message.conn] = ReorderBuffer()
        try:
            return buffer.push(message.seq, (message.seq, event))
        except ReorderOverflow:
            self.reorder_overflows += 1
            log.error("router: connection %s has too many frames out of order; dropping it", message.conn)
            # Forget the link; its next frame looks like a stranger's and is refused.
            return [(message.seq, LinkDown(message.conn, "reorder overflow"))]


def _envelope(frame: dict[str, Any]) -> Envelope:
    return Envelope(type=frame["type"], from_=frame["from"], to=frame["to"], ts=frame["ts"],
                    payload=frame["payload"], sig=frame.get("sig", ""))

# --- Restored links (docs/recovery.md, Inbound 4-6) ----------------------------------------
#
# A restarted router learns the gateway's live connections (ipc LinkReplay).
#
# The gateway outlives the router: its users and server links stay connected. For each
# it replays what the router needs: a user connection's opening USER_HELLO (admitted
# again, as at first; or, if the old router had not applied it yet, nothing: the hello
# itself is submitted again), a server link's verify key (the pinned server with that key).
# Our tables of remote users died with the old router, so we also dial each linked
# server again: the peer answers a second link with its presence (federation
# `_register_link`), and the duplicate-link rule keeps one link.


def link_restored(state: RouterState, event: LinkRestored) -> list[Action]:
    conn = event.conn
    if conn >= state.next_dial_conn:
        state.next_dial_conn = conn + 1   # never dial with a conn id the gateway still uses
    known = state.links.get(conn)
    if known is not None and known.state is not LinkState.AWAITING_HELLO:
        return []   # its hello reached us already
    link = state.links[conn] = PeerLink(conn=conn, state=LinkState.AWAITING_HELLO, last_heard_ms=state.now_ms,
                                    dialled_by_us=conn >= FIRST_DIALLED_CONN)
    if event.role == ROLE_USER and not event.opening:
        # Its hello was still unapplied: the gateway submits it again, and it is handled
        # as a hello is; only its signature counts as unused (abuse_rules.user_hello_problem).
        link.hello_resubmitted = True
        return []
    if event.role == ROLE_USER:
        return _restore_user(state, link, event.opening)
    if event.role == ROLE_SERVER:
        return _restore_server(state, link, event.verify_key)
    return _drop_restored(link, "connection state lost with the router")


def _restore_user(state: RouterState, link: PeerLink, opening: str) -> list[Action]:
    try:
        frame = parse(opening)
    except SocpError:
        return _drop_restored(link, "connection state lost with the router")
    if frame.type != T.USER_HELLO:
        return _drop_restored(link, "connection state lost with the router; please reconnect")
    # The verifier and the old router accepted this hello (and checked its proof of
    # possession); the gateway is ours.
    actions = users.hello(state, link, frame)
    if link.is_user:
        link.proved_key = bool(frame.sig)
    return actions


def _restore_server(state: RouterState, link: PeerLink, verify_key: str) -> list[Action]:
    try:
        key = normalise_public_key(verify_key)
    except SocpError:
        return _drop_restored(link, "link state lost with the router")
    server_id = next((sid for sid, record in sorted(state.pinned_servers.items()) if record.pubkey == key), None)
    if server_id is None:
        # Not a server we know: a join or link still in progress. Its opening frame
        # is among the frames the gateway kept and submits again; let it decide.
        return []
    if server_id in state.servers:
        return _drop_restored(link, "link state lost with the router")
    link.move(LinkState.JOINED)
    link.peer_id = server_id
    state.servers[server_id] = link.conn
    state.redials.pop(server_id, None)
    return federation.relink(state, server_id)


def _drop_restored(link: PeerLink, reason: str) -> list[Action]:
    link.move(LinkState.CLOSING)
    return [Close(link.conn, CLOSE_GOING_AWAY, reason)]


# --- Re-sent sign jobs (docs/recovery.md, Outbound 1-2) ------------------------------------
#
# Sign jobs the router sent and the gateway has not yet released (pure bookkeeping).
#
# A verifier killed mid-job takes its jobs with it; the gateway's reorder buffer would
# then wait for their out seqs forever. The gateway reports, per connection, the first
# out seq it has not released (ipc OutboundDone); a job whose items are not all below
# those marks in time is sent again (to whichever verifier takes it), and after
# `max_tries` it is given up: its items are released as empty texts, which the gateway
# skips, so the connection moves on.
#
# "In time" grows with the backlog: `timeout_ms` plus what the jobs in flight would take
# the pool to sign at a pessimistic `sign_budget_ms` each. A fixed timeout re-sent every
# job of a merely busy pool, which then had twice the work: a retry storm that took a
# node under a 10,000-user connection ramp down to a fraction of its speed.


ConnId = int


@dataclass(slots=True)
class _Job:
    data: bytes
    sent_ms: int
    pending: set[tuple[ConnId, int]]
    tries: int = 1


@dataclass(slots=True)
class InFlight:
    timeout_ms: int = 2_000
    max_tries: int = 4
    verifiers: int = 1             # processes signing in parallel
    sign_budget_ms: int = 12       # about twice one RSA-4096 signature on a loaded core
    _jobs: dict[int, _Job] = field(default_factory=dict)
    _by_conn: dict[ConnId, deque[tuple[int, int]]] = field(default_factory=dict)   # conn -> (seq, job id)
    _next_id: int = 0
    resent: int = 0
    given_up: int = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def sent(self, data: bytes, targets: list[tuple[ConnId, int]], now_ms: int) -> None:
        job_id = self._next_id
        self._next_id += 1
        self._jobs[job_id] = _Job(data, now_ms, set(targets))
        for conn, seq in targets:
            self._by_conn.setdefault(conn, deque()).append((seq, job_id))

    def released(self, conn: ConnId, first_unreleased: int) -> None:
        """The gateway released every item of `conn` below `first_unreleased`."""
        queue = self._by_conn.get(conn)
        while queue and queue[0][0] < first_unreleased:
            seq, job_id = queue.popleft()
            self._done(job_id, conn, seq)
        if queue is not None and not queue:
            del self._by_conn[conn]

    def forget_conn(self, conn: ConnId) -> None:
        for seq, job_id in self._by_conn.pop(conn, ()):
            self._done(job_id, conn, seq)

    def patience_ms(self) -> int:
        """How old a job may grow before it is presumed lost with its verifier."""
        return self.timeout_ms + len(self._jobs) * self.sign_budget_ms // max(1, self.verifiers)

    def due(self, now_ms: int) -> tuple[list[bytes], list[tuple[ConnId, int]]]:
        """(jobs to send again, items to give up) at `now_ms`."""
        again: list[bytes] = []
        give_up: list[tuple[ConnId, int]] = []
        patience = self.patience_ms()
        # Jobs are kept oldest first (a re-sent job moves to the end): stop at the first young one.
        for job_id, job in list(self._jobs.items()):
            if now_ms - job.sent_ms < patience:
                break
            del self._jobs[job_id]
            if job.tries >= self.max_tries:
                give_up += sorted(job.pending)
                self.given_up += 1
                continue
            job.tries += 1
            job.sent_ms = now_ms
            self._jobs[job_id] = job
            self.resent += 1
            again.append(job.data)
        return again, give_up

    def _done(self, job_id: int, conn: ConnId, seq: int) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        job.pending.discard((conn, seq))
        if not job.pending:
            del self._jobs[job_id]


# --- Re-parked content (docs/recovery.md, Outbound 3) --------------------------------------
#
# Content handed to the gateway for a local user, kept a few seconds in case the
# gateway dies before writing it.
#
# A gateway killed mid-stream loses what it had not yet written to a user's socket
# (and the kernel may discard a closed socket's send buffer). The senders were
# acknowledged when the router handed the frames on (user_acks.py), and a re-send from the
# sender or from a peer server's re-link is dropped as a duplicate (SOCP §8 seen_ids),
# so nothing else would deliver them. The router therefore remembers what it sent to
# each local user for `redeliver_window_ms` and, when the user's connection is lost
# with the gateway, parks it again ahead of what was parked since (users.user_left):
# the user gets it on reconnect. A copy may arrive twice; clients drop deliveries
# whose msg_ref they have seen (README, "Acknowledgements and recovery").


# Frames to users that carry acknowledged content (SOCP §7.2-§7.4).
REDELIVERED_TYPES = frozenset({T.USER_DELIVER, T.MSG_PUBLIC_CHANNEL, T.FILE_START, T.FILE_CHUNK, T.FILE_END})


def record_delivered(state: RouterState, actions: list[Action]) -> None:
    """Remember each acknowledged-content frame sent to a local user's connection."""
    for action in actions:
        if isinstance(action, Send) and action.frame.type in REDELIVERED_TYPES:
            _remember_delivered(state, action)


def _remember_delivered(state: RouterState, action: Send) -> None:
    for conn, to in action.targets:
        link = state.links.get(conn)
        if link is None or not link.is_user or state.local_users.get(link.peer_id) != conn:
            continue
        recent = state.delivered_recently.get(link.peer_id)
        if recent is None:
            recent = state.delivered_recently[link.peer_id] = deque(maxlen=PARKED_LIMIT)
        frame = action.frame if action.frame.to == to else dataclasses.replace(action.frame, to=to)
        recent.append((state.now_ms, frame))


def park_again(state: RouterState, user_id: str) -> None:
    """The user's connection was lost with the gateway: what it was sent within the
    window may never have been written; queue it first for the reconnect."""
    recent = state.delivered_recently.pop(user_id, None)
    parked = state.parked.get(user_id)
    if not recent or parked is None:
        return
    horizon = state.now_ms - state.timing.redeliver_window_ms
    again = [frame for sent_ms, frame in recent if sent_ms >= horizon]
    room = PARKED_LIMIT - len(parked.frames)
    if again and room > 0:
        parked.frames[:0] = again[-room:]


def forget_delivered(state: RouterState, user_id: str) -> None:
    state.delivered_recently.pop(user_id, None)


def expire_delivered(state: RouterState) -> None:
    forget_older(state.delivered_recently, state.now_ms - state.timing.redeliver_window_ms)


# --- Credit for server links (docs/recovery.md, Credit) ------------------------------------
#
# Credit for server links: never hand the gateway more unwritten frames for a peer
# than its bounded outbox holds (STYLE §5).
#
# The gateway closes a link whose outbox is full (a slow consumer); the frames it held
# were already accepted and acknowledged, and only the last few seconds of them are
# re-sent on re-link, so the rest would be lost without a word to their senders. So the
# router counts the frames it hands on for each server link (`note_handed_on`, once per
# event on every action the core returns), the gateway reports how many of them it has
# written to the socket (ipc FramesWritten → `written`), and while the difference is at
# `state.unwritten_limit` a sender is refused OVERLOADED (`congested`) instead: a slow
# peer costs its own senders a retry, never the link or anyone else's frames.
#
# Frames the router sends on its own behalf (heartbeats, presence, gossip relays,
# re-sends with no origin, ERRORs) pass regardless; the limit leaves them room.


CONGESTED_DETAIL = "the recipient's server is not keeping up; retry later"


def _count_sent(state: RouterState, conns: Iterable[int]) -> None:
    """Count the frames handed to the gateway for server links."""
    server_conns = state.servers.values()
    for conn in conns:
        if conn in server_conns:
            outflow = state.outflows.get(conn)
            if outflow is None:
                outflow = state.outflows[conn] = Outflow()
            outflow.sent += 1


def frames_written(state: RouterState, counts: tuple[tuple[int, int], ...]) -> None:
    """The gateway wrote `count` frames in all to each link's socket so far.

    A count above what we sent is a link that outlived a router restart: the frames
    of the router before count as sent (the few we sent since are not counted, which
    lets through that many more at most)."""
    for conn, count in counts:
        if conn not in state.links:
            continue   # gone already (reports and LinkClosed race)
        outflow = state.outflows.get(conn)
        if outflow is None:
            outflow = state.outflows[conn] = Outflow()
        outflow.written = max(outflow.written, count)
        outflow.sent = max(outflow.sent, outflow.written)


def congested(state: RouterState, conn: int) -> bool:
    """Is the gateway holding as many unwritten frames for `conn` as we allow?"""
    outflow = state.outflows.get(conn)
    return outflow is not None and outflow.unwritten >= state.unwritten_limit


def forget_outflow(state: RouterState, conn: int) -> None:
    state.outflows.pop(conn, None)


# --- after every event ----------------------------------------------------------------------


def note_handed_on(state: RouterState, action: Action) -> None:
    """One action handed on (core._hand_on, the one pass over an event's actions):
    content for a local user is remembered for re-parking, and frames for server links
    are counted for credit."""
    counting = bool(state.servers)
    if isinstance(action, Send):
        if action.frame.type in REDELIVERED_TYPES:
            _remember_delivered(state, action)
        if counting:
            _count_sent(state, (conn for conn, _ in action.targets))
    elif counting and isinstance(action, Relay):
        _count_sent(state, action.conns)
