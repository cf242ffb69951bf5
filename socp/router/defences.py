"""Where `core` consults the abuse rules of `abuse_rules` (SOCP §8, §13).

`abuse_rules` decides and answers problems, `(ErrorCode, detail)`; each hook here turns
one into actions: `None` lets `core` handle the frame as usual, a list replaces that
handling (an ERROR, a close, or nothing when the detail is empty). So `core` gains
one line per hook, and `abuse_rules` stays free of frames.
"""

from __future__ import annotations

from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode
from socp.protocol.frame_types import FrameType as T
from socp.ratelimit import retry_hint

from . import abuse_rules, fairshare
from .core_io import Action, FrameIn, Send
from .peer_links import PeerLink
from .replies import error_to, refuse_and_close
from .state import RouterState


def clock(state: RouterState) -> None:
    """Every event: the guard's buckets run on the router's clock."""
    state.guard.now_ms = state.now_ms


def _answer(state: RouterState, conn: int, problem: tuple[ErrorCode, str] | None) -> list[Action] | None:
    if problem is None:
        return None
    code, detail = problem
    return [error_to(state, conn, code, detail)] if detail else []


def user_hello(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action] | None:
    """Proof of possession for a registered id (abuse_rules.user_hello_problem)."""
    known = state.users.get(frame.from_)
    # Known here or from another server's advertisement: an id that signs must sign
    # on every node (issue #15 weakness 1).
    problem = abuse_rules.user_hello_problem(state.guard, frame, known is not None, resubmitted=link.hello_resubmitted)
    if problem is None:
        return None
    return refuse_and_close(state, link.conn, *problem)


def user_hello_done(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """The hello was handled: if it was accepted, and signed, the link has proved
    possession of the key now (LOGIN_REGISTER needs that), and the store learns it."""
    if not (link.is_user and link.peer_id == frame.from_):
        return []
    link.proved_key = bool(frame.sig)
    return list(abuse_rules.user_hello_accepted(state.guard, frame))


def server_hello(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action] | None:
    problem = abuse_rules.server_hello_problem(state.guard, state.seen, event.frame, event.payload_digest)
    if problem is None:
        return None
    return refuse_and_close(state, link.conn, *problem)


def user_frame(state: RouterState, link: PeerLink) -> list[Action] | None:
    """Per-user rate limit; the bucket outlives the connection (reconnecting resets nothing)."""
    return _answer(state, link.conn, abuse_rules.user_rate_problem(state.guard, link.peer_id))


# Frames whose cost is the node's signatures, which the fair share meters (fairshare.py).
SIGNED_CONTENT_TYPES = frozenset({T.MSG_DIRECT, T.MSG_PUBLIC_CHANNEL})


def user_content_admission(state: RouterState, link: PeerLink, frame_type: str) -> tuple[ErrorCode, str] | None:
    """The per-user rate limit for an acknowledged frame: every refusal comes back with
    its detail, since each refused frame is named (user_acks.py, refusals.py).

    A DM or public message past the user's own rate may take a token from the spare
    every user shares, as fast as the pool signs (abuse_rules.user_rate_problem): a lone
    sender on an idle node uses the whole capacity, and under contention the fair share
    below gives each sender its 1/n (issue #18: the fixed rate alone capped a lone
    sender at 100 frames/s while a core idled)."""
    shares = state.fair_share
    spare_per_s = shares.capacity_per_s if frame_type in SIGNED_CONTENT_TYPES else 0.0
    over = abuse_rules.user_rate_problem(state.guard, link.peer_id, every_time=True, spare_per_s=spare_per_s)
    if over is not None:
        return over
    # Then its fair share of the node's signatures (fairshare.py): refused before it is
    # acknowledged, so nothing admitted is ever dropped.
    retry_s = shares.admission_problem(fairshare.USER + link.peer_id)
    if retry_s is None:
        return None
    return ErrorCode.OVERLOADED, (f"the node's signatures are shared fairly between senders and yours are "
                                  f"queued for the next {shares.max_wait_ms} ms; " + retry_hint(retry_s))


def user_file_frame(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action] | None:
    if frame.type not in abuse_rules.FILE_TYPES:
        return None
    return _answer(state, link.conn, abuse_rules.file_problem(state.guard, link.peer_id, frame))


def server_frame(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action] | None:
    """Per-peer-server rate limit, then freshness of frames with effects (a stale one
    answered at most once per interval, like a user's)."""
    key = link.peer_id or f"conn:{link.conn}"
    refused = _answer(state, link.conn, abuse_rules.server_rate_problem(state.guard, key, event.frame.type))
    if refused is not None:
        return refused
    frame = event.frame
    problem = abuse_rules.server_frame_problem(state.guard, state.seen, frame, event.payload_digest)
    if (problem is not None and problem[1]
            and not abuse_rules.refusal_answer_due(state.guard, link.conn, abuse_rules.STALE)):
        return []
    if problem is None and frame.type in abuse_rules.FILE_TYPES:
        # Transfers relayed to us are bounded as our own users' are: a few open per
        # sender, forgotten when idle, chunks only inside one.
        problem = abuse_rules.file_problem(state.guard, abuse_rules.relayed_sender(frame.from_), frame)
    return _answer(state, link.conn, problem)


def refusal(state: RouterState, conn: int, kind: str, detail: str) -> list[Action]:
    """ERROR REPLAY for a stale or duplicate frame (abuse_rules.STALE, DUPLICATE), at most
    once per interval per connection (abuse_rules.refusal_answer_due); nothing for the rest."""
    if not abuse_rules.refusal_answer_due(state.guard, conn, kind):
        return []
    return [error_to(state, conn, abuse_rules.refusal_code(kind), detail)]


def error_affordable(state: RouterState, action: Action) -> bool:
    """May `action`, one of the answers to a frame, go? Each ERROR costs a signature:
    within budget per connection and per node only (spent here); anything else goes."""
    # An ERROR naming a msg_ref is always sent: a cumulative ACK would otherwise
    # cover the refused frame and its sender would never send it again (user_acks.py).
    return not (isinstance(action, Send) and action.frame.type == T.ERROR and len(action.targets) == 1
                and "msg_ref" not in action.frame.payload
                and not abuse_rules.error_allowed(state.guard, action.targets[0][0]))


def link_down(state: RouterState, conn: int, link: PeerLink | None) -> None:
    state.guard.forget_conn(conn)
    if link is not None and link.peer_id and state.local_users.get(link.peer_id) == conn:
        state.guard.forget_sender(link.peer_id)


def tick(state: RouterState) -> None:
    state.guard.tick(state.now_ms)
