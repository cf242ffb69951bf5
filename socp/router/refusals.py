"""Refused acknowledged frames: every one is named, many in one ERROR (no silent drops).

A user whose burst is refused (rate limits, stale or doubtful frames, frames the
verifier or the gateway refused) must learn which frames did not take effect: a
cumulative ACK would otherwise cover them, or nothing would ever come, and the client
would have to guess (protocol/acks.py). But every ERROR costs a signature, so a flood
must not buy one each. Hence, per connection and per error code:

- the first refusal is answered at once, naming its frame (`msg_ref`);
- refusals of the same kind within the next interval (`abuse_rules.refusal_answer_due`)
  are held, and answered together by one ERROR whose `msg_refs` lists them (at most
  MAX_MSG_REFS; `msg_ref` is the last): on the first Tick once the interval is over,
  or before the next ACK of that connection (`user_acks._ack_now` flushes first, so the
  ERROR always reaches the client before an ACK that would cover the frames);
- answers on their own (the first, and those of a Tick) also spend a token of a
  node-wide budget (`abuse_rules.held_refusal_answer_due`); while it is spent they stay
  held, the connections waiting longest are answered first, and each later ERROR
  names more frames. An answer forced by an ACK or by MAX_MSG_REFS spends none;
- answers on their own go to the verifiers only while the pool has room: fewer jobs
  out than the fair share's window (router/fairshare.py). They are signed outside the
  senders' queues, and each takes a place in the window that an honest DM would
  otherwise wait for; so they only fill room nobody else uses, and an honest DM waits
  behind at most a window of jobs, not a burst of ERRORs. A held answer waits for room
  at most MAX_HOLD_MS (then it goes anyway, within the budget): a pool kept full by
  other work must not keep a sender from learning its frames were refused. Held
  answers are looked at on every Tick and after every batch of events the router
  applies (`into_room`), so they take the room as the verifiers free it.

A flood therefore costs at most about one signed ERROR per code per connection per
interval, all flooders together at most the node's budget of such answers, and those
only where the pool has room. 30 flooding connections used to cost 60 signatures a
second, then bursts of 30-57 at once each second (every connection's interval ended
together), which honest DMs waited behind in the fair share (issue #15 item 4).
"""

from __future__ import annotations

from socp.protocol.acks import MAX_MSG_REFS
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode

from . import abuse_rules
from .core_io import Action, Send
from .replies import error_to
from .state import HeldRefusals, RouterState

# The longest a held answer waits for room in the verifier pool (then it goes anyway).
MAX_HOLD_MS = 5_000
# How often, at most, the held answers are looked over for room between Ticks: each
# look walks every connection holding some (bounded cost under a flood of events).
INTO_ROOM_EVERY_MS = 50


def refuse(state: RouterState, conn: int, code: ErrorCode, detail: str, ref: str, kind: str = "") -> list[Action]:
    """Refuse the frame `ref` of `conn`: an ERROR naming it (and any refused before it
    and not yet answered) now, if `conn` was not told of this refusal `kind` (default:
    the code) within the interval (abuse_rules.refusal_answer_due); else later."""
    held_codes = state.refusals.held.setdefault(conn, {})
    held = held_codes.get(code.value)
    if held is None:
        held = held_codes[code.value] = HeldRefusals(detail=detail, since_ms=state.now_ms)
    held.refs.append(ref)
    held.detail = detail or held.detail
    if len(held.refs) >= MAX_MSG_REFS:
        return [_answer(state, conn, code.value)]
    if (state.fair_share.free_places > 0 or _overdue(state, held)) \
            and abuse_rules.held_refusal_answer_due(state.guard, conn, kind or code.value):
        return [_answer(state, conn, code.value)]
    state.refusals.held_refs += 1
    return []


def flush(state: RouterState, conn: int) -> list[Action]:
    """One ERROR per code for the frames of `conn` refused and not yet answered."""
    return [_answer(state, conn, code) for code in list(state.refusals.held.get(conn, {}))]


def tick(state: RouterState) -> list[Action]:
    """Answer the held refusals of each connection and code whose interval is over,
    longest waiting first, while the node's budget of answers lasts
    (abuse_rules.held_refusal_answer_due): a connection flooding refused frames costs one
    signed ERROR per code per interval, not one per tick (issue #15 item 4); and only
    into the room the verifier pool has, unless an answer waited MAX_HOLD_MS."""
    guard = state.guard
    waiting = sorted((abuse_rules.last_answered_ms(guard, conn, code), conn, code)
                     for conn, codes in state.refusals.held.items() for code in codes
                     if abuse_rules.refusal_interval_over(guard, conn, code))
    room = state.fair_share.free_places
    actions: list[Action] = []
    for _, conn, code in waiting:
        if not abuse_rules.refusal_answer_budget_left(guard):
            break
        if room <= 0 and not _overdue(state, state.refusals.held[conn][code]):
            continue
        if abuse_rules.held_refusal_answer_due(guard, conn, code):
            actions.append(_answer(state, conn, code))
            room -= 1
    return actions


def into_room(state: RouterState) -> list[Action]:
    """After each batch of events: held refusals due now, while the pool has room. The
    Tick alone (twice a second) would let at most a window of answers out per Tick, so
    after a flood the last of them would wait seconds; this way they fill the room the
    verifiers free as they sign, as fast as the budget allows (looked at most every
    INTO_ROOM_EVERY_MS)."""
    refusals = state.refusals
    if not refusals.held or state.now_ms < refusals.next_look_ms or state.fair_share.free_places <= 0:
        return []
    refusals.next_look_ms = state.now_ms + INTO_ROOM_EVERY_MS
    return tick(state)


def _overdue(state: RouterState, held: HeldRefusals) -> bool:
    return state.now_ms - held.since_ms >= MAX_HOLD_MS


def link_down(state: RouterState, conn: int) -> None:
    state.refusals.held.pop(conn, None)


def _answer(state: RouterState, conn: int, code: str) -> Send:
    held_codes = state.refusals.held[conn]
    held = held_codes.pop(code)
    if not held_codes:
        del state.refusals.held[conn]
    state.refusals.answered += 1
    refs, detail = held.refs, held.detail
    send = error_to(state, conn, ErrorCode(code), detail)
    payload = {**send.frame.payload, "msg_ref": refs[-1]}
    if len(refs) > 1:
        payload["msg_refs"] = list(refs)
        payload["detail"] = f"{detail} ({len(refs)} frames refused, named in msg_refs)"
    frame = send.frame
    return Send(send.targets, Envelope(type=frame.type, from_=frame.from_, to=frame.to, ts=frame.ts, payload=payload))
