"""Drive the pure router core with frames, no sockets (STYLE §9)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from socp.protocol import crypto, frames
from socp.protocol.encoding import canonical_json
from socp.protocol.envelope import Envelope
from socp.protocol.ids import new_id
from socp.router import core
from socp.router.core_io import Action, Close, FrameIn, FrameRejected, LinkDown, Send, StoreWrite
from socp.router.state import NodeSelf, RouterState

NOW = 1_700_000_000_000


def digest(frame: Envelope) -> bytes:
    return hashlib.sha256(canonical_json(frame.payload)).digest()


@dataclass
class Harness:
    server_key: crypto.PrivateKey
    state: RouterState = field(init=False)
    next_conn: int = 1

    def __post_init__(self) -> None:
        me = NodeSelf(server_id=new_id(), pubkey=crypto.encode_public_key(self.server_key), host="127.0.0.1", port=1)
        self.state = RouterState(me=me, now_ms=NOW)

    @property
    def server_id(self) -> str:
        return self.state.me.server_id

    def feed(self, conn: int, frame: Envelope) -> list[Action]:
        return core.handle(self.state, FrameIn(conn, frame, digest(frame)))

    def reject(self, conn: int, code: str, detail: str = "bad") -> list[Action]:
        return core.handle(self.state, FrameRejected(conn, code, detail, ""))

    def drop(self, conn: int) -> list[Action]:
        return core.handle(self.state, LinkDown(conn, "gone"))

    def connect_user(self, key: crypto.PrivateKey, user_id: str | None = None,
                     name: str | None = None) -> tuple[int, str, list[Action]]:
        conn = self.next_conn
        self.next_conn += 1
        user_id = user_id or new_id()
        hello = frames.user_hello(user_id, self.server_id, NOW, crypto.encode_public_key(key), display_name=name)
        return conn, user_id, self.feed(conn, hello)


def sends(actions: list[Action], frame_type: str | None = None) -> list[Send]:
    return [a for a in actions if isinstance(a, Send) and (frame_type is None or a.frame.type == frame_type)]


def sent_to(actions: list[Action], conn: int, frame_type: str | None = None) -> list[Envelope]:
    return [s.frame for s in sends(actions, frame_type) if any(c == conn for c, _ in s.targets)]


def errors_to(actions: list[Action], conn: int) -> list[str]:
    return [f.payload["code"] for f in sent_to(actions, conn, "ERROR")]


def closes(actions: list[Action]) -> list[int]:
    return [a.conn for a in actions if isinstance(a, Close)]


def store_writes(actions: list[Action], operation: str) -> list[StoreWrite]:
    return [a for a in actions if isinstance(a, StoreWrite) and a.operation == operation]
