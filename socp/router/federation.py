"""Server-to-server rules (SOCP §6, §8 and the interop table).

Trust: a server's key is pinned to its id the first time it is learned from a
trusted source — the bootstrap file, a SERVER_WELCOME from a pinned introducer, or
a SERVER_ANNOUNCE relayed over a link to a pinned server. Every frame on a server
link was verified by the verifier pool with the key of the server at the other end
of that link (hop-by-hop signatures, as the public channel decision describes),
except presence gossip relayed with its origin's signature, which `_presence_refused`
checks with the key pinned for the origin (SOCP §6.2).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from socp.bootstrap_file import Introducer
from socp.ipc.link_state import LinkState
from socp.ipc.messages import CLOSE_GOING_AWAY, CLOSE_NORMAL
from socp.protocol import frames
from socp.protocol.crypto import decode_public_key, normalise_public_key
from socp.protocol.envelope import Envelope, parse_obj
from socp.protocol.errors import ErrorCode, SocpError
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import BROADCAST, PUBLIC_CHANNEL, is_peer_id, new_id
from socp.protocol.key_forms import KeyForm, form_of, in_form
from socp.protocol.signing import verify_transport

from . import abuse_rules, directory, key_waits, link_dialects, offline, stale_pins, users
from .core_io import Action, AdoptServerId, Close, Dial, FrameIn, Relay, Send, StoreWrite, send_one
from .peer_links import PeerLink
from .replies import error_to, refuse_and_close
from .state import (
    LOCAL,
    NO_ORIGIN,
    PEER_BACKLOG_LIMIT,
    DialPurpose,
    PeerBacklog,
    Redial,
    RouterState,
    ServerRecord,
    UserRecord,
)

log = logging.getLogger("socp.router")

RELAYED_FILES_LIMIT = 1_000    # files a G45 server relays to us, whose sender we keep meanwhile


# --- start-up and time -------------------------------------------------------------------


def start(state: RouterState) -> list[Action]:
    """Join through the first introducer that answers, and re-link the servers known
    from before a restart: with every introducer down, a restarted node would
    otherwise stay alone although its old peers are up."""
    if state.introducers:
        state.joined = False
        # After the join's first attempt: a quick welcome lists and dials them anyway.
        _queue_redials(state, state.now_ms + state.timing.min_backoff_ms)
        return _dial_introducer(state, 0)
    _queue_redials(state, state.now_ms)
    return tick(state)


def _queue_redials(state: RouterState, first_attempt_ms: int) -> None:
    for server_id in sorted(state.pinned_servers):
        if not stale_pins.dialable(state, server_id):
            continue   # pinned, but another server holds its old address (stale_pins.py)
        state.redials.setdefault(server_id, Redial(next_attempt_ms=first_attempt_ms,
                                                   backoff_ms=state.timing.min_backoff_ms))


def tick(state: RouterState) -> list[Action]:
    now, timing = state.now_ms, state.timing
    actions: list[Action] = []
    for link in list(state.links.values()):
        if link.state is not LinkState.JOINED and link.state is not LinkState.HELLO_SENT:
            continue
        # SOCP §6.4: 45 s of silence and the link is dead. A peer that never sent a
        # HEARTBEAT (G45 keeps its links alive with WebSocket pings only) is judged by
        # the WebSocket layer instead; one still joining is always timed.
        timed = link.heard_heartbeat or link.state is LinkState.HELLO_SENT
        if timed and now - link.last_heard_ms > timing.link_timeout_ms:
            actions.append(Close(link.conn, CLOSE_GOING_AWAY, "link timed out"))
            link.move(LinkState.CLOSING)
            state.linkbook.move(link.server_address, LinkState.LOST, now, "no frame for 45 s", link.peer_id)
            if link.peer_id and state.servers.get(link.peer_id) == link.conn:
                actions += server_link_lost(state, link.peer_id)
            continue
        if link.state is LinkState.JOINED and now - link.last_sent_ms >= timing.heartbeat_ms:
            link.last_sent_ms = now
            actions.append(send_one(link.conn, frames.heartbeat(state.me.server_id, link.peer_id, now)))
    for server_id, backlog in list(state.backlogs.items()):
        if now >= backlog.give_up_at_ms and server_id not in state.servers:
            actions += _forget_users_of(state, server_id)
    for server_id, redial in list(state.redials.items()):
        if server_id in state.servers or _dialing(state, server_id) or now < redial.next_attempt_ms:
            continue
        if redial.since_ms is None:
            redial.since_ms = now
        elif now - redial.since_ms >= timing.give_up_ms:
            _give_up_dialling(state, server_id, redial)
            continue
        redial.attempts += 1
        redial.next_attempt_ms = now + redial.backoff_ms
        redial.backoff_ms = min(redial.backoff_ms * 2, timing.max_backoff_ms)
        actions += _dial_server(state, server_id)
    if not state.joined and not _joining(state) and now >= state.join_retry_at_ms:
        actions += _dial_introducer(state, 0)
    return actions


def _give_up_dialling(state: RouterState, server_id: str, redial: Redial) -> None:
    """Stop dialling a server that has not answered for `give_up_ms`. It links again
    when it dials us, when another server announces it, or at our next start."""
    del state.redials[server_id]
    minutes = (state.now_ms - (redial.since_ms or state.now_ms)) // 60_000
    reason = f"not reached in {redial.attempts} attempts over {minutes} min: no longer dialled"
    host_port = state.server_addrs.get(server_id)
    address = f"{host_port[0]}:{host_port[1]}" if host_port else "address unknown"
    log.warning("server %s (%s): %s", server_id, address, reason)
    if host_port is not None:
        state.linkbook.move(address, LinkState.LOST, state.now_ms, reason, server_id)


def _dialing(state: RouterState, server_id: str) -> bool:
    return any(p.kind == "link" and p.server_id == server_id for p in state.dialing.values())


def _joining(state: RouterState) -> bool:
    return any(p.kind == "join" for p in state.dialing.values())


def _new_dial(state: RouterState, purpose: DialPurpose, host: str, port: int, key: str, peer_id: str,
              unsigned_ok: bool = False) -> Dial:
    conn = state.next_dial_conn
    state.next_dial_conn += 1
    address = f"{host}:{port}"
    state.links[conn] = PeerLink(conn=conn, state=LinkState.DIALLING, peer_id=peer_id,
                             last_heard_ms=state.now_ms, dialled_by_us=True, server_address=address)
    state.dialing[conn] = purpose
    state.linkbook.move(address, LinkState.DIALLING, state.now_ms, peer_id=peer_id)
    return Dial(conn, host, port, key, unsigned_ok)


def _dial_introducer(state: RouterState, index: int) -> list[Action]:
    if index >= len(state.introducers):
        # Every introducer failed: work alone for now and try the list again later.
        state.join_retry_at_ms = state.now_ms + state.timing.max_backoff_ms // 2
        return []
    entry = state.introducers[index]
    return [_new_dial(state, DialPurpose("join", introducer=index), entry.host, entry.port, entry.pubkey, "",
                      entry.unsigned_link)]


def _dial_server(state: RouterState, server_id: str) -> list[Action]:
    record = state.pinned_servers.get(server_id)
    if record is None or server_id == state.me.server_id or not stale_pins.dialable(state, server_id):
        return []
    host, port = state.server_addrs.get(server_id, (record.host, record.port))
    # A peer that refused our SERVER_HELLO_LINK (G45, G17 know only joins) is joined again.
    kind = "rejoin" if server_id in state.rejoin else "link"
    return [_new_dial(state, DialPurpose(kind, server_id=server_id), host, port, record.pubkey, server_id,
                      server_id in state.unsigned_servers)]


def _introducer_of(state: RouterState, purpose: DialPurpose | None) -> Introducer | None:
    """Where a join went, with the key pinned for it."""
    if purpose is None:
        return None
    if purpose.kind == "join":
        return state.introducers[purpose.introducer]
    record = state.pinned_servers.get(purpose.server_id)
    if purpose.kind != "rejoin" or record is None:
        return None
    return Introducer(host=record.host, port=record.port, pubkey=record.pubkey,
                      unsigned_link=purpose.server_id in state.unsigned_servers,
                      key_form=state.server_key_forms.get(purpose.server_id, KeyForm.DER_B64URL),
                      g101_link=link_dialects.speaks_g101(state, record.pubkey))


def link_up(state: RouterState, conn: int) -> list[Action]:
    """A link we dialled is open: say who we are first."""
    purpose = state.dialing.get(conn)
    link = state.links.get(conn)
    if purpose is None or link is None or link.state is not LinkState.DIALLING:
        return []
    if purpose.kind != "join" and not stale_pins.dialable(state, purpose.server_id):
        # Retired while the dial was under way (stale_pins.py): another server holds
        # that address now. Closed before a word; dial_failed sees it is not dialled again.
        link.move(LinkState.CLOSING)
        return [Close(conn, CLOSE_NORMAL, "that server no longer listens there")]
    me = state.me
    link.last_heard_ms = state.now_ms
    entry = _introducer_of(state, purpose)
    if entry is not None:
        link.move(LinkState.HELLO_SENT)
        # Our key in the form the operator's entry used: G56 reads only base64url(PEM).
        hello = frames.server_hello_join(me.server_id, f"{entry.host}:{entry.port}", state.now_ms,
                                         me.host, me.port, in_form(me.pubkey, entry.key_form))
        # A G101 peer checks a hello only over its whole envelope (bootstrap `g101_link`).
        return [Send(((conn, hello.to),), hello, whole_envelope=entry.g101_link)]
    del state.dialing[conn]
    form = state.server_key_forms.get(purpose.server_id, KeyForm.DER_B64URL)
    our_key = in_form(me.pubkey, form)
    hello = frames.server_hello_link(me.server_id, purpose.server_id, state.now_ms, me.host, me.port, our_key)
    actions: list[Action] = [send_one(conn, hello)]
    link.move(LinkState.JOINED)
    actions += _register_link(state, link, purpose.server_id)
    return actions


def dial_failed(state: RouterState, conn: int, link: PeerLink | None = None, reason: str = "") -> list[Action]:
    """A dialled link closed before it was established (or a join went unanswered)."""
    purpose = state.dialing.pop(conn, None)
    if purpose is None:
        return []
    if link is not None:
        _book_down(state, link, reason)
    if purpose.kind == "join" and not state.joined:
        return _dial_introducer(state, purpose.introducer + 1)
    if purpose.kind in ("link", "rejoin") and stale_pins.dialable(state, purpose.server_id):
        state.redials.setdefault(purpose.server_id, Redial(state.now_ms, state.timing.min_backoff_ms))
    return []


def link_closed(state: RouterState, link: PeerLink, reason: str) -> None:
    """A server link went down (after it was established). A peer that closed our
    SERVER_HELLO_LINK without a word (G45, G17 only know joins) is joined next time."""
    if link.dialled_by_us and not link.heard_peer and link.peer_id in state.pinned_servers:
        state.rejoin.add(link.peer_id)
    if link.peer_id and state.servers.get(link.peer_id) == link.conn:
        spare = next((other for other in state.links.values() if other.conn != link.conn
                      and other.peer_id == link.peer_id and other.state is LinkState.JOINED), None)
        if spare is not None:   # a G45 peer's second link (see _register_link) carries on
            state.servers[link.peer_id] = spare.conn
            return
    _book_down(state, link, reason)


def _book_down(state: RouterState, link: PeerLink, reason: str) -> None:
    entry = state.linkbook.entries.get(link.server_address)
    if entry is None or not link.server_address:
        return
    if link.peer_id and state.servers.get(link.peer_id) not in (None, link.conn):
        return  # a duplicate closed; the link the row stands for is up
    if entry.state is LinkState.REFUSED or stale_pins.row_held_by_another(state, link):
        return  # the refusal says more than the close that followed it; or the row is another's live link
    state.linkbook.move(link.server_address, LinkState.LOST, state.now_ms, reason or "link closed", link.peer_id)


# --- links ------------------------------------------------------------------------------


def _register_link(state: RouterState, link: PeerLink, server_id: str) -> list[Action]:
    """Make `link` the link to `server_id`, resolving a duplicate link deterministically:
    keep the one dialled by the server with the smaller id (both ends agree)."""
    existing_conn = state.servers.get(server_id)
    existing = state.links.get(existing_conn) if existing_conn is not None else None
    actions: list[Action] = []
    if (existing is not None and existing.conn != link.conn and existing.state is LinkState.JOINED
            and state.linkbook.dialect_of(link.server_address)):
        # Another team's server does not know our rule for which duplicate stays, and
        # closing "its" link hurts: G45 then forgets our key and drops every frame of
        # ours, G17 has no link left to send us anything on. Keep both open; the newer
        # carries our frames (link_closed falls back on the other).
        existing = None
    if existing is not None and existing.conn != link.conn and existing.state is LinkState.JOINED:
        preferred_dialer = min(state.me.server_id, server_id)
        existing_dialer = state.me.server_id if existing.dialled_by_us else server_id
        new_dialer = state.me.server_id if link.dialled_by_us else server_id
        if existing_dialer != new_dialer and existing_dialer == preferred_dialer:
            _supersede(link, server_id)
            # A peer that opens a second link may have lost its tables (a restarted
            # router): tell it our users again over the link we keep.
            return [Close(link.conn, CLOSE_NORMAL, "duplicate link")] + _send_presence(state, existing.conn)
        _supersede(existing, server_id)
        actions.append(Close(existing.conn, CLOSE_NORMAL, "duplicate link"))
    link.peer_id = server_id
    state.servers[server_id] = link.conn
    state.redials.pop(server_id, None)
    if link.server_address:
        state.linkbook.move(link.server_address, LinkState.JOINED, state.now_ms, peer_id=server_id)
    actions += _send_presence(state, link.conn)
    if state.linkbook.dialect_of(link.server_address) == link_dialects.G45:
        actions += link_dialects.register_users(state, link.conn, server_id, sorted(state.local_users))
    # Frames sent on the lost (or replaced) link just before it went may never have been
    # written, nor those kept while no link was up: send them on this one (the peer's
    # duplicate cache drops the ones it had). They count as sent now, on this link: it
    # may be replaced in turn before it writes them (a restarted peer dials twice and
    # one of the two links is closed at once), and then they must go again.
    again: list[Envelope] = []
    recent = state.sent_recently.pop(server_id, None)
    if recent:
        horizon = state.now_ms - state.timing.resend_window_ms
        again += [frame for sent_ms, frame in recent if sent_ms >= horizon]
    backlog = state.backlogs.pop(server_id, None)
    if backlog is not None:
        again += [frame for _, frame in backlog.frames]
    for frame in again:
        actions += users.send_to_server(state, server_id, frame, NO_ORIGIN)
    return actions


def relink(state: RouterState, server_id: str) -> list[Action]:
    """Open a second link to a server we are already linked to, so that it tells us
    its users again (a restarted router lost them); one of the two links is kept."""
    if _dialing(state, server_id):
        return []
    return _dial_server(state, server_id)


def _supersede(link: PeerLink, server_id: str) -> None:
    """Close a duplicate link, but still accept what the peer sent on it before it
    saw our close: those frames are authenticated and may carry queued messages."""
    link.peer_id = server_id
    link.superseded = True
    link.move(LinkState.CLOSING)


# meta field of the adverts a server sends a newly linked server about its own users:
# what every other server linked to it already has, so the receiver does not relay it.
SNAPSHOT_MARK = "snapshot"


def _send_presence(state: RouterState, conn: int) -> list[Action]:
    """A newly linked server learns every user this node hosts (§6.2): one
    USER_ADVERTISE per user, so no frame grows with the number of users (a single
    snapshot frame of 10,000 users with their keys would be ~15 MB, over the 1 MiB
    frame limit). Marked `snapshot`: the receiver keeps them to itself (_gossip_on)."""
    actions: list[Action] = []
    for user_id in sorted(state.local_users):
        meta = {**users.advert_meta(state, user_id), SNAPSHOT_MARK: True}
        advert = frames.user_advertise(state.me.server_id, state.now_ms, user_id, meta)
        actions.append(Send(((conn, BROADCAST),), advert))
    # Users away who have an account here: the peer routes their DMs to us (offline.py).
    # Only to peers that look like socp: other teams' servers have no use for the marks.
    link = state.links.get(conn)
    if link is not None and not state.linkbook.dialect_of(link.server_address):
        actions += [Send(((conn, BROADCAST),), mark) for mark in offline.away_marks(state)]
    return actions


def server_link_lost(state: RouterState, server_id: str, gateway_restarted: bool = False) -> list[Action]:
    """Try to get the lost server back with backoff. Its users stay routable for one
    link timeout: frames for them wait in a bounded backlog (SOCP §6.4: presence is
    corrected lazily), and are answered USER_NOT_FOUND if the server stays away.

    Frames sent on the link just before it went may never have been written; they go
    first in the backlog, so they are sent again however long the re-link takes (the
    peer's duplicate cache drops those it had). A restarted gateway is heard of late,
    hence the longer look back then."""
    state.servers.pop(server_id, None)
    if server_id not in state.pinned_servers:
        state.sent_recently.pop(server_id, None)
        return _forget_users_of(state, server_id)
    actions = stale_pins.retire_if_address_taken(state, server_id)
    if stale_pins.dialable(state, server_id):
        state.redials.setdefault(server_id, Redial(state.now_ms + state.timing.min_backoff_ms,
                                                    state.timing.min_backoff_ms * 2))
    backlog = state.backlogs.setdefault(server_id,
                                        PeerBacklog(give_up_at_ms=state.now_ms + state.timing.link_timeout_ms))
    recent = state.sent_recently.pop(server_id, None)
    window = state.timing.redeliver_window_ms if gateway_restarted else state.timing.resend_window_ms
    if recent:
        horizon = state.now_ms - window
        again = [(NO_ORIGIN, frame) for sent_ms, frame in recent if sent_ms >= horizon]
        room = PEER_BACKLOG_LIMIT - len(backlog.frames)
        if again and room > 0:
            backlog.frames[:0] = again[-room:]
    return actions


def _forget_users_of(state: RouterState, server_id: str) -> list[Action]:
    for user_id, location in list(state.user_locations.items()):
        if location == server_id:
            del state.user_locations[user_id]
    backlog = state.backlogs.pop(server_id, None)
    if backlog is None:
        return []
    return [error_to(state, origin, ErrorCode.USER_NOT_FOUND, f"{frame.type} not delivered: server unreachable")
            for origin, frame in backlog.frames if origin in state.links]


def _pin(state: RouterState, server_id: str, pubkey: str, host: str, port: int) -> tuple[bool, list[Action]]:
    """Pin a server key learned from a trusted source; False if it contradicts a pin."""
    if server_id == state.me.server_id:
        return False, []
    try:
        key = normalise_public_key(pubkey)
    except SocpError:
        return False, []
    if key == state.me.pubkey:
        # Ourselves under another name (G45 announces us as link_dialects.g45_alias):
        # never a server to dial.
        return False, []
    pinned = state.pinned_servers.get(server_id)
    if pinned is not None and pinned.pubkey != key:
        return False, []
    state.pinned_servers[server_id] = ServerRecord(pubkey=key, host=host, port=port)
    state.server_addrs[server_id] = (host, port)
    if pinned is None:
        return True, [StoreWrite("pin_server", (server_id, key, host, port))]
    if (pinned.host, pinned.port) != (host, port):
        return True, [StoreWrite("update_server_addr", (server_id, host, port))]
    return True, []


# --- opening frames from servers ----------------------------------------------------------


def server_hello(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    payload = frame.payload
    if not all(name in payload for name in ("host", "port", "pubkey")):
        # A SERVER_ANNOUNCE may lack them (G17's user snapshot); it cannot open a link.
        return refuse_server(state, link, frame, ErrorCode.MALFORMED, "a server hello needs host, port and pubkey")
    link.server_address = f"{payload['host']}:{payload['port']}"
    try:
        own_key = normalise_public_key(payload["pubkey"]) == state.me.pubkey
    except SocpError:
        own_key = False
    if own_key:   # a dial that reached ourselves (under some other name): never link, never adopt an id
        return refuse_server(state, link, frame, ErrorCode.FORBIDDEN, "that is this server's own key")
    link_dialects.record(state, link.server_address, link_dialects.of_opening(frame))
    if frame.type == T.SERVER_HELLO_JOIN:
        return _join_request(state, link, frame)
    return _link_request(state, link, frame)


def refuse_server(state: RouterState, link: PeerLink, frame: Envelope | None, code: ErrorCode,
                  detail: str) -> list[Action]:
    """Refuse a server's hello, and say so in the link book (logged once per link)."""
    what = frame.type if frame is not None else "server hello"
    address = link.server_address or "incoming"
    state.linkbook.move(address, LinkState.REFUSED, state.now_ms, f"we refused its {what}: {code.value}: {detail}",
                        frame.from_ if frame is not None else "")
    return refuse_and_close(state, link.conn, code, detail)


def welcome_rejected(state: RouterState, link: PeerLink, frame_type: str, code: ErrorCode, detail: str) -> list[Action]:
    """The verifiers refused the answer to our join (G56's unsigned SERVER_WELCOME):
    the join failed; say why, with the way out when it is a missing signature."""
    hint = ""
    if code is ErrorCode.INVALID_SIG:
        hint = " (if this peer does not sign its link frames, its bootstrap entry may say `unsigned_link: true`)"
    if stale_pins.row_held_by_another(state, link):   # a retired id's late dial: the row is the new server's
        return refuse_and_close(state, link.conn, code, detail)
    state.linkbook.move(link.server_address, LinkState.REFUSED, state.now_ms,
                        f"we refused its {frame_type or 'answer'}: {code.value}: {detail}{hint}", link.peer_id)
    return refuse_and_close(state, link.conn, code, detail)


def hello_rejected(state: RouterState, link: PeerLink, frame_type: str, code: ErrorCode, detail: str) -> None:
    """The verifiers refused a server's opening frame (unsigned, bad key): book it."""
    state.linkbook.move("incoming", LinkState.REFUSED, state.now_ms,
                        f"we refused its {frame_type}: {code.value}: {detail}")


def _join_request(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """Introducer side of §6.1: assign an id, welcome, vouch for the newcomer."""
    payload = frame.payload
    try:
        key = normalise_public_key(payload["pubkey"])
    except SocpError as exc:
        return refuse_server(state, link, frame, ErrorCode.BAD_KEY, exc.detail)
    requested = frame.from_
    pinned = state.pinned_servers.get(requested)
    # G17 asks for an id by joining as "auto".
    taken = (requested == state.me.server_id or requested == "auto"
             or (pinned is not None and pinned.pubkey != key))
    assigned = new_id() if taken else requested
    _, actions = _pin(state, assigned, key, payload["host"], payload["port"])
    state.server_key_forms[assigned] = form_of(payload["pubkey"])
    link.move(LinkState.JOINED)
    others = [
        {"server_id": sid, "host": state.pinned_servers[sid].host, "port": state.pinned_servers[sid].port,
         "pubkey": state.pinned_servers[sid].pubkey}
        for sid in sorted(state.servers) if sid != assigned and sid in state.pinned_servers
    ]
    me = state.me
    welcome = frames.server_welcome(me.server_id, assigned, state.now_ms, assigned, others,
                                    introducer=(me.host, me.port, me.pubkey))
    # A G101 peer checks a welcome only over its whole envelope (bootstrap `g101_link`).
    actions.append(Send(((link.conn, welcome.to),), welcome, whole_envelope=link_dialects.speaks_g101(state, key)))
    # Vouch for the newcomer to every other server, so they accept its link.
    vouch = frames.server_announce(assigned, state.now_ms, payload["host"], payload["port"], key)
    targets = users.server_targets(state, BROADCAST)
    if targets:
        actions.append(Send(targets, vouch))
    actions += _register_link(state, link, assigned)
    return actions


def _link_request(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """SERVER_HELLO_LINK (or SERVER_ANNOUNCE) opening a link to us: pinned servers only."""
    server_id, payload = frame.from_, frame.payload
    pinned = state.pinned_servers.get(server_id)
    if pinned is None:
        return refuse_server(state, link, frame, ErrorCode.FORBIDDEN,
                             "unknown server: join the network through an introducer first")
    try:
        key = normalise_public_key(payload["pubkey"])
    except SocpError as exc:
        return refuse_server(state, link, frame, ErrorCode.BAD_KEY, exc.detail)
    if key != pinned.pubkey:
        return refuse_server(state, link, frame, ErrorCode.INVALID_SIG, "this server id is pinned to another key")
    _, actions = _pin(state, server_id, key, payload["host"], payload["port"])
    link.move(LinkState.JOINED)
    return actions + _register_link(state, link, server_id)


# --- frames on established server links -------------------------------------------------


def from_server(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    actions = _from_server(state, link, event)
    if link.state is LinkState.JOINED and link.heard_peer and not link.address_proved and link.peer_id:
        # Its first verified frame on a link at its address: older ids pinned there are
        # no longer dialled (stale_pins.py; G17 is a new server at every start).
        link.address_proved = True
        actions = stale_pins.retire_others_at(state, link) + actions
    return actions


def _from_server(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    frame = event.frame
    if frame.type != T.ERROR:
        link.heard_peer = True
    if link.state is LinkState.HELLO_SENT:
        if frame.type == T.SERVER_WELCOME:
            return _welcomed(state, link, frame)
        if frame.type == T.ERROR:
            code, detail = frames.error_text(frame)
            state.linkbook.move(link.server_address, LinkState.REFUSED, state.now_ms,
                                f"it refused our join: {code}: {detail}", frame.from_)
            return []
        state.linkbook.dropped(link.server_address, f"{frame.type} before its SERVER_WELCOME", state.now_ms)
        return [error_to(state, link.conn, ErrorCode.MALFORMED, "expected SERVER_WELCOME")]
    if link.state is not LinkState.JOINED and not link.superseded:
        return []
    if link.peer_id in state.redials:
        del state.redials[link.peer_id]
    if frame.type == T.HEARTBEAT:
        link.heard_heartbeat = True
    if frame.type == T.ERROR and link.dialled_by_us and not link.heard_peer:
        # Its answer to our SERVER_HELLO_LINK (G45: UNKNOWN_TYPE): join it next time.
        code, detail = frames.error_text(frame)
        state.rejoin.add(link.peer_id)
        state.linkbook.move(link.server_address, LinkState.REFUSED, state.now_ms,
                            f"it refused our SERVER_HELLO_LINK: {code}: {detail}", link.peer_id)
        return []
    handler = _SERVER_HANDLERS.get(frame.type)
    if frame.type == T.ERROR:
        return offline.home_refused(state, link.peer_id, frame)   # else nothing for us to do
    if handler is None:
        if frame.type in (T.HEARTBEAT, T.ACK, T.ERROR, T.PUBLIC_CHANNEL_UPDATED, T.SERVER_HELLO_LINK,
                          T.LIST_RESPONSE, T.CTRL_CLOSE, T.SERVER_WELCOME):
            return []  # liveness only, or nothing for us to do
        state.linkbook.dropped(link.server_address, f"{frame.type} is not accepted from a server", state.now_ms)
        return [error_to(state, link.conn, ErrorCode.FORBIDDEN, f"{frame.type} is not accepted from a server")]
    return handler(state, link, event)


def _welcomed(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """Joiner side of §6.1: adopt the id, pin and dial every listed server, announce."""
    purpose = state.dialing.pop(link.conn, None)
    actions: list[Action] = []
    # Interop table: no assigned_id (or null) means "keep the id you asked for".
    assigned = frame.payload.get("assigned_id") or state.me.server_id
    if assigned != state.me.server_id:
        state.me.server_id = assigned
        actions.append(AdoptServerId(assigned))
    introducer = _introducer_of(state, purpose)
    introducer_id = frame.from_
    if introducer is not None:
        _, pin_actions = _pin(state, introducer_id, introducer.pubkey, introducer.host, introducer.port)
        actions += pin_actions
        if introducer.unsigned_link:
            state.unsigned_servers.add(introducer_id)
        state.server_key_forms[introducer_id] = introducer.key_form
    link_dialects.record(state, link.server_address, link_dialects.of_opening(frame) or
                         (link_dialects.G56 if introducer is not None and introducer.unsigned_link else ""))
    link.move(LinkState.JOINED)
    state.joined = True
    actions += _register_link(state, link, introducer_id)
    if link_dialects.goes_by_alias(state, link.server_address):
        # Join once more under the name G45 routes to (link_dialects.g45_alias, opted in
        # by the bootstrap entry): it registers the link and our key again under it.
        me = state.me
        actions.append(send_one(link.conn, frames.server_hello_join(me.server_id, introducer_id, state.now_ms,
                                                                   me.host, me.port, me.pubkey)))
    snapshot = frame.payload.get("snapshot")
    if isinstance(snapshot, dict) and isinstance(snapshot.get("user_locations"), dict):
        actions += _users_at(state, link, snapshot["user_locations"])   # G17
    listed = frames.welcome_servers(frame)
    for entry in listed:
        trusted, pin_actions = _pin(state, entry["server_id"], entry["pubkey"], entry["host"], entry["port"])
        actions += pin_actions
    me = state.me
    # Our key as the operator's entry wrote the peer's: G56 replaces the key it pinned
    # for us with the announced one, and reads only base64url(PEM).
    form = introducer.key_form if introducer is not None else KeyForm.DER_B64URL
    our_key = in_form(me.pubkey, form)
    announce = frames.server_announce(me.server_id, state.now_ms, me.host, me.port, our_key)
    actions.append(send_one(link.conn, announce))
    for server_id in sorted(state.pinned_servers):
        if server_id not in state.servers and server_id != introducer_id and not _dialing(state, server_id):
            actions += _dial_server(state, server_id)
    return actions


def _announce(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    frame, payload = event.frame, event.frame.payload
    actions: list[Action] = []
    if isinstance(payload.get("user_locations"), dict) and frame.from_ == link.peer_id:
        actions += _users_at(state, link, payload["user_locations"])   # G17's snapshot of its users
    # G45 names the server it vouches for in payload.server_id; ours in `from`.
    subject = payload.get("server_id") or frame.from_
    if subject == state.me.server_id or not all(name in payload for name in ("host", "port", "pubkey")):
        return actions
    # Either the peer's own announcement, or one it vouches for (relayed over its link).
    _, pin_actions = _pin(state, subject, payload["pubkey"], payload["host"], payload["port"])
    return actions + pin_actions


def _users_at(state: RouterState, link: PeerLink, user_locations: dict[str, Any]) -> list[Action]:
    """G17 lists its users as {user_id: {"server_id", "ts"}} in its welcome and in a
    SERVER_ANNOUNCE, without keys. Only what it says of its own users is taken (as
    its USER_ADVERTISE would be); their keys are then asked for."""
    actions: list[Action] = []
    for user_id, where in sorted(user_locations.items())[:1000]:
        server_id = where.get("server_id") if isinstance(where, dict) else where
        if server_id != link.peer_id or not isinstance(user_id, str) or not is_peer_id(user_id):
            continue
        current = state.user_locations.get(user_id)
        if current == LOCAL or (current is not None and current != server_id and current in state.servers):
            continue
        if abuse_rules.presence_problem(state.guard, server_id, state.user_locations.count_at(server_id),
                                   new_user=current != server_id) is not None:
            break
        if user_id not in state.users:
            state.users[user_id] = UserRecord(pubkey="", home_server=server_id)
        state.user_locations[user_id] = server_id
        state.channel_members.add(user_id)
        actions += key_waits.ask_key(state, link, user_id)
    return actions


def _key_question(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    """A linked server asks for a user's key (G45 asks its master with DB_GET_USER, G17
    with PUBKEY_REQUEST): the key we hold for that user, in the asker's shape."""
    frame = event.frame
    wanted = frame.payload["user_id"]
    record = state.users.get(wanted)
    pubkey = record.pubkey if record is not None and record.pubkey else None
    me, now = state.me.server_id, state.now_ms
    if frame.type == T.DB_GET_USER:
        answer = frames.db_user(me, link.peer_id, now, wanted, pubkey, str(frame.payload.get("req_id") or wanted))
    else:
        answer = frames.pubkey_response(me, link.peer_id, now, wanted, pubkey)
    return [send_one(link.conn, answer)]


def _key_answer(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    """DB_USER / PUBKEY_RESPONSE (answers we asked for) or DB_REGISTER (G45 telling us
    one of its users' keys): taken only from the server the user is at, for a user
    with no key yet (a user id stays bound to its first key)."""
    user_id, pubkey = link_dialects.key_answer(event.frame)
    state.key_lookups.pop(user_id, None)
    actions = _bind_answered_key(state, link, user_id, pubkey)
    if state.user_locations.get(user_id) == link.peer_id:
        actions += key_waits.answer_held(state, user_id)   # local look-ups waiting on the user's server
    return actions


def _bind_answered_key(state: RouterState, link: PeerLink, user_id: str, pubkey: str) -> list[Action]:
    if not pubkey or state.user_locations.get(user_id) != link.peer_id:
        return []
    known = state.users.get(user_id)
    if known is not None and known.pubkey:
        return []
    try:
        key = normalise_public_key(pubkey)
    except SocpError:
        return [error_to(state, link.conn, ErrorCode.BAD_KEY, "user key is not RSA-4096")]
    state.users[user_id] = UserRecord(pubkey=key, display_name=known.display_name if known else "",
                                      home_server=link.peer_id)
    return directory.remote_user_learned(state, user_id, known)


def _presence_refused(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action] | None:
    """Who may tell us where a server's users are (SOCP §6.2 and its project decision):
    the server itself over its own link, or any linked server relaying that server's
    original frame unchanged, whose signature then verifies with the key pinned for
    the server the payload names. None if the frame may be applied."""
    frame = event.frame
    server_id = frame.payload["server_id"]
    if frame.from_ != server_id:
        return [error_to(state, link.conn, ErrorCode.FORBIDDEN, "a server may only advertise its own users")]
    if event.link_signed:
        if server_id != link.peer_id:
            # Re-signed by the relay: anyone linked could write that. A relay must
            # forward the original signed frame.
            return [error_to(state, link.conn, ErrorCode.FORBIDDEN,
                             "relay presence of another server unchanged, with its signature")]
        return None
    if server_id == state.me.server_id:
        return []   # our own gossip coming back: nothing to learn
    pinned = state.pinned_servers.get(server_id)
    if pinned is None or server_id == link.peer_id:
        return [error_to(state, link.conn, ErrorCode.INVALID_SIG,
                         f"{frame.type} is not signed by the server it names")]
    # The one signature the router checks itself: only it knows the key pinned for the
    # server a payload names, and a verify (~0.1 ms) for a rare frame costs less than a
    # round trip through the verifier pool would.
    try:
        verify_transport(decode_public_key(pinned.pubkey), frame)
    except SocpError:
        return [error_to(state, link.conn, ErrorCode.INVALID_SIG,
                         f"{frame.type} is not signed by the server it names")]
    return None


def _gossip_on(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """SOCP §6.2 step 3: pass presence that changed our tables on to every other
    linked server, as the original signed frame, so a server that has no link to the
    origin still learns it. Each server handles a frame once (`state.seen`), so a
    full mesh forwards each change at most once per server and nothing loops.
    Presence that changed nothing (the re-advertisements of a new link) stays put:
    every server the origin is linked to has it from the origin."""
    origin = frame.payload["server_id"]
    conns = tuple(conn for server_id, conn in sorted(state.servers.items())
                  if server_id not in (origin, link.peer_id)
                  and (peer := state.links.get(conn)) is not None and peer.state is LinkState.JOINED)
    return [Relay(conns, frame)] if conns else []


def _advertise(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    """§6.2 with the project rules: only the named server may advertise its users; a
    user id stays bound to the first key learned for it; a user hosted here, or at
    another server whose link is live, is not moved until that server removes it.
    A refused advertisement changes nothing (presence poisoning, SOCP §13)."""
    if _seen_before(state, event):
        return []
    refused = _presence_refused(state, link, event)
    if refused is not None:
        return refused
    frame, payload = event.frame, event.frame.payload
    server_id, user_id = payload["server_id"], payload["user_id"]
    if not _fresh(state, event):
        return []
    current = state.user_locations.get(user_id)
    if current == LOCAL:
        log.warning("refused USER_ADVERTISE from %s: user %s is connected here", server_id, user_id)
        return []
    meta = payload.get("meta") or {}
    known = state.users.get(user_id)
    too_much = abuse_rules.presence_problem(state.guard, server_id, state.user_locations.count_at(server_id),
                                       new_user=current != server_id,
                                       changes=current != server_id or _advert_changes(known, meta))
    if too_much is not None:
        if link.server_address:
            state.linkbook.dropped(link.server_address, f"USER_ADVERTISE not applied: {too_much}", state.now_ms)
        return []
    pubkey = ""
    if isinstance(meta.get("pubkey"), str):
        try:
            pubkey = normalise_public_key(meta["pubkey"])
        except SocpError:
            return [error_to(state, link.conn, ErrorCode.BAD_KEY, "advertised user key is not RSA-4096")]
    if known is not None and known.pubkey and pubkey and pubkey != known.pubkey:
        log.warning("refused USER_ADVERTISE from %s: user %s is bound to another key", server_id, user_id)
        return []
    refused_move = _home_move_refused(state, link, user_id, server_id, known, pubkey, meta.get("hello"))
    if refused_move:
        return []
    if current is not None and current != server_id and current in state.servers:
        # Still at a server whose link is live: a real move starts with its USER_REMOVE.
        log.warning("refused USER_ADVERTISE from %s: user %s is at live server %s", server_id, user_id, current)
        return []
    if pubkey or known is None:
        display_name = meta.get("display_name")
        name = display_name if isinstance(display_name, str) else ""
        state.users[user_id] = UserRecord(pubkey=pubkey or (known.pubkey if known else ""),
                                          display_name=name[:64], home_server=server_id)
    changed = current != server_id or state.users[user_id] != known
    state.user_locations[user_id] = server_id
    offline.advertised(state, user_id)
    state.channel_members.add(user_id)
    actions = directory.remote_user_learned(state, user_id, known)
    if not state.users[user_id].pubkey and server_id == link.peer_id:
        actions += key_waits.ask_key(state, link, user_id)   # G45, G17 advertise no key
    if not changed or meta.get(SNAPSHOT_MARK) is True:
        # A snapshot advert is what the origin gives each server it links to: relayed,
        # a joining server would send every user of the mesh to every server again
        # (100,000 users x 9 servers = 900,000 frames, each a signature check there).
        return actions
    return actions + _gossip_on(state, link, frame)


def _advert_changes(known: UserRecord | None, meta: dict[str, Any]) -> bool:
    """Would an advert of a user already at its server change what we hold of it?"""
    if known is None or not known.pubkey:
        return True
    if not isinstance(meta.get("pubkey"), str):
        return False   # an advert without a key (G17) updates nothing of a known user
    name = meta.get("display_name")
    return (name[:64] if isinstance(name, str) else "") != known.display_name


def _home_move_refused(state: RouterState, link: PeerLink, user_id: str, server_id: str, known: UserRecord | None,
                       advertised_key: str, proof: Any) -> bool:
    """One identity per id (issue #15 weaknesses 1, 2): an id that signs its hellos
    gets a new home server only with its own signed hello carried in the
    advertisement. An advertisement that carries a valid one also teaches this node
    that the id signs, so an unsigned hello for it is refused here too."""
    guard = state.guard
    bound_key = known.pubkey if known is not None and known.pubkey else advertised_key
    if not bound_key:
        return False
    moving = known is not None and bool(known.pubkey) and (known.home_server or state.me.server_id) != server_id
    if moving and user_id in guard.hello_signers:
        problem = abuse_rules.home_move_problem(guard, user_id, bound_key, proof)
        if problem is not None:
            log.warning("refused USER_ADVERTISE from %s: user %s: %s", server_id, user_id, problem)
            if link.server_address:
                state.linkbook.dropped(link.server_address, f"USER_ADVERTISE of {user_id} refused: {problem}",
                                       state.now_ms)
            return True
    if user_id not in guard.hello_signers and abuse_rules.carried_hello_problem(user_id, bound_key, proof) is None:
        guard.hello_signers.add(user_id)
    return False


def _remove(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    g101 = link_dialects.g101_remove_origin(state, link.conn, link.peer_id, event.frame)
    if g101 is not None:
        return _g101_remove(state, link, dataclasses.replace(event, frame=g101))
    if _seen_before(state, event):
        return []
    refused = _presence_refused(state, link, event)
    if refused is not None:
        return refused
    if not _fresh(state, event):
        return []
    payload = event.frame.payload
    server_id, user_id = payload["server_id"], payload["user_id"]
    away_changed = offline.remote_removed(state, server_id, user_id, payload)   # held at its home?
    if state.user_locations.get(user_id) != server_id:   # §6.2: only if still there
        return _gossip_on(state, link, event.frame) if away_changed else []
    del state.user_locations[user_id]
    return _gossip_on(state, link, event.frame)


def _g101_remove(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    """An opted-in G101 server's USER_REMOVE of its own user (link_dialects.
    g101_remove_origin). Not gossiped: it is our reading of an unsigned frame, which
    no other server could check as its origin's."""
    if not _fresh(state, event):
        return []
    user_id = event.frame.payload["user_id"]
    offline.remote_removed(state, link.peer_id, user_id, event.frame.payload)
    del state.user_locations[user_id]
    return []


def _seen_key(state: RouterState, event: FrameIn, link: PeerLink | None) -> tuple[Any, ...]:
    address = link.server_address if link is not None else ""
    return link_dialects.seen_key(state, address, event.frame, event.payload_digest)


def _fresh(state: RouterState, event: FrameIn, link: PeerLink | None = None) -> bool:
    return state.seen.check_and_add(_seen_key(state, event, link), state.now_ms, ts=event.frame.ts)


def _seen_before(state: RouterState, event: FrameIn, link: PeerLink | None = None) -> bool:
    """A copy of presence already applied: dropped before the router checks a relay's
    signature (in a full mesh each change arrives once from its origin and once
    relayed by every other server, and each check costs an RSA verify). Only a look:
    a copy with a bad signature must not mark the genuine frame as seen."""
    return state.seen.has(_seen_key(state, event, link))


def _server_deliver(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    """§6.3: deliver locally, or pass on towards the user's server, or say USER_NOT_FOUND."""
    if not _fresh(state, event):
        return []
    frame, payload = event.frame, event.frame.payload
    if isinstance(payload.get("payload"), dict):
        return _wrapped_file(state, link, frame)
    target = payload["user_id"]
    sender = payload.get("sender") or payload.get("from") or ""
    ts = link_dialects.orig_ts(payload, frame.ts)
    extra: dict[str, Any] = {"part": payload["part"]} if "part" in payload else {}
    if payload.get("sender_pub"):
        try:  # interop table: accept any key form, always emit DER-SPKI
            payload = {**payload, "sender_pub": normalise_public_key(payload["sender_pub"])}
        except SocpError:
            return [error_to(state, link.conn, ErrorCode.BAD_KEY, "sender_pub is not an RSA-4096 key")]
    location = state.user_locations.get(target) or offline.holding_home(state, target)
    if location is not None and location != LOCAL and state.servers.get(location) == link.conn:
        # Never back where it came from (two servers each taking the other for the home).
        return [error_to(state, link.conn, ErrorCode.USER_NOT_FOUND, f"user {target} is not here")]
    return users.route_to_user(state, target, sender, ts, payload, extra, origin_conn=link.conn)


def _wrapped_file(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """G56's cross-server file frame: SERVER_DELIVER {user_id, type, from, to, ts,
    payload[, sig]} carrying a user's FILE_* whole. Unwrapped, validated as that
    frame, bounded like any relayed transfer, and carried on as our own FILE_* would be."""
    wrapped = frame.payload
    try:
        inner = parse_obj({name: wrapped[name] for name in ("type", "from", "to", "ts", "payload")})
    except SocpError as exc:
        return [error_to(state, link.conn, exc.code, f"wrapped {wrapped['type']}: {exc.detail}")]
    if inner.to != wrapped["user_id"]:
        return [error_to(state, link.conn, ErrorCode.MALFORMED, "wrapped frame is for another user")]
    problem = abuse_rules.file_problem(state.guard, abuse_rules.relayed_sender(inner.from_), inner)
    if problem is not None:
        return [error_to(state, link.conn, *problem)]
    if state.user_locations.get(inner.to) != LOCAL:
        return [error_to(state, link.conn, ErrorCode.USER_NOT_FOUND, f"user {inner.to} is not here")]
    return users.route_frame_to_user(state, inner, origin_conn=link.conn)


def _public_message(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    if not _fresh(state, event, link):
        return []
    return _public_message_unchecked(state, event.frame)


def _key_share(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    if not _fresh(state, event):
        return []
    return users.key_share(state, event.frame, origin_conn=link.conn)


def _file_frame(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    if not _fresh(state, event):
        return []
    frame = event.frame
    if frame.to == PUBLIC_CHANNEL:
        return _public_message_unchecked(state, frame)
    if frame.from_ == link.peer_id and isinstance(frame.payload.get("user_id"), str):
        return _server_file(state, link, frame)
    if state.user_locations.get(frame.to) != LOCAL and not offline.held_here(state, frame.to):
        return [error_to(state, link.conn, ErrorCode.USER_NOT_FOUND, f"user {frame.to} is not here")]
    return users.route_frame_to_user(state, frame, origin_conn=link.conn)


def _server_file(state: RouterState, link: PeerLink, frame: Envelope) -> list[Action]:
    """G45 relays a user's FILE_* as its own frame: `from` the server, `to` our name,
    the recipient in `payload.user_id`, the sender only in FILE_START's `sender`.
    Carried on as the user's frame (sender remembered per file_id, bounded)."""
    payload = {name: value for name, value in frame.payload.items() if name != "user_id"}
    target, file_id = frame.payload["user_id"], payload["file_id"]
    senders = state.relayed_file_senders
    if frame.type == T.FILE_START:
        sender = payload.get("sender")
        if not isinstance(sender, str) or not is_peer_id(sender):
            return [error_to(state, link.conn, ErrorCode.MALFORMED, "FILE_START from a server must name its sender")]
        if len(senders) >= RELAYED_FILES_LIMIT:
            senders.pop(next(iter(senders)))
        senders[(link.peer_id, file_id)] = sender
    sender = senders.get((link.peer_id, file_id))
    if sender is None:
        return [error_to(state, link.conn, ErrorCode.MALFORMED, f"{frame.type} for a file that was not started")]
    if frame.type == T.FILE_END:
        senders.pop((link.peer_id, file_id), None)
    if state.user_locations.get(target) != LOCAL:
        return [error_to(state, link.conn, ErrorCode.USER_NOT_FOUND, f"user {target} is not here")]
    inner = Envelope(type=frame.type, from_=sender, to=target, ts=frame.ts, payload=payload)
    return users.route_frame_to_user(state, inner, origin_conn=link.conn)


def _public_message_unchecked(state: RouterState, frame: Envelope) -> list[Action]:
    targets = users.user_targets(state, PUBLIC_CHANNEL)
    held = offline.hold_public(state, frame)   # for our account holders who are away
    if not targets:
        return held
    return [Send(targets, Envelope(type=frame.type, from_=frame.from_, to=PUBLIC_CHANNEL, ts=frame.ts,
                                   payload=frame.payload)), *held]


def _channel_add(state: RouterState, link: PeerLink, event: FrameIn) -> list[Action]:
    state.channel_members.update(event.frame.payload["add"])
    return []


# Keyed by the frame's type as it arrives (a str; FrameType members hash as their value).
_SERVER_HANDLERS: dict[str, Callable[[RouterState, PeerLink, FrameIn], list[Action]]] = {
    T.SERVER_ANNOUNCE: _announce,
    T.USER_ADVERTISE: _advertise,
    T.USER_REMOVE: _remove,
    T.SERVER_DELIVER: _server_deliver,
    T.MSG_PUBLIC_CHANNEL: _public_message,
    T.PUBLIC_CHANNEL_KEY_SHARE: _key_share,
    T.FILE_START: _file_frame,
    T.FILE_CHUNK: _file_frame,
    T.FILE_END: _file_frame,
    T.PUBLIC_CHANNEL_ADD: _channel_add,
    T.DB_USER: _key_answer,
    T.USER_DB_USER: _key_answer,
    T.PUBKEY_RESPONSE: _key_answer,
    T.DB_REGISTER: _key_answer,
    T.DB_GET_USER: _key_question,
    T.PUBKEY_REQUEST: _key_question,
}
