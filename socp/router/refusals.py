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
  names more frames. An answer forced by an ACK or by MAX_MSG_REFS spends none.

A flood therefore costs at most about one signed ERROR per code per connection per
interval, and all flooders together at most the node's budget of such answers: 30
flooding connections used to cost 60 signatures a second.

Every answer is `charged_to` its sender (fairshare.py): it waits in that sender's
queue of the fair share, behind the sender's own frames. Sent directly, the answers
of every flooding connection fell due on the same Tick and reached the verifier pool
as one burst a second, which honest DMs waited behind (issue #15 item 4); queued,
they leave a window at a time, after any honest sender's fresh frame, and still
within moments (a few dozen a second are little next to what the pool signs). An ACK
to a sender with answers queued queues behind them (user_acks.py), so a refused frame
is still named before an ACK covers it.
"""

from __future__ import annotations

from collections.abc import Sequence

from socp.protocol.acks import MAX_MSG_REFS
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode

from . import abuse_rules, fairshare
from .core_io import Action, Send
from .replies import error_to
from .state import HeldRefusals, RouterState


def refuse(state: RouterState, conn: int, code: ErrorCode, detail: str, ref: str, kind: str = "",
           earlier: Sequence[str] = ()) -> list[Action]:
    """Refuse the frame `ref` of `conn` (and the frames `earlier`, refused with it and
    before it): an ERROR naming it (and any refused before it and not yet answered)
    now, if `conn` was not told of this refusal `kind` (default: the code) within the
    interval (abuse_rules.refusal_answer_due); else later."""
    held_codes = state.refusals.held.setdefault(conn, {})
    actions: list[Action] = []
    for each in (*earlier, ref):
        held = held_codes.get(code.value)
        if held is None:
            held = held_codes[code.value] = HeldRefusals(detail=detail)
        held.refs.append(each)
        held.detail = detail or held.detail
        if len(held.refs) >= MAX_MSG_REFS:
            actions.append(_answer(state, conn, code.value))
            held_codes = state.refusals.held.setdefault(conn, {})
    left = held_codes.get(code.value)
    if left is not None and abuse_rules.held_refusal_answer_due(state.guard, conn, kind or code.value):
        actions.append(_answer(state, conn, code.value))
    elif left is not None:   # this call's frames still waiting to be named (a full ERROR may have gone)
        state.refusals.held_refs += min(len(left.refs), 1 + len(earlier))
    if not held_codes:
        state.refusals.held.pop(conn, None)
    return actions


def flush(state: RouterState, conn: int) -> list[Action]:
    """One ERROR per code for the frames of `conn` refused and not yet answered."""
    return [_answer(state, conn, code) for code in list(state.refusals.held.get(conn, {}))]


def tick(state: RouterState) -> list[Action]:
    """Answer the held refusals of each connection and code whose interval is over,
    longest waiting first, while the node's budget of answers lasts
    (abuse_rules.held_refusal_answer_due): a connection flooding refused frames costs one
    signed ERROR per code per interval, not one per tick (issue #15 item 4)."""
    guard = state.guard
    waiting = sorted((abuse_rules.last_answered_ms(guard, conn, code), conn, code)
                     for conn, codes in state.refusals.held.items() for code in codes)
    actions: list[Action] = []
    for _, conn, code in waiting:
        if not abuse_rules.refusal_answer_budget_left(guard):
            break
        if abuse_rules.held_refusal_answer_due(guard, conn, code):
            actions.append(_answer(state, conn, code))
    return actions


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
    return Send(send.targets, Envelope(type=frame.type, from_=frame.from_, to=frame.to, ts=frame.ts, payload=payload),
                charged_to=fairshare.sender_of(state.links.get(conn)) or "")
