"""Content handed to the gateway for a local user, kept a few seconds in case the
gateway dies before writing it.

A gateway killed mid-stream loses what it had not yet written to a user's socket
(and the kernel may discard a closed socket's send buffer). The senders were
acknowledged when the router handed the frames on (user_acks.py), and a re-send from the
sender or from a peer server's re-link is dropped as a duplicate (SOCP §8 seen_ids),
so nothing else would deliver them. The router therefore remembers what it sent to
each local user for `redeliver_window_ms` and, when the user's connection is lost
with the gateway, parks it again ahead of what was parked since (users.user_left):
the user gets it on reconnect. A copy may arrive twice; clients drop deliveries
whose msg_ref they have seen (README, "Acknowledgements and recovery").
"""

from __future__ import annotations

import dataclasses
from collections import deque

from socp.protocol.frame_types import FrameType as T

from .events import Action, Send
from .state import PARKED_LIMIT, RouterState, forget_older

# Frames to users that carry acknowledged content (SOCP §7.2-§7.4).
REDELIVERED_TYPES = frozenset({T.USER_DELIVER, T.MSG_PUBLIC_CHANNEL, T.FILE_START, T.FILE_CHUNK, T.FILE_END})


def record(state: RouterState, actions: list[Action]) -> None:
    """Remember each acknowledged-content frame sent to a local user's connection."""
    for action in actions:
        if not isinstance(action, Send) or action.frame.type not in REDELIVERED_TYPES:
            continue
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


def forget(state: RouterState, user_id: str) -> None:
    state.delivered_recently.pop(user_id, None)


def tick(state: RouterState) -> None:
    forget_older(state.delivered_recently, state.now_ms - state.timing.redeliver_window_ms)
