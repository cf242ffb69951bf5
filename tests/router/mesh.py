"""Several pure router cores wired together in memory: Dial, Send and Close
actions become events on the other core, in order (like h11's ConnectionPair)."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

from socp.bootstrap_file import Introducer
from socp.protocol import crypto, frames
from socp.protocol.encoding import canonical_json
from socp.protocol.envelope import Envelope
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import new_id
from socp.protocol.signing import transport_signature
from socp.router import core, federation
from socp.router.core_io import Action, Close, Dial, FrameIn, LinkDown, LinkUp, Relay, Send, StoreWrite, Tick
from socp.router.state import NodeSelf, RouterState, Timing

from .harness import NOW, digest


@dataclass
class Node:
    name: str
    key: crypto.PrivateKey
    port: int
    state: RouterState = field(init=False)
    user_outbox: dict[int, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    store_log: list[StoreWrite] = field(default_factory=list)
    next_conn: int = 1

    def __post_init__(self) -> None:
        me = NodeSelf(server_id=new_id(), pubkey=crypto.encode_public_key(self.key), host="127.0.0.1", port=self.port)
        self.state = RouterState(me=me, now_ms=NOW, timing=Timing(heartbeat_ms=1000, link_timeout_ms=3000,
                                                                   min_backoff_ms=100, max_backoff_ms=1000))

    @property
    def server_id(self) -> str:
        return self.state.me.server_id

    def introducer_entry(self) -> Introducer:
        return Introducer(host="127.0.0.1", port=self.port, pubkey=self.state.me.pubkey)


class Mesh:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.wires: dict[tuple[str, int], tuple[str, int]] = {}
        self.queue: deque[tuple[str, object]] = deque()
        self.offline: set[str] = set()
        self.unwritten: set[tuple[str, str]] = set()   # (sender, receiver): frames never written
        self.severed: set[frozenset[str]] = set()      # pairs of nodes that cannot reach each other
        self.signatures: dict[tuple[str, bytes], str] = {}
        self.now = NOW
        self.settle_limit = 10_000
        # At scale a real RSA-4096 signature per advert (~1.3 ms) is too slow: with
        # `presence_sig` set, every presence frame a node sends itself carries that
        # one signature (frames on a link are taken as verified by the verifier pool;
        # only relayed presence is verified by the router, and would then fail).
        self.presence_sig: str | None = None
        self.largest: dict[str, int] = {}             # frame type -> largest wire size seen

    def add(self, name: str, key: crypto.PrivateKey, introducers: list[Node] = ()) -> Node:
        node = Node(name, key, port=9000 + len(self.nodes))
        node.state.introducers = [n.introducer_entry() for n in introducers]
        self.nodes[name] = node
        return node

    def start(self, name: str) -> None:
        node = self.nodes[name]
        node.state.now_ms = self.now
        self._act(name, federation.start(node.state))
        self.settle()

    def event(self, name: str, event: object) -> None:
        self.queue.append((name, event))

    def settle(self, limit: int | None = None) -> None:
        for _ in range(limit or self.settle_limit):
            if not self.queue:
                return
            name, event = self.queue.popleft()
            node = self.nodes[name]
            node.state.now_ms = self.now
            self._act(name, core.handle(node.state, event))
        raise AssertionError("mesh did not settle")

    def advance(self, ms: int) -> None:
        self.now += ms
        for name in self.nodes:
            self.event(name, Tick())
        self.settle()

    # --- users ----------------------------------------------------------------------

    def connect_user(self, name: str, key: crypto.PrivateKey, display_name: str = "") -> tuple[int, str]:
        node = self.nodes[name]
        conn = node.next_conn
        node.next_conn += 1
        user_id = new_id()
        self.user_frame(name, conn, frames.user_hello(user_id, node.server_id, self.now,
                                                      crypto.encode_public_key(key), display_name=display_name))
        return conn, user_id

    def user_frame(self, name: str, conn: int, frame: Envelope) -> None:
        self.event(name, FrameIn(conn, frame, digest(frame)))
        self.settle()

    def received(self, name: str, conn: int, frame_type: str) -> list[Envelope]:
        return [f for f in self.nodes[name].user_outbox[conn] if f.type == frame_type]

    # --- wiring ---------------------------------------------------------------------

    def _node_by_port(self, port: int) -> Node | None:
        return next((n for n in self.nodes.values() if n.port == port), None)

    def _act(self, name: str, actions: list[Action]) -> None:
        node = self.nodes[name]
        for action in actions:
            if isinstance(action, (Send, Relay)):
                relayed = isinstance(action, Relay)
                targets = [(c, action.frame.to) for c in action.conns] if relayed else action.targets
                # Presence is signed for real, so that a relay of it can be verified;
                # a relay writes the frame with the origin's signature unchanged.
                sig = action.frame.sig if relayed else self._sign(node, action.frame)
                for conn, to in targets:
                    frame = Envelope(type=action.frame.type, from_=action.frame.from_, to=to, ts=action.frame.ts,
                                     payload=action.frame.payload, sig=sig)
                    size = len(frame.to_wire().encode())
                    if size > self.largest.get(frame.type, 0):
                        self.largest[frame.type] = size
                    peer = self.wires.get((name, conn))
                    if peer is None:
                        node.user_outbox[conn].append(frame)
                    elif (name, peer[0]) in self.unwritten:
                        continue
                    else:
                        self.queue.append((peer[0], FrameIn(peer[1], frame, digest(frame), link_signed=not relayed)))
            elif isinstance(action, Dial):
                target = self._node_by_port(action.port)
                if (target is None or target.name in self.offline or name in self.offline
                        or frozenset((name, target.name)) in self.severed):
                    self.queue.append((name, LinkDown(action.conn, "connection refused")))
                    continue
                peer_conn = target.next_conn
                target.next_conn += 1
                self.wires[(name, action.conn)] = (target.name, peer_conn)
                self.wires[(target.name, peer_conn)] = (name, action.conn)
                self.queue.append((name, LinkUp(action.conn)))
            elif isinstance(action, Close):
                peer = self.wires.pop((name, action.conn), None)
                self.queue.append((name, LinkDown(action.conn, action.reason)))
                if peer is not None:
                    self.wires.pop(peer, None)
                    self.queue.append((peer[0], LinkDown(peer[1], "closed by peer")))
            elif isinstance(action, StoreWrite):
                node.store_log.append(action)

    def _sign(self, node: Node, frame: Envelope) -> str:
        if frame.type not in (T.USER_ADVERTISE, T.USER_REMOVE):
            return "test"
        if self.presence_sig is not None:
            return self.presence_sig
        key = (node.name, canonical_json(frame.payload))
        if key not in self.signatures:
            self.signatures[key] = transport_signature(node.key, frame.payload)
        return self.signatures[key]

    def sever(self, one: str, other: str) -> None:
        """The link between two nodes drops and neither can dial the other (a
        partial partition); both stay linked to everyone else."""
        self.severed.add(frozenset((one, other)))
        for (owner, conn), (peer, peer_conn) in list(self.wires.items()):
            if {owner, peer} == {one, other}:
                self.wires.pop((owner, conn), None)
                self.wires.pop((peer, peer_conn), None)
                self.queue.append((owner, LinkDown(conn, "network down")))
        self.settle()

    def cut(self, name: str, reachable: bool = True) -> None:
        """Every link of the node drops (both ends see it). With reachable=False the
        node also stops answering dials until `restore`."""
        for (owner, conn), (peer, peer_conn) in list(self.wires.items()):
            if owner == name:
                self.wires.pop((owner, conn), None)
                self.wires.pop((peer, peer_conn), None)
                self.queue.append((peer, LinkDown(peer_conn, "peer died")))
                self.queue.append((owner, LinkDown(conn, "network down")))
        if not reachable:
            self.offline.add(name)
        self.unwritten = {pair for pair in self.unwritten if name not in pair}
        self.settle()

    def restore(self, name: str) -> None:
        self.offline.discard(name)

    def unwritten_until_cut(self, sender: str, receiver: str) -> None:
        """What `sender` sends to `receiver` from now on is never written (a link being
        closed under it), until the next `cut` of either."""
        self.unwritten.add((sender, receiver))


def mesh_through_one_introducer(keys, names: str = "abc") -> Mesh:
    """Nodes named by `names`, the first the introducer of the others, all started and
    linked (keys[0], keys[1], ... in that order)."""
    mesh = Mesh()
    introducer = mesh.add(names[0], keys[0])
    for index, name in enumerate(names[1:], start=1):
        mesh.add(name, keys[index], introducers=[introducer])
    for name in names:
        mesh.start(name)
    return mesh
