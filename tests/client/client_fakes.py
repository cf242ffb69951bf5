"""A tiny in-memory stand-in for the node, routing frames as the real one will
(see the issue): USER_HELLO with NAME_IN_USE / BAD_KEY, LIST_RESPONSE with details,
MSG_DIRECT -> USER_DELIVER (original ts), public messages relayed unchanged to every
other member, key shares relayed (stored for offline members), files relayed in
order. Every frame it sends is signed with its key when it has one.

`FakeNode.handle` is pure (connection id + frame in, frames out), so the same node
drives the in-memory `MemoryNet` and the websockets server of the end-to-end test.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from socp.client.chat_messages import Actions
from socp.client.events import Event
from socp.client.session import ClientSession
from socp.protocol import crypto, frames, signing
from socp.protocol.acks import ACKNOWLEDGED_TYPES, msg_ref
from socp.protocol.envelope import Envelope, parse
from socp.protocol.errors import BadKey, SocpError
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import PUBLIC_CHANNEL, is_uuid4, new_id


@dataclass
class FakeNode:
    server_key: crypto.PrivateKey | None = None
    server_id: str = field(default_factory=new_id)
    ts: int = 1_700_000_000_000
    users: dict[str, dict] = field(default_factory=dict)            # user id -> {pubkey, display_name}
    connections: dict[Hashable, str] = field(default_factory=dict)  # connection -> user id
    stored_shares: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    version: int = 1
    # Test hook: a function that may rewrite a frame on its way to a user.
    tamper: object = None
    # Users per LIST_RESPONSE page, as our node pages a long list (None: one answer).
    list_page_size: int | None = None
    listed_only: set[str] = field(default_factory=set)              # users listed with no client behind them
    # Test hooks, as our node answers a user's acknowledged frames: `acks` ACKs each by
    # msg_ref once handled; `refuse(frame)` may return (code, detail) to refuse one by name.
    acks: bool = False
    refuse: object = None
    error_delay: float = 0.0     # seconds an ERROR takes to leave (served over websockets only)

    def _out(self, envelope: Envelope) -> Envelope:
        if self.server_key is not None:
            envelope = signing.sign_envelope(self.server_key, envelope)
        return envelope

    def _conn_of(self, user_id: str) -> Hashable | None:
        return next((c for c, u in self.connections.items() if u == user_id), None)

    def disconnect(self, connection: Hashable) -> None:
        self.connections.pop(connection, None)

    def handle(self, connection: Hashable, raw: str) -> list[tuple[Hashable, Envelope]]:
        self.ts += 1
        try:
            envelope = parse(raw)
        except SocpError as exc:
            return [(connection, self._out(frames.error(self.server_id, "*", self.ts, exc.code, exc.detail)))]
        user = self.connections.get(connection)
        if user is None:
            return self._hello(connection, envelope)
        kind = envelope.type
        if kind in ACKNOWLEDGED_TYPES:
            refusal = self.refuse(envelope) if self.refuse is not None else None  # type: ignore[operator] - a test sets refuse to a callable
            if refusal is not None:
                code, detail = refusal
                error = Envelope(T.ERROR, self.server_id, user, self.ts,
                                 {"code": code, "detail": detail, "msg_ref": msg_ref(envelope)})
                return [(connection, self._out(error))]
            if self.acks:
                return self._relayed(connection, user, envelope) + [
                    (connection, self._out(frames.ack(self.server_id, user, self.ts, msg_ref(envelope))))]
        return self._relayed(connection, user, envelope)

    def _relayed(self, connection: Hashable, user: str, envelope: Envelope) -> list[tuple[Hashable, Envelope]]:
        out: list[tuple[Hashable, Envelope]] = []
        kind = envelope.type
        if kind == T.LIST_REQUEST:
            out.append((connection, self._list_response(user, str(envelope.payload.get("after") or ""))))
        elif kind == T.MSG_DIRECT:
            target = self._conn_of(envelope.to)
            if target is None:
                out.append((connection, frames.error(self.server_id, user, self.ts, "USER_NOT_FOUND", envelope.to)))
            else:
                p = envelope.payload
                extra = {"part": p["part"]} if "part" in p else {}
                out.append((target, frames.user_deliver(self.server_id, envelope.to, envelope.ts, p["ciphertext"],
                                                        user, p["sender_pub"], p["content_sig"], **extra)))
        elif kind == T.PUBLIC_CHANNEL_KEY_SHARE:
            for share in envelope.payload["shares"]:
                member = share["member"]
                carried = Envelope(kind, self.server_id, member, envelope.ts, envelope.payload)
                target = self._conn_of(member)
                if target is None:
                    self.stored_shares[member].append(carried)
                else:
                    out.append((target, carried))
        elif kind in (T.MSG_PUBLIC_CHANNEL, T.FILE_START, T.FILE_CHUNK, T.FILE_END):
            relayed = Envelope(kind, user, envelope.to, envelope.ts, envelope.payload)
            if envelope.to == PUBLIC_CHANNEL:
                out.extend((c, relayed) for c, u in self.connections.items() if u != user)
            else:
                target = self._conn_of(envelope.to)
                if target is None:
                    out.append((connection, frames.error(self.server_id, user, self.ts, "USER_NOT_FOUND",
                                                         envelope.to)))
                else:
                    out.append((target, relayed))
        if self.tamper is not None:
            out = [(c, self.tamper(e)) for c, e in out]  # type: ignore[operator]  # tamper is not None here
        return [(c, self._out(e)) for c, e in out]

    def _list_response(self, user: str, after: str) -> Envelope:
        everyone = sorted(set(self.connections.values()) | self.listed_only)
        online = [u for u in everyone if u > after]
        more = self.list_page_size is not None and len(online) > self.list_page_size
        if self.list_page_size is not None:
            online = online[: self.list_page_size]
        details = [{"user_id": u, "server_id": self.server_id, "display_name": self.users[u]["display_name"],
                    "pubkey": self.users[u]["pubkey"]} for u in online]
        if self.list_page_size is None:
            return frames.list_response(self.server_id, user, self.ts, online, details)
        return frames.list_response(self.server_id, user, self.ts, online, details, total=len(everyone), more=more)

    def add_listed_user(self, user_id: str, pubkey: str, display_name: str = "") -> None:
        """A user the list shows, with no client behind it."""
        self.listed_only.add(user_id)
        self.users[user_id] = {"pubkey": crypto.normalise_public_key(pubkey), "display_name": display_name}

    def _hello(self, connection: Hashable, hello: Envelope) -> list[tuple[Hashable, Envelope]]:
        if hello.type != T.USER_HELLO or not is_uuid4(hello.from_):
            return [(connection, self._out(frames.error(self.server_id, "*", self.ts, "MALFORMED", "hello first")))]
        if hello.from_ in self.connections.values():
            return [(connection, self._out(frames.error(self.server_id, hello.from_, self.ts, "NAME_IN_USE",
                                                        "that user id is connected")))]
        try:
            pubkey = crypto.normalise_public_key(hello.payload["pubkey"])
            signing.verify_transport(crypto.decode_public_key(pubkey), hello)
        except (BadKey, SocpError) as exc:
            return [(connection, self._out(frames.error(self.server_id, hello.from_, self.ts, "BAD_KEY", exc.detail)))]
        user = hello.from_
        self.connections[connection] = user
        self.users[user] = {"pubkey": pubkey, "display_name": (hello.payload.get("meta") or {}).get("display_name", "")}
        self.version += 1
        out = [(c, frames.public_channel_add(self.server_id, self.ts, [user], self.version - 1))
               for c in self.connections]
        out += [(connection, e) for e in self.stored_shares.pop(user, [])]
        return [(c, self._out(e)) for c, e in out]


class MemoryNet:
    """ConnectionPair style: sessions joined to a FakeNode in memory."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self.sessions: dict[str, ClientSession] = {}
        self.events: dict[str, list[Event]] = defaultdict(list)

    def join(self, session: ClientSession) -> None:
        self.sessions[session.me.user_id] = session
        self._deliver(self.node.handle(session.me.user_id, session.hello().to_wire()))

    def leave(self, session: ClientSession) -> None:
        self.node.disconnect(session.me.user_id)

    def send(self, session: ClientSession, actions: Actions | list[Envelope] | Envelope) -> None:
        if isinstance(actions, Envelope):
            frames_out = [actions]
        elif isinstance(actions, Actions):
            frames_out = list(actions.frames)
            self.events[session.me.user_id].extend(actions.events)
        else:
            frames_out = list(actions)
        for frame in frames_out:
            self._deliver(self.node.handle(session.me.user_id, frame.to_wire()))

    def refresh(self, *sessions: ClientSession) -> None:
        for session in sessions:
            self.send(session, session.users.list_request(requested=False))

    def _deliver(self, routed: list[tuple[Hashable, Envelope]]) -> None:
        for connection, envelope in routed:
            session = self.sessions.get(connection)  # type: ignore[arg-type]  # any hashable connection object
            if session is not None:
                self.events[session.me.user_id].extend(session.handle(envelope.to_wire()))

    def take(self, session: ClientSession, kind: type | None = None) -> list[Event]:
        events = self.events.pop(session.me.user_id, [])
        return [e for e in events if kind is None or isinstance(e, kind)]


async def serve_fake_node(node: FakeNode) -> Server:
    """The FakeNode as a websockets server on 127.0.0.1 (a free port)."""

    async def handler(ws: ServerConnection) -> None:
        try:
            async for raw in ws:
                for connection, envelope in node.handle(ws, raw):
                    if envelope.type == T.ERROR and node.error_delay:
                        await asyncio.sleep(node.error_delay)
                    await connection.send(envelope.to_wire())  # type: ignore[attr-defined]  # a websockets connection here
        except ConnectionClosed:
            pass
        finally:
            node.disconnect(ws)

    return await serve(handler, "127.0.0.1", 0, compression=None, max_size=1024 * 1024)


def url_of(server: Server) -> str:
    return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
