"""100,000 users in a mesh of 10 servers (issue #18 item 3), pure router cores in
memory: a joining server and a server whose links come back learn every user with
no frame over the 1 MiB frame limit and no presence relayed to servers that have it.

The users are put straight into each server's tables (a hello per user through the
core would only make the test slower); each server then advertises them the way it
does to any newly linked server. One signature is reused for every advert
(`Mesh.presence_sig`): the frames on a link are taken as verified by the verifier pool,
and a relayed advert, which the router checks itself, would fail its check and show
up as an ERROR.
"""

from __future__ import annotations

import collections

import pytest

from socp.protocol import crypto
from socp.protocol import limits as wire_limits
from socp.protocol.envelope import Envelope
from socp.protocol.ids import new_id
from socp.protocol.signing import transport_signature
from socp.router.abuse_rules import Guard, LimitSettings
from socp.router.core_io import Action, Relay, Send
from socp.router.state import LOCAL, UserRecord

from .mesh import Mesh

SERVERS = 10
USERS_PER_SERVER = 10_000


class CountingMesh(Mesh):
    """A mesh that counts the frames its nodes send, by type, and the relays."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: collections.Counter[str] = collections.Counter()
        self.relayed = 0

    def _act(self, name: str, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Relay):
                self.relayed += len(action.conns)
            elif isinstance(action, Send):
                self.sent[action.frame.type] += len(action.targets)
        super()._act(name, actions)

    def reset_counts(self) -> None:
        self.sent.clear()
        self.relayed = 0
        self.largest.clear()


def _host_users(mesh: Mesh, name: str, count: int, pubkey: str) -> list[str]:
    """`count` users connected to server `name`, as its tables hold them after their
    hellos (one key for all: keys are slow to make, and nothing here compares them)."""
    state = mesh.nodes[name].state
    user_ids = [new_id() for _ in range(count)]
    for index, user_id in enumerate(user_ids):
        state.users[user_id] = UserRecord(pubkey=pubkey)
        state.user_locations[user_id] = LOCAL
        state.local_users[user_id] = 1_000_000 + index
    return user_ids


@pytest.fixture(scope="module")
def big_mesh(keys) -> tuple[CountingMesh, dict[str, list[str]]]:
    """10 linked servers with 10,000 users each, and an 11th that joined."""
    mesh = CountingMesh()
    mesh.settle_limit = 1_000_000
    mesh.presence_sig = transport_signature(keys[0], {"signed": "once"})
    names = [f"s{index}" for index in range(SERVERS)]
    introducer = mesh.add(names[0], keys[0])
    for index, name in enumerate(names[1:], start=1):
        mesh.add(name, keys[index], introducers=[introducer])
    mesh.add("joiner", keys[SERVERS], introducers=[introducer])
    for node in mesh.nodes.values():
        node.state.guard = Guard(LimitSettings())   # the node's own limits, rates included
    for name in names:
        mesh.start(name)
    user_key = crypto.encode_public_key(keys[0])
    hosted = {name: _host_users(mesh, name, USERS_PER_SERVER, user_key) for name in names}
    mesh.reset_counts()
    mesh.start("joiner")
    return mesh, hosted


def _assert_complete(mesh: Mesh, on: str, hosted: dict[str, list[str]]) -> None:
    state = mesh.nodes[on].state
    for name, user_ids in hosted.items():
        where = LOCAL if name == on else mesh.nodes[name].server_id
        assert all(state.user_locations.get(user_id) == where for user_id in user_ids), name
        assert state.user_locations.count_at(where) == len(user_ids)


def test_a_joining_server_learns_100k_users_with_every_frame_under_the_limit(big_mesh) -> None:
    mesh, hosted = big_mesh
    joiner = mesh.nodes["joiner"].state
    assert len(joiner.servers) == SERVERS
    assert len(joiner.user_locations) == SERVERS * USERS_PER_SERVER
    _assert_complete(mesh, "joiner", hosted)
    assert max(mesh.largest.values()) < wire_limits.MAX_FRAME_BYTES
    # The welcome lists servers, not users; it grows with the 10 servers only.
    assert mesh.largest["SERVER_WELCOME"] < 32 * 1024
    assert mesh.sent["USER_ADVERTISE"] == SERVERS * USERS_PER_SERVER   # one each, nothing twice
    # No server relays what it was given as a snapshot: every other server has it from
    # the origin (a relay with the reused signature would also be answered ERROR).
    assert mesh.relayed == 0 and mesh.sent["ERROR"] == 0
    assert joiner.seen.evicted == 0
    # Nothing refused by a rate limit: the per-server frame bucket (burst 5,000) does
    # not count presence, whose own bucket holds a whole snapshot.
    assert joiner.guard.dropped_frames == 0
    assert all(entry.dropped == 0 for entry in joiner.linkbook.entries.values())


def test_a_server_whose_links_come_back_resyncs_100k_users_under_the_limit(big_mesh) -> None:
    mesh, hosted = big_mesh
    mesh.advance(1500)           # heartbeats: every link has heard its peer
    mesh.reset_counts()
    mesh.cut("s3", reachable=False)
    mesh.restore("s3")
    for _ in range(10):
        mesh.advance(500)
        if len(mesh.nodes["s3"].state.servers) == SERVERS:
            break
    assert len(mesh.nodes["s3"].state.servers) == SERVERS
    for name in ("s3", "joiner"):
        _assert_complete(mesh, name, hosted)
    assert max(mesh.largest.values()) < wire_limits.MAX_FRAME_BYTES
    # s3 tells each of the 10 others its users again, and hears the 90,000 of the
    # 9 servers with users (the joiner has none). Both ends of each pair dial, so
    # each pair has two links for a moment and each link's opening carries a
    # snapshot: at most twice that.
    once = SERVERS * USERS_PER_SERVER + (SERVERS - 1) * USERS_PER_SERVER
    assert once <= mesh.sent["USER_ADVERTISE"] <= 2 * once
    assert mesh.relayed == 0 and mesh.sent["ERROR"] == 0
    assert mesh.nodes["s3"].state.seen.evicted == 0
    for name in ("s3", "joiner"):
        state = mesh.nodes[name].state
        assert state.guard.dropped_frames == 0
        assert all(entry.dropped == 0 for entry in state.linkbook.entries.values())


# --- the gossip rules that keep a join and a resync linear, at small scale ----------------


def test_snapshot_adverts_are_marked_and_not_relayed_but_live_ones_are(keys) -> None:
    mesh = CountingMesh()
    introducer = mesh.add("a", keys[0])
    mesh.add("b", keys[1], introducers=[introducer])
    mesh.start("a")
    mesh.start("b")
    mesh.connect_user("a", keys[2])
    mesh.reset_counts()
    mesh.add("c", keys[3], introducers=[introducer])
    mesh.start("c")
    # c learned a's user from a's snapshot (marked), and kept it to itself.
    assert len(mesh.nodes["c"].state.user_locations) == 1
    assert mesh.sent["USER_ADVERTISE"] == 1 and mesh.relayed == 0
    mesh.reset_counts()
    _, user_id = mesh.connect_user("b", keys[2])
    # A live advert is relayed (each of a and c passes b's on to the other), and the
    # relayed copies, seen already, are dropped without a signature check or an ERROR.
    assert mesh.relayed == 2 and mesh.sent["ERROR"] == 0
    assert all(node.state.user_locations.get(user_id) for node in mesh.nodes.values())


def test_a_bad_copy_of_presence_does_not_mark_the_genuine_frame_seen(keys) -> None:
    from socp.protocol.envelope import Envelope
    from socp.router.core_io import FrameIn

    from .harness import digest
    from .mesh import mesh_through_one_introducer

    mesh = mesh_through_one_introducer(keys)
    a, b, c = (mesh.nodes[name] for name in "abc")
    user_id = new_id()
    payload = {"user_id": user_id, "server_id": a.server_id, "meta": {}}
    genuine = Envelope(type="USER_ADVERTISE", from_=a.server_id, to="*", ts=mesh.now, payload=payload,
                       sig=transport_signature(keys[0], payload))
    forged = Envelope(type="USER_ADVERTISE", from_=a.server_id, to="*", ts=mesh.now, payload=payload, sig="AAAA")
    # b relays a bad copy to c first (not signed over its own link), then the real one.
    c_link_to_b = c.state.servers[b.server_id]
    mesh.event("c", FrameIn(c_link_to_b, forged, digest(forged), link_signed=False))
    mesh.settle()
    assert user_id not in c.state.user_locations
    mesh.event("c", FrameIn(c_link_to_b, genuine, digest(genuine), link_signed=False))
    mesh.settle()
    assert c.state.user_locations.get(user_id) == a.server_id


# --- /list with 100,000 known users: pages, each under the frame limit --------------------


def test_list_pages_through_100k_users_each_answer_under_the_frame_limit(keys) -> None:
    import time

    from socp.protocol import frames

    from .harness import Harness, sent_to

    node = Harness(keys[0])
    user_key = crypto.encode_public_key(keys[1])
    elsewhere = new_id()
    for _ in range(SERVERS * USERS_PER_SERVER):
        user_id = new_id()
        node.state.users[user_id] = UserRecord(pubkey=user_key, home_server=elsewhere)
        node.state.user_locations[user_id] = elsewhere
    conn, me, _ = node.connect_user(keys[2])
    everyone = set(node.state.user_locations)
    seen: list[str] = []
    after, pages, slowest = None, 0, 0.0
    while True:
        request = frames.list_request(me, node.server_id, _now_plus(pages))
        if after is not None:
            request = Envelope(type=request.type, from_=request.from_, to=request.to, ts=request.ts,
                               payload={"after": after})
        started = time.perf_counter()
        (answer,) = sent_to(node.feed(conn, request), conn, "LIST_RESPONSE")
        slowest = max(slowest, time.perf_counter() - started)
        pages += 1
        assert len(answer.to_wire().encode()) < wire_limits.MAX_FRAME_BYTES
        payload = answer.payload
        assert payload["users"] == sorted(payload["users"]) and len(payload["details"]) == len(payload["users"])
        seen += payload["users"]
        if not payload.get("truncated"):
            break
        assert payload["total"] == len(everyone) and payload["next"] == payload["users"][-1]
        after = payload["next"]
        assert pages < 1000
    assert seen == sorted(everyone) and pages > 1
    print(f"\n/list of {len(everyone)} users: {pages} pages, slowest {slowest * 1000:.0f} ms")


def _now_plus(step: int) -> int:
    from .harness import NOW

    return NOW + step


def test_presence_is_bounded_by_its_own_bucket_and_only_changes_spend_it() -> None:
    from socp.router import abuse_rules

    guard = Guard(LimitSettings(server_rate=1.0, server_burst=2, presence_rate=1.0, presence_burst=3))
    # The per-server frame bucket (burst 2) refuses a third frame, but not presence.
    assert abuse_rules.server_rate_problem(guard, "s", "SERVER_DELIVER") is None
    assert abuse_rules.server_rate_problem(guard, "s", "SERVER_DELIVER") is None
    assert abuse_rules.server_rate_problem(guard, "s", "SERVER_DELIVER") is not None
    assert abuse_rules.server_rate_problem(guard, "s", "USER_ADVERTISE") is None
    # Presence: 3 changes pass, the 4th is refused; an advert that changes nothing passes.
    assert [abuse_rules.presence_problem(guard, "s", 0, new_user=True) for _ in range(3)] == [None] * 3
    assert abuse_rules.presence_problem(guard, "s", 0, new_user=True) is not None
    assert abuse_rules.presence_problem(guard, "s", 5, new_user=False, changes=False) is None
