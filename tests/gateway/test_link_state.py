"""The gateway's pure pieces, without sockets: first-frame roles and logins, the
byte-size check, and a link's reorder-then-outbox path."""

from __future__ import annotations

import json

import pytest

from socp.gateway.roles import opens_login, role_of_first_frame
from socp.gateway.socket_links import (
    ACCEPTED_CONNS_PER_BOOT,
    CLOSE_TRY_AGAIN_LATER,
    FIRST_DIALLED_CONN,
    CloseRequest,
    LinkTable,
    SocketLink,
    first_accepted_conn,
)
from socp.gateway.socket_session import utf8_size_exceeds
from socp.ipc.link_state import IllegalTransition, LinkState
from socp.ipc.messages import ROLE_SERVER, ROLE_UNKNOWN, ROLE_USER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (json.dumps({"type": "USER_HELLO", "payload": {"pubkey": "K"}}), (ROLE_USER, "")),
        (json.dumps({"type": "SERVER_HELLO_JOIN", "payload": {"pubkey": "K"}}), (ROLE_SERVER, "K")),
        (json.dumps({"type": "SERVER_ANNOUNCE", "payload": {"pubkey": "K"}}), (ROLE_SERVER, "K")),
        (json.dumps({"type": "SERVER_HELLO_LINK", "payload": {"pubkey": 7}}), (ROLE_SERVER, "")),
        (json.dumps({"type": "SERVER_HELLO_LINK", "payload": []}), (ROLE_SERVER, "")),
        (json.dumps({"type": "MSG_DIRECT", "payload": {}}), (ROLE_UNKNOWN, "")),
        (json.dumps({"type": ["USER_HELLO"]}), (ROLE_UNKNOWN, "")),
        (json.dumps(["USER_HELLO"]), (ROLE_UNKNOWN, "")),
        ("{broken", (ROLE_UNKNOWN, "")),
        ("", (ROLE_UNKNOWN, "")),
    ],
)
def test_role_of_first_frame(text: str, expected: tuple[int, str]) -> None:
    assert role_of_first_frame(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (json.dumps({"type": "LOGIN_REQUEST", "payload": {"user_id": "u"}}), True),
        (json.dumps({"type": "LOGIN_PROOF", "payload": {}}), True),
        (json.dumps({"type": "USER_HELLO", "payload": {}}), False),
        (json.dumps({"type": "LOGIN_BLOB", "payload": {}}), False),   # the node's answer, not an opening
        (json.dumps({"type": ["LOGIN_REQUEST"]}), False),
        (json.dumps(["LOGIN_REQUEST"]), False),
        ("{broken", False),
    ],
)
def test_opens_login(text: str, expected: bool) -> None:
    assert opens_login(text) is expected


@pytest.mark.parametrize(
    "text", ["", "a" * 10, "a" * 100, "a" * 101, "é" * 50, "é" * 51, "😀" * 25, "😀" * 26, "a" * 99 + "é"])
def test_utf8_size_exceeds_matches_encoding(text: str) -> None:
    assert utf8_size_exceeds(text, 100) == (len(text.encode()) > 100)


def test_release_reorders_and_stops_after_a_close() -> None:
    link = SocketLink(1, "peer", LinkState.OPEN, queue_frames=8)
    assert link.release(1, "b")
    assert len(link.outbox) == 0
    assert link.release(2, CloseRequest(1000, "bye"))
    assert link.release(0, "a")
    assert [link.outbox.popleft() for _ in range(3)] == ["a", "b", CloseRequest(1000, "bye")]
    assert not link.accepting_output  # anything later is dropped by the inbox


def test_full_outbox_closes_the_link_as_slow_consumer() -> None:
    link = SocketLink(1, "peer", LinkState.OPEN, queue_frames=2)
    assert link.release(0, "a") and link.release(1, "b")
    assert not link.release(2, "c")
    assert link.closing.is_set() and link.close_code == CLOSE_TRY_AGAIN_LATER


def test_link_state_table_refuses_illegal_moves() -> None:
    link = LinkTable(queue_frames=4).add_accepted("peer")
    assert (link.conn, link.state) == (1, LinkState.AWAITING_HELLO)
    with pytest.raises(IllegalTransition):
        link.move_to(LinkState.DIALLING)
    link.move_to(LinkState.OPEN)
    link.move_to(LinkState.CLOSING)
    link.move_to(LinkState.CLOSED)


def test_each_gateway_start_numbers_its_accepted_links_apart() -> None:
    # Frames for the links of a gateway that died may still reach the next one; no
    # link of the next one may carry the same id.
    first = first_accepted_conn(1_800_000_000.0)
    restarted = first_accepted_conn(1_800_000_001.2)
    assert abs(restarted - first) >= ACCEPTED_CONNS_PER_BOOT
    last_block = (FIRST_DIALLED_CONN // ACCEPTED_CONNS_PER_BOOT - 1) / 10
    for started_at in (0.0, last_block, 1_800_000_000.0, 1_800_000_001.2, 2_500_000_000.9):
        conn = first_accepted_conn(started_at)   # and the block's other ids, below the dialled ones
        assert 1 <= conn and conn + ACCEPTED_CONNS_PER_BOOT - 2 < FIRST_DIALLED_CONN
    assert first_accepted_conn(last_block) == FIRST_DIALLED_CONN - ACCEPTED_CONNS_PER_BOOT + 1
    table = LinkTable(queue_frames=4, first_accepted=restarted)
    assert [table.add_accepted("peer").conn for _ in range(3)] == [restarted, restarted + 1, restarted + 2]


async def test_a_link_stops_reading_while_kept_frames_wait_for_the_router() -> None:
    # Backpressure, not loss: at KEPT_FRAMES unapplied frames the reader waits, and
    # every frame stays kept until the router's InboundDone mark passes it.
    import asyncio

    from socp.gateway.socket_links import KEPT_FRAMES

    link = SocketLink(7, "peer", LinkState.OPEN, queue_frames=16, role=ROLE_SERVER)
    for seq in range(KEPT_FRAMES):
        await asyncio.wait_for(link.wait_for_kept_room(), 1)
        link.keep(seq, "frame", 0.0)
    reader = asyncio.create_task(link.wait_for_kept_room())
    await asyncio.sleep(0)
    assert not reader.done() and link.reader_waits == 1 and len(link.kept) == KEPT_FRAMES
    link.forget_kept_below(10)           # the router applied seqs 0..9
    await asyncio.wait_for(reader, 1)
    assert len(link.kept) == KEPT_FRAMES - 10 and link.kept[0][0] == 10


def test_a_frame_waits_longer_for_its_check_behind_a_longer_queue_before_it_is_submitted_again() -> None:
    from socp.gateway.recovery import VERIFY_TIMEOUT, verify_patience

    assert verify_patience(0, 2) == VERIFY_TIMEOUT
    # 10 links x 1024 kept frames (a mesh's snapshots at once): not presumed lost at 2 s.
    assert verify_patience(10_240, 2) > 2 * VERIFY_TIMEOUT
    assert verify_patience(10_240, 4) < verify_patience(10_240, 2)
