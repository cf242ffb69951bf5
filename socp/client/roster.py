"""Who is on the server, and how to ask this server about them.

`Directory` keeps the users of the last list (plus what presence and key look-ups
taught us), their display names, the servers seen, and the dialect this server
answers: which list request (LIST_REQUEST, USER_LIST_REQ, WHO, or none: then the
presence cache is the list) and which key look-up (issue #14, `dialects`). A long
list comes in pages (LIST_RESPONSE `next`, LIST_REQUEST {after}); they are
followed, up to MAX_LIST_PAGES, and shown as one list.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from socp.protocol import crypto
from socp.protocol.envelope import Envelope
from socp.protocol.errors import BadKey, UserNotFound
from socp.protocol.frame_types import KNOWN_TYPES
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import BROADCAST, is_peer_id, is_uuid4

from . import dialects
from .commands import CommandError
from .events import Event, Info, ListPageWanted, ListResult, PresenceChanged, UserEntry
from .keyring import TrustedKeys
from .user_identity import Identity

MAX_REMEMBERED_NAMES = 4096  # display names kept for users no longer listed
# Pages of one LIST_RESPONSE followed (`next` -> LIST_REQUEST {after}): at ~600 users
# with keys per page (half a frame), about 30,000 users; past it the list is cut, said.
MAX_LIST_PAGES = 50


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    user_id: str
    server_id: str = ""
    display_name: str = ""
    pubkey: str = ""            # normalised base64url DER SPKI, "" if unknown


@dataclass(slots=True)
class _ListRequest:
    """A list request sent and not yet answered. The node answers one connection's
    requests in order, so each answer is the oldest request's; a request for a next
    page carries the users of the pages before it."""

    kind: str
    requested: bool                 # the user asked (/list), not a refresh
    earlier_pages: dict[str, DirectoryEntry] = field(default_factory=dict)
    page: int = 1


class Directory:
    def __init__(self, me: Identity, keys: TrustedKeys) -> None:
        self._me = me
        self._keys = keys
        self.users: dict[str, DirectoryEntry] = {}      # the last list (plus presence gossip)
        self._names: OrderedDict[str, str] = OrderedDict()   # user id -> last display name seen (label)
        self.loaded = False
        # Join and leave lines only once connected: the hello's catch-up of who is
        # online is the starting point, not news (the driver sets it at Ready).
        self.presence_news = False
        self.stale = True                                # membership changed since the last list
        self.server_ids: set[str] = set()
        self.server_id = ""                              # our own server: the one answering our lists
        # Peer servers' dialects (issue #14): which list request and key look-up this
        # server answers (None: not found yet), the requests it said it does not know,
        # and the requests sent while finding out (their UNKNOWN_TYPE is expected).
        self.list_dialect: str | None = None
        self.key_lookup: str | None = None
        self.unsupported: set[str] = set()
        self.probes: list[str] = []
        self.lookup_answers = 0                          # key look-ups answered or refused, ever
        self._list_requests: list[_ListRequest] = []     # oldest first (answers come in this order)

    def reset(self) -> None:
        """A new connection: requests in flight are gone. The dialects found stay: it
        is the same server."""
        self._list_requests.clear()
        self.probes.clear()
        self.stale = True

    # --- names ------------------------------------------------------------------------

    def label(self, user_id: str) -> str:
        """A user's display name: from the directory, else the last one it had (a user
        who left is still named in the lines about it), else its id."""
        entry = self.users.get(user_id)
        if entry and entry.display_name:
            self._names[user_id] = entry.display_name
            self._names.move_to_end(user_id)
            while len(self._names) > MAX_REMEMBERED_NAMES:
                self._names.popitem(last=False)
            return entry.display_name
        return self._names.get(user_id, user_id)

    def resolve(self, target: str) -> str:
        """A user id from an id, a unique id prefix or a display name."""
        target = target.strip()
        if target == self._me.user_id or target in self.users or target in self._keys.trusted:
            return target
        named = [uid for uid, entry in self.users.items() if entry.display_name == target]
        if not named:
            folded = target.casefold()
            named = [uid for uid, entry in self.users.items() if entry.display_name.casefold() == folded]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise CommandError(f"several users are called {target!r}; use an id: {', '.join(sorted(named))}")
        prefixed = sorted({uid for uid in (*self.users, *self._keys.trusted) if uid.startswith(target)})
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            raise CommandError(f"{target!r} matches several users: {', '.join(prefixed)}")
        if is_uuid4(target):
            return target
        raise UserNotFound(f"no user {target!r} in the last /list")

    def entry(self, user_id: str) -> DirectoryEntry:
        return self.users.get(user_id, DirectoryEntry(user_id))

    def user_entries(self) -> tuple[UserEntry, ...]:
        return tuple(
            UserEntry(uid, self.label(uid), entry.display_name, entry.server_id,
                      crypto.fingerprint(entry.pubkey) if entry.pubkey else "", uid == self._me.user_id)
            for uid, entry in self.users.items()
        )

    def owner_of(self, sender: str, fingerprint: str) -> str:
        """Whose user key has this fingerprint. Servers carry shares on with their own
        id in `from` (§7.3), so the key decides; `from` counts only if it is a user
        we know and nothing else matched."""
        owner = self._keys.owner_of_fingerprint(fingerprint)
        if owner:
            return owner
        for uid, entry in self.users.items():
            if entry.pubkey and crypto.fingerprint(entry.pubkey) == fingerprint:
                return uid
        if sender in self.users and sender not in self.server_ids and sender != self._me.user_id:
            return sender
        return ""

    # --- servers ------------------------------------------------------------------------

    def note_server(self, server_id: str) -> None:
        if is_peer_id(server_id):
            self.server_ids.add(server_id)
            self.server_id = self.server_id or server_id

    def server_to(self) -> str:
        """Where a request to our server goes: its id, once known."""
        return self.server_id or (next(iter(self.server_ids)) if len(self.server_ids) == 1 else BROADCAST)

    # --- requests ---------------------------------------------------------------------

    def list_request(self, *, requested: bool = True, dialect: str | None = None) -> Envelope | None:
        """The list request this server answers (LIST_REQUEST until we know better;
        `dialect` to try another). None when it has none (G56): the presence cache
        is the list then, and `presence_list` shows it."""
        kind = dialect or self.list_dialect or dialects.LIST_DIALECTS[0]
        if kind == dialects.PRESENCE_ONLY:
            return None
        if self.list_dialect != kind:
            self.probes.append(kind)
        return self._send_list_request(_ListRequest(kind, requested), {})

    def _send_list_request(self, request: _ListRequest, payload: dict[str, Any]) -> Envelope:
        self._list_requests.append(request)
        me = self._me
        return me.sign(Envelope(request.kind, me.user_id, self.server_to(), me.now_ms(), payload))

    def no_list_request(self) -> None:
        """Every list dialect was tried and none answered: use the presence cache."""
        self.list_dialect = dialects.PRESENCE_ONLY
        self.loaded, self.stale = True, False
        self._list_requests.clear()

    def presence_list(self, *, requested: bool = True) -> ListResult:
        return ListResult(self.user_entries(), requested=requested)

    def key_lookups(self, target: str) -> tuple[Envelope, ...]:
        """Ask the server for a user's key in each look-up it may answer (all of them
        until one has answered; those it refused are not asked again)."""
        me = self._me
        kinds = [self.key_lookup] if self.key_lookup else [k for k in dialects.KEY_LOOKUPS if k not in self.unsupported]
        out = []
        for kind in kinds:
            if kind != self.key_lookup:
                self.probes.append(kind)
            out.append(me.sign(Envelope(kind, me.user_id, self.server_to(), me.now_ms(), {"user_id": target})))
        return tuple(out)

    def refused_probe(self, code: str, detail: str) -> bool:
        """An ERROR UNKNOWN_TYPE answering a list request or key look-up sent to find
        this server's dialect: expected, and noted (True: not to be shown)."""
        if code != dialects.UNKNOWN_TYPE:
            return False
        refused = self._refused_probe(detail)
        if refused is None:
            return False
        self.probes.remove(refused)
        self.unsupported.add(refused)
        self.lookup_answers += refused in dialects.KEY_LOOKUPS
        if refused in dialects.LIST_DIALECTS:
            self._list_requests = [entry for entry in self._list_requests if entry.kind != refused]
        return True

    def _refused_probe(self, detail: str) -> str | None:
        """Which of our outstanding dialect probes an UNKNOWN_TYPE answers: the one its
        detail names, else the oldest if the detail names no frame type at all."""
        named = [kind for kind in self.probes if re.search(rf"\b{kind}\b", detail)]
        if named:
            return named[0]
        if self.probes and not any(re.search(rf"\b{kind}\b", detail) for kind in KNOWN_TYPES):
            return self.probes[0]
        return None

    def _answered(self, request: str) -> None:
        if request in self.probes:
            self.probes.remove(request)

    def _answered_request(self, kind: str) -> _ListRequest:
        """The list request this reply answers: the oldest of its kind. Requests of
        other dialects sent before it went unanswered (tried and timed out): forgotten.
        A reply nobody asked for counts as asked for by the user."""
        while self._list_requests:
            request = self._list_requests.pop(0)
            if request.kind == kind:
                return request
        return _ListRequest(kind, requested=True)

    # --- answers ----------------------------------------------------------------------

    def on_list(self, envelope: Envelope) -> list[Event]:
        """LIST_RESPONSE (ours, G17), USER_LIST (G45) or WHO (G101): the list, and the
        dialect this server answers."""
        if envelope.type == T.WHO and envelope.from_ not in self.server_ids and envelope.from_ == envelope.to:
            return []   # our own request echoed back
        self.note_server(envelope.from_)
        self.server_id = envelope.from_
        answers: dict[str, T] = {T.LIST_RESPONSE: T.LIST_REQUEST, T.USER_LIST: T.USER_LIST_REQ}
        kind = answers.get(envelope.type, T.WHO).value
        self.list_dialect = kind
        self._answered(kind)
        request = self._answered_request(kind)
        directory = request.earlier_pages
        for uid, detail in dialects.listed_users(envelope.payload):
            if not is_peer_id(uid):
                continue
            key = detail.get("pubkey") if isinstance(detail.get("pubkey"), str) else ""
            if key:
                try:
                    key = crypto.normalise_public_key(key)
                except BadKey:
                    key = ""
            server_id = str(detail.get("server_id") or "")
            if server_id:
                self.server_ids.add(server_id)
            old = self.users.get(uid)
            # A list without keys (G17, G45) keeps what presence or a look-up taught us.
            key = key or (old.pubkey if old else "")
            name = _text(detail.get("display_name")) or (old.display_name if old else "")
            directory[uid] = DirectoryEntry(uid, server_id or (old.server_id if old else ""), name, key)
        after = _next_page(envelope)
        if after and request.page < MAX_LIST_PAGES:
            following = _ListRequest(kind, request.requested, directory, request.page + 1)
            return [ListPageWanted(self._send_list_request(following, {"after": after}))]
        events: list[Event] = []
        if after:
            events.append(Info(f"the server lists {envelope.payload.get('total', 'more')} users; shown are the "
                               f"first {len(directory)} ({MAX_LIST_PAGES} pages, the most followed)"))
        if self.loaded and self.presence_news:
            events += self._presence_diff(self.users, directory)
        self.users = directory
        for uid in directory:
            self.label(uid)
        self.loaded, self.stale = True, False
        with self._keys.pins.batch():
            for uid, entry in directory.items():
                if entry.pubkey and uid != self._me.user_id:
                    events.extend(self._keys.check(uid, entry.pubkey)[1])
        events.append(ListResult(self.user_entries(), requested=request.requested))
        return events

    def _presence_diff(self, before: dict[str, DirectoryEntry], after: dict[str, DirectoryEntry]
                       ) -> list[Event]:
        def news(entry: DirectoryEntry, joined: bool) -> PresenceChanged:
            return PresenceChanged(entry.user_id, entry.display_name or entry.user_id, entry.server_id, joined)

        me = self._me.user_id
        events: list[Event] = [news(after[uid], True) for uid in after if uid not in before and uid != me]
        return events + [news(before[uid], False) for uid in before if uid not in after and uid != me]

    def on_presence(self, envelope: Envelope) -> list[Event]:
        """Interop table: a presence cache for servers without a list request (G56),
        and keys from `meta.pubkey` in any encoding."""
        payload = envelope.payload
        uid = payload["user_id"]
        self.server_ids.add(payload["server_id"])
        self.server_ids.add(envelope.from_)
        # With no list request, presence is the list: it is never stale.
        self.stale = self.list_dialect != dialects.PRESENCE_ONLY
        if envelope.type == T.USER_REMOVE:
            gone = self.users.pop(uid, None)
            if gone is None or not self.presence_news or uid == self._me.user_id:
                return []
            return self._presence_diff({uid: gone}, {})
        is_new = uid not in self.users
        meta = payload.get("meta") or {}
        key = meta.get("pubkey") if isinstance(meta.get("pubkey"), str) else ""
        try:
            key = crypto.normalise_public_key(key) if key else ""
        except BadKey:
            key = ""
        name = _text(meta.get("display_name")) or _text(meta.get("name"))
        entry = self.users[uid] = DirectoryEntry(uid, payload["server_id"], name, key)
        events = self._keys.check(uid, key)[1] if key and uid != self._me.user_id else []
        if is_new and self.presence_news:
            events += self._presence_diff({}, {uid: entry})
        return events

    def on_key_answer(self, envelope: Envelope) -> list[Event]:
        """DIRECTORY_ENTRY, PUBKEY_RESPONSE (G17) or USER_DB_USER (G45)."""
        request = next(k for k, v in dialects.KEY_LOOKUPS.items() if v == envelope.type)
        self.key_lookup = request
        self.lookup_answers += 1
        self._answered(request)
        found = dialects.looked_up_key(envelope.type, envelope.payload)
        if found is None or envelope.payload.get("revoked") is True:
            return []
        uid, key_text = found
        if uid == self._me.user_id:
            return []
        try:
            key = crypto.normalise_public_key(key_text)
        except BadKey:
            return []
        old = self.entry(uid)
        home = envelope.payload.get("server_id")
        server_id = home if isinstance(home, str) and is_peer_id(home) else old.server_id
        self.users[uid] = DirectoryEntry(uid, server_id, old.display_name, key)
        return self._keys.check(uid, key)[1]

    def on_membership(self, envelope: Envelope) -> list[Event]:
        self.server_ids.add(envelope.from_)
        self.stale = self.list_dialect != dialects.PRESENCE_ONLY
        return []


def _next_page(envelope: Envelope) -> str:
    """The `next` of a LIST_RESPONSE page with more after it (frames.list_response):
    the last id shown, which LIST_REQUEST {"after": next} continues from; "" if none."""
    payload = envelope.payload
    after = payload.get("next")
    if envelope.type != T.LIST_RESPONSE or payload.get("truncated") is not True or not isinstance(after, str):
        return ""
    return after


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
