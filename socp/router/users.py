"""What the router does for its local users (SOCP §7, §8, §11)."""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import replace
from typing import Any

from socp.ipc.link_state import LinkState
from socp.protocol import frames
from socp.protocol.crypto import normalise_public_key
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode, SocpError
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import BROADCAST, PUBLIC_CHANNEL
from socp.protocol.key_forms import KeyForm, form_of, in_form

from . import (
    directory,
    link_dialects,  # other teams' server-link habits (issue #14)
    offline,
    peer_channel,
    recovery,
    user_presence,
)
from .core_io import Action, Send, StoreWrite, send_one
from .peer_links import PeerLink
from .replies import error_to, refuse_and_close
from .state import (
    LOCAL,
    NO_ORIGIN,
    PARKED_LIMIT,
    PEER_BACKLOG_LIMIT,
    RESEND_LIMIT,
    Parked,
    PeerBacklog,
    PendingShare,
    Redial,
    RouterState,
    UserRecord,
    forget_older,
)

MAX_DISPLAY_NAME = 64
# G101's client says hello to "server@<host>:<port>", and reads a DM only if its
# payload names `from` and `to` (else it takes it for a public message).
G101_SERVER_PREFIX = "server@"


def hello(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """SOCP §7.1: admit a user, bind its key, tell the network, add it to the channel."""
    user_id = frame.from_
    if user_id in state.local_users:
        return refuse_and_close(state, link.conn, ErrorCode.NAME_IN_USE, "this user id is already connected here")
    elsewhere = state.user_locations.get(user_id)
    if elsewhere is not None and elsewhere in state.servers:
        # One identity per id across the mesh (issue #15 weakness 1).
        return refuse_and_close(state, link.conn, ErrorCode.NAME_IN_USE,
                                f"this user id is online at server {elsewhere}")
    try:
        pubkey = normalise_public_key(frame.payload["pubkey"])
    except SocpError as exc:  # the verifier checked it; this is a second line of defence
        return refuse_and_close(state, link.conn, ErrorCode.BAD_KEY, exc.detail)
    known = state.users.get(user_id)
    if known is not None and known.pubkey != pubkey:
        return refuse_and_close(
            state, link.conn, ErrorCode.NAME_IN_USE, "this user id is registered with another key"
        )
    display_name = _display_name(frame.payload.get("meta"))
    actions: list[Action] = []
    if known is None or known.home_server or known.display_name != display_name:
        state.users[user_id] = UserRecord(pubkey=pubkey, display_name=display_name)
        directory.record_changed(state, user_id)
        actions.append(
            StoreWrite("bind_user", (user_id, pubkey, {"display_name": display_name} if display_name else {}))
        )
    link.move(LinkState.USER)
    link.peer_id = user_id
    state.local_users[user_id] = link.conn
    state.user_locations[user_id] = LOCAL
    if frame.sig:
        state.hello_proofs[user_id] = frame.to_dict()  # carried in our adverts (advert_meta)
    else:
        state.hello_proofs.pop(user_id, None)
    if frame.to.startswith(G101_SERVER_PREFIX):
        state.sender_in_payload.add(link.conn)
        actions += peer_channel.g101_hello(
            state.peer_channel,
            state.me.server_id,
            state.now_ms,
            state.accounts.random_bytes,
            link.conn,
            user_id,
            pubkey,
        )
    form = form_of(frame.payload["pubkey"])
    if form is not KeyForm.DER_B64URL:  # keys are handed to this client in its own form
        state.key_forms[link.conn] = form
    user_presence.joined(state, user_id, link.conn, frame.payload.get("client"))
    actions += peer_channel.hello(
        state.peer_channel, state.me.server_id, state.now_ms, state.accounts.random_bytes, link.conn, user_id, pubkey
    )
    actions += _join_channel(state, user_id)
    actions += _deliver_pending_shares(state, user_id, link.conn)
    actions += _deliver_held(state, user_id)
    parked = state.parked.pop(user_id, None)
    if parked is not None:
        actions += [send_one(link.conn, frame) for frame in parked.frames]
    server_conns = server_targets(state, BROADCAST)
    if server_conns:
        advert = frames.user_advertise(state.me.server_id, state.now_ms, user_id, advert_meta(state, user_id))
        actions.append(Send(server_conns, advert))
        actions += link_dialects.user_joined(state, user_id)  # G45 peers look keys up in a directory
    return actions


def advert_meta(state: RouterState, user_id: str) -> dict[str, Any]:
    """Project decision (§6.2): `meta` carries the user's key and display fields."""
    record = state.users[user_id]
    meta: dict[str, Any] = {"pubkey": record.pubkey}
    if record.display_name:
        meta["display_name"] = record.display_name
    proof = state.hello_proofs.get(user_id)
    if proof is not None:
        # The user's own signed hello: its proof that this is now its home, and that
        # it signs (abuse_rules.home_move_problem, federation._advertise).
        meta["hello"] = proof
    return meta


def _display_name(meta: Any) -> str:
    name = meta.get("display_name") if isinstance(meta, dict) else None
    return name[:MAX_DISPLAY_NAME] if isinstance(name, str) else ""


def _join_channel(state: RouterState, user_id: str) -> list[Action]:
    """SOCP §7.3: every user is a member from the moment it joins, never removed.
    The join is announced by `announce_joins`, with any others of the same moment."""
    if user_id not in state.channel_members:
        state.channel_members.add(user_id)
        state.joins_waiting.append(user_id)
    return []


def announce_joins(state: RouterState) -> list[Action]:
    """PUBLIC_CHANNEL_ADD and PUBLIC_CHANNEL_UPDATED for the users who joined since the
    last announcement: one version bump and two signatures for all of them (`add` is a
    list), where one pair per user made a burst of hellos cost two signatures each.

    Servers learn every membership change; of our users only the newcomers are told.
    Telling every local user of every join would cost n deliveries per hello, n^2 in
    all (the bench saw 1,280 users admit only 10 hellos/s that way); clients learn who
    is online from /list and presence."""
    if not state.joins_waiting:
        return []
    joined, state.joins_waiting = state.joins_waiting, []
    previous = state.channel_version
    state.channel_version += 1
    actions: list[Action] = [StoreWrite("add_channel_member", (user_id, state.channel_version)) for user_id in joined]
    newcomers = tuple((state.local_users[user_id], BROADCAST) for user_id in joined if user_id in state.local_users)
    targets = newcomers + server_targets(state, BROADCAST)
    if targets:
        now, me = state.now_ms, state.me.server_id
        actions.append(Send(targets, frames.public_channel_add(me, now, joined, previous)))
        actions.append(Send(targets, frames.public_channel_updated(me, now, state.channel_version, [])))
    return actions


def _deliver_pending_shares(state: RouterState, user_id: str, conn: int) -> list[Action]:
    actions: list[Action] = []
    for sender, share in sorted(state.pending_shares.pop(user_id, {}).items()):
        relay = Envelope(
            type=T.PUBLIC_CHANNEL_KEY_SHARE.value,
            from_=state.me.server_id,
            to=BROADCAST,
            ts=share.ts,
            payload=share.payload,
        )
        actions.append(send_one(conn, relay))
        actions.append(StoreWrite("mark_share_delivered", (sender, user_id)))
    return actions


def _deliver_held(state: RouterState, user_id: str) -> list[Action]:
    """DMs kept while the user was away (offline.py), oldest first, then forgotten."""
    messages, forget = offline.take(state, user_id)
    actions: list[Action] = []
    for message in messages:
        public = offline.public_envelope(message)
        if public is not None:
            actions.append(send_one(state.local_users[user_id], public))
            continue
        actions += route_to_user(state, user_id, message["sender"], message["ts"], message["payload"],
                                 message["extra"], origin_conn=NO_ORIGIN)
    return actions + forget


def user_left(state: RouterState, user_id: str, park: bool = False) -> list[Action]:
    """The user's connection ended. If it was lost with the gateway (`park`), frames
    for the user wait a while for it to reconnect (acknowledged frames must not be
    lost to a crash); servers keep routing to us meanwhile."""
    conn = state.local_users.pop(user_id, None)
    if not park:
        state.hello_proofs.pop(user_id, None)
    if conn is not None:
        state.key_forms.pop(conn, None)
        state.presence_listeners.discard(conn)
        state.sender_in_payload.discard(conn)
        peer_channel.left(state.peer_channel, user_id, conn)
    if park:
        state.parked.setdefault(user_id, Parked(give_up_at_ms=state.now_ms + state.timing.park_ms))
        return []
    if state.user_locations.get(user_id) == LOCAL:
        del state.user_locations[user_id]
        user_presence.left(state, user_id)
    targets = server_targets(state, BROADCAST)
    if not targets:
        return []
    return [Send(targets, offline.remove_frame(state, user_id))]   # marked if held for here


# --- targets ----------------------------------------------------------------------------


def user_targets(state: RouterState, to: str, exclude_conn: int | None = None) -> tuple[tuple[int, str], ...]:
    return tuple((conn, to) for conn in state.local_users.values() if conn != exclude_conn)


def server_targets(state: RouterState, to: str, exclude_conn: int | None = None) -> tuple[tuple[int, str], ...]:
    return tuple((conn, to) for conn in state.servers.values() if conn != exclude_conn)


# --- requests and user content ---------------------------------------------------------


# Users looked up for one list answer: more than half a frame holds (a row with its
# details is at least ~180 bytes: 3,000 rows > frames.LIST_ANSWER_BYTES).
LIST_PAGE_CANDIDATES = 3_000


def list_response(state: RouterState, link: PeerLink, after: str = "") -> Send:
    """Interop table: sorted ids under `users` and `online_users`, plus `details`.
    One answer holds at most a frame's worth (frames.list_response); `after` (a
    LIST_REQUEST's payload.after, the `next` of the previous answer) pages on. Only
    the page's users are looked up: with 100,000 known users a detail row for
    each would cost the router ~0.1 s per request."""
    wanted = (user_id for user_id in state.user_locations if user_id > after) if after else iter(state.user_locations)
    page = heapq.nsmallest(LIST_PAGE_CANDIDATES + 1, wanted)
    more = len(page) > LIST_PAGE_CANDIDATES
    online = page[:LIST_PAGE_CANDIDATES]
    details = []
    for user_id in online:
        location = state.user_locations[user_id]
        record = state.users.get(user_id)
        details.append(
            {
                "user_id": user_id,
                "server_id": state.me.server_id if location == LOCAL else location,
                "display_name": record.display_name if record else "",
                "pubkey": record.pubkey if record else "",
            }
        )
    return send_one(link.conn, frames.list_response(state.me.server_id, link.peer_id, state.now_ms, online, details,
                                                    total=len(state.user_locations), more=more))


def tick(state: RouterState) -> list[Action]:
    """Give up on parked users who did not come back; forget old re-send windows."""
    for user_id, parked in list(state.parked.items()):
        if state.now_ms >= parked.give_up_at_ms:
            del state.parked[user_id]
            if state.user_locations.get(user_id) == LOCAL and user_id not in state.local_users:
                del state.user_locations[user_id]
    forget_older(state.sent_recently, state.now_ms - state.timing.resend_window_ms)
    return []


def _park(state: RouterState, target: str, frame: Envelope, origin_conn: int) -> list[Action]:
    parked = state.parked[target]
    if len(parked.frames) >= PARKED_LIMIT:
        return [error_to(state, origin_conn, ErrorCode.OVERLOADED, "the recipient is reconnecting; retry later")]
    parked.frames.append(frame)
    return []


def direct_message(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """SOCP §7.2 and §8 route_to_user."""
    extra = {"part": frame.payload["part"]} if "part" in frame.payload else {}
    return route_to_user(state, frame.to, frame.from_, frame.ts, frame.payload, extra, origin_conn=link.conn)


def route_to_user(
    state: RouterState,
    target: str,
    sender: str,
    ts: int,
    payload: dict[str, Any],
    extra: dict[str, Any],
    origin_conn: int,
) -> list[Action]:
    location = state.user_locations.get(target)
    if location is None:
        location = offline.holding_home(state, target)   # away; its home server holds for it
    me = state.me.server_id
    signed_ts = payload.get("ts")
    signed_ts = signed_ts if isinstance(signed_ts, int) and not isinstance(signed_ts, bool) else None
    # A sender that signed over its payload's own ts (G101's client) needs it carried
    # to the recipient, across servers too, or no client can check its content_sig.
    own_ts = signed_ts is not None and signed_ts != ts
    if location == LOCAL:
        conn = state.local_users.get(target)
        # Interop table: the sender's key in the encoding the recipient's client reads.
        form = state.key_forms.get(conn, KeyForm.DER_B64URL) if conn is not None else KeyForm.DER_B64URL
        sender_pub = in_form(payload.get("sender_pub", ""), form)
        deliver = frames.user_deliver(
            me, target, ts, payload["ciphertext"], sender, sender_pub, payload["content_sig"], **extra
        )
        # G101's client also reads who sent it from the payload.
        if conn in state.sender_in_payload or own_ts:
            # Who sent it as this node authenticated it, and the ts the sender signed.
            named = {"from": sender, "to": target, "ts": ts if signed_ts is None else signed_ts}
            deliver = replace(deliver, payload={**deliver.payload, **named})
        if conn is None:
            return _park(state, target, deliver, origin_conn)
        return [send_one(conn, deliver)]
    if location is not None:
        extra = {**extra, **link_dialects.deliver_extras(state, location, ts)}  # G17 reads orig_ts
        onward = frames.server_deliver(
            me,
            location,
            ts,
            target,
            payload["ciphertext"],
            sender,
            payload.get("sender_pub", ""),
            payload["content_sig"],
            **extra,
        )
        if own_ts:
            onward = replace(onward, payload={**onward.payload, "ts": signed_ts})
        return send_to_server(state, location, onward, origin_conn)
    if offline.has_account(state, target):   # away, but has an account here: keep it for them
        return offline.hold(state, target, sender, ts, payload, extra, origin_conn)
    return [error_to(state, origin_conn, ErrorCode.USER_NOT_FOUND, f"no route to user {target}")]


def send_to_server(state: RouterState, server_id: str, frame: Envelope, origin_conn: int) -> list[Action]:
    """Send on the link to `server_id`; while that link is being restored, keep the
    frame in its bounded backlog; past the bound, tell the sender (OVERLOADED). A
    live link the peer reads too slowly refuses the sender too (recovery.py, credit)."""
    conn = state.servers.get(server_id)
    if conn is not None:
        if origin_conn != NO_ORIGIN and recovery.congested(state, conn):
            return [error_to(state, origin_conn, ErrorCode.OVERLOADED, recovery.CONGESTED_DETAIL)]
        recent = state.sent_recently.get(server_id)
        if recent is None:
            recent = state.sent_recently[server_id] = deque(maxlen=RESEND_LIMIT)
        recent.append((state.now_ms, frame))  # re-sent if this link drops (federation._register_link)
        return [send_one(conn, frame)]
    backlog = state.backlogs.get(server_id)
    if backlog is None and server_id in state.pinned_servers:
        # Known but not linked yet: its presence reached us relayed (SOCP §6.2) before
        # its own link came up. Keep the frame for that link and dial it, as for a lost one.
        backlog = state.backlogs[server_id] = PeerBacklog(give_up_at_ms=state.now_ms + state.timing.link_timeout_ms)
        state.redials.setdefault(
            server_id, Redial(next_attempt_ms=state.now_ms, backoff_ms=state.timing.min_backoff_ms)
        )
    if backlog is None:
        return [error_to(state, origin_conn, ErrorCode.USER_NOT_FOUND, "no route to that user's server")]
    if len(backlog.frames) >= PEER_BACKLOG_LIMIT:
        return [
            error_to(
                state,
                origin_conn,
                ErrorCode.OVERLOADED,
                "the recipient's server is unreachable and its queue is full; retry later",
            )
        ]
    backlog.frames.append((origin_conn, frame))
    return []


def public_message(state: RouterState, frame: Envelope, exclude_conn: int) -> list[Action]:
    """Project decision (§7.3): the envelope travels unchanged; one signature per hop
    serves every recipient because it covers the payload only. A G17 copy addressed
    to one member goes to that member only (peer_channel.py)."""
    directed = peer_channel.directed_copy(state.peer_channel, frame)
    if directed is not None:
        return directed
    servers = server_targets(state, PUBLIC_CHANNEL, exclude_conn)
    keeping_up = tuple(target for target in servers if not recovery.congested(state, target[0]))
    actions: list[Action] = []
    if len(keeping_up) < len(servers):
        # The sender re-sends it whole: servers drop the copies they had (SOCP §8
        # seen_ids), clients those whose msg_ref they saw.
        actions.append(error_to(state, exclude_conn, ErrorCode.OVERLOADED, recovery.CONGESTED_DETAIL))
    local = user_targets(state, PUBLIC_CHANNEL, exclude_conn)
    g101: tuple[int, ...] = ()
    if frame.type == T.MSG_PUBLIC_CHANNEL:  # G101's members read posts (not files) as USER_DELIVER
        g101 = tuple(conn for conn, _ in local if conn in state.peer_channel.g101_members)
        local = tuple(target for target in local if target[0] not in state.peer_channel.g101_members)
    targets = local + keeping_up
    if targets:
        onward = Envelope(type=frame.type, from_=frame.from_, to=PUBLIC_CHANNEL, ts=frame.ts, payload=frame.payload)
        actions.insert(0, Send(targets, onward))
    actions += offline.hold_public(state, frame)   # for account holders who are away
    return actions + peer_channel.g101_copies(state.peer_channel, frame, g101)


def key_share(state: RouterState, frame: Envelope, origin_conn: int) -> list[Action]:
    """Route each share to its member's server, then to the member; keep shares for
    offline members of this node (§7.3, table channel_key_shares)."""
    origin = state.links.get(origin_conn)
    if origin is not None and origin.is_user:
        try:
            creator_key = normalise_public_key(frame.payload["creator_pub"])
        except SocpError as exc:
            return [error_to(state, origin_conn, ErrorCode.BAD_KEY, exc.detail)]
        if state.users[origin.peer_id].pubkey != creator_key:
            return [error_to(state, origin_conn, ErrorCode.FORBIDDEN, "creator_pub must be your own key")]
        creator = origin.peer_id
    else:
        creator = _user_by_key(state, frame.payload["creator_pub"])
    onward = Envelope(type=frame.type, from_=state.me.server_id, to=BROADCAST, ts=frame.ts, payload=frame.payload)
    conns: dict[int, None] = {}
    remote_later: dict[str, None] = {}
    actions: list[Action] = []
    for share in frame.payload["shares"]:
        member = share["member"]
        location = state.user_locations.get(member)
        if location == LOCAL and member in state.local_users:
            conns[state.local_users[member]] = None
        elif location is not None and location in state.servers:
            conns[state.servers[location]] = None
        elif location is not None and location in state.backlogs:
            remote_later.setdefault(location, None)
        else:
            record = state.users.get(member)
            if record is not None and not record.home_server:
                state.pending_shares.setdefault(member, {})[creator] = PendingShare(frame.payload, frame.ts)
                actions.append(
                    StoreWrite(
                        "save_key_share",
                        (creator, member, share["wrapped_public_channel_key"], frame.payload, frame.ts),
                    )
                )
    conns.pop(origin_conn, None)
    if conns:
        actions.insert(0, Send(tuple((conn, BROADCAST) for conn in conns), onward))
    for server_id in remote_later:
        actions += send_to_server(state, server_id, onward, origin_conn)
    return actions


def _user_by_key(state: RouterState, pubkey: str) -> str:
    try:
        wanted = normalise_public_key(pubkey)
    except SocpError:
        return "unknown"
    for user_id, record in state.users.items():
        if record.pubkey == wanted:
            return user_id
    return "key:" + wanted[-32:]


def file_frame(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """SOCP §7.4: routed in order, never decrypted; public mode fans out like §7.3."""
    if frame.to == PUBLIC_CHANNEL:
        return public_message(state, frame, exclude_conn=link.conn)
    return route_frame_to_user(state, frame, origin_conn=link.conn)


def route_frame_to_user(state: RouterState, frame: Envelope, origin_conn: int) -> list[Action]:
    """Carry a user frame with its envelope intact (from, to, ts) towards `to`."""
    location = state.user_locations.get(frame.to)
    onward = Envelope(type=frame.type, from_=frame.from_, to=frame.to, ts=frame.ts, payload=frame.payload)
    if location is None:
        if offline.has_account(state, frame.to):   # away, with an account here: keep it for them
            return offline.hold_file_frame(state, onward, origin_conn)
        location = offline.holding_home(state, frame.to)   # away; its home server holds for it
    if location == LOCAL:
        if frame.to not in state.local_users:
            return _park(state, frame.to, onward, origin_conn)
        return [send_one(state.local_users[frame.to], onward)]
    if location is not None:
        return send_to_server(state, location, onward, origin_conn)
    return [error_to(state, origin_conn, ErrorCode.USER_NOT_FOUND, f"no route to user {frame.to}")]
