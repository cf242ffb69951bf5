"""Bounds on presence from linked servers and on list answers (issue #15 weakness 3:
one joined server advertising thousands of made-up users broke /list mesh-wide)."""

from __future__ import annotations

import pytest

from socp.protocol import frames
from socp.protocol import limits as wire_limits
from socp.protocol.envelope import Envelope, parse
from socp.protocol.ids import new_id
from socp.router.abuse_rules import Guard, LimitSettings
from socp.router.core_io import FrameIn
from socp.router.locations import Locations

from .harness import digest
from .mesh import Mesh, mesh_through_one_introducer


@pytest.fixture
def mesh3(keys) -> Mesh:
    return mesh_through_one_introducer(keys)


def _advertise_made_up_users(mesh: Mesh, on: str, by: str, count: int, ts_step: int = 1) -> list[str]:
    """Server `by` advertises `count` new users to node `on`, over its own link."""
    target, source = mesh.nodes[on], mesh.nodes[by]
    link = target.state.servers[source.server_id]
    made_up = [new_id() for _ in range(count)]
    for index, user_id in enumerate(made_up):
        advert = Envelope(type="USER_ADVERTISE", from_=source.server_id, to="*", ts=mesh.now + index * ts_step,
                          payload={"user_id": user_id, "server_id": source.server_id, "meta": {}})
        mesh.event(on, FrameIn(link, advert, digest(advert)))
    mesh.settle()
    return made_up


def test_locations_count_users_per_place() -> None:
    places = Locations()
    places["u1"] = "s1"
    places["u2"] = "s1"
    places["u2"] = "s1"          # the same again changes nothing
    places["u3"] = "local"
    assert (places.count_at("s1"), places.count_at("local"), places.count_at("s2")) == (2, 1, 0)
    places["u1"] = "s2"          # a move
    del places["u2"]
    assert (places.count_at("s1"), places.count_at("s2"), len(places)) == (0, 1, 2)
    with pytest.raises(TypeError):
        places.pop("u1")         # would change it behind the counts' back


def test_one_server_may_not_claim_more_users_than_the_cap(mesh3: Mesh) -> None:
    c = mesh3.nodes["c"]
    c.state.guard = Guard(LimitSettings(rate_limits=False, users_per_server=3))
    b_id = mesh3.nodes["b"].server_id
    made_up = _advertise_made_up_users(mesh3, on="c", by="b", count=5)
    assert [user in c.state.user_locations for user in made_up] == [True, True, True, False, False]
    assert c.state.user_locations.count_at(b_id) == 3
    row = next(entry for entry in c.state.linkbook.entries.values() if entry.peer_id == b_id)
    assert row.dropped == 2 and "the most one server may have" in row.reason


def test_presence_changes_per_server_are_rate_limited(mesh3: Mesh) -> None:
    c = mesh3.nodes["c"]
    c.state.guard = Guard(LimitSettings(presence_rate=1.0, presence_burst=4))
    c.state.guard.now_ms = c.state.now_ms
    made_up = _advertise_made_up_users(mesh3, on="c", by="b", count=10, ts_step=0)
    assert sum(user in c.state.user_locations for user in made_up) == 4


def _detail(user_id: str) -> dict[str, str]:
    return {"user_id": user_id, "server_id": new_id(), "display_name": "x" * 64, "pubkey": "K" * 740}


def test_a_list_answer_fits_in_one_frame_however_many_users() -> None:
    users = [new_id() for _ in range(3000)]          # ~1.4 MB written out in full
    built = frames.list_response("s", "u", 1, users, [_detail(u) for u in users])
    wire = built.to_wire()
    assert len(wire.encode()) <= wire_limits.MAX_FRAME_BYTES
    payload = parse(wire).payload
    assert payload["total"] == 3000 and payload["truncated"] is True
    assert payload["users"] == sorted(users)[:len(payload["users"])]            # the first ones, in order
    assert [d["user_id"] for d in payload["details"]] == payload["users"]
    ids_only = frames.user_list("s", "u", 1, [new_id() for _ in range(wire_limits.MAX_LIST_ITEMS + 5)])
    assert len(ids_only.payload["users"]) <= wire_limits.MAX_LIST_ITEMS and ids_only.payload["truncated"] is True
    parse(ids_only.to_wire())


def test_a_small_list_answer_is_not_marked_cut() -> None:
    built = frames.who("s", "u", 1, ["b", "a"])
    assert built.payload == {"users": ["a", "b"]}
