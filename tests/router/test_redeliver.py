"""Content sent to a local user is kept a few seconds and parked again when the
user's connection is lost with the gateway (recovery.py; pure core, no sockets)."""

from __future__ import annotations

from collections import deque

import pytest

from socp.protocol import crypto, frames
from socp.protocol.encoding import b64url_encode
from socp.protocol.ids import PUBLIC_CHANNEL
from socp.router import core, recovery
from socp.router.core_io import GATEWAY_RESTARTED, LinkDown, Send, Tick
from socp.router.state import PARKED_LIMIT

from .harness import NOW, Harness, sent_to
from .test_users import dm


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def ciphertexts(envelopes) -> list[str]:
    return [f.payload["ciphertext"] for f in envelopes if f.type == "USER_DELIVER"]


def test_only_acknowledged_content_to_a_users_own_connection_is_remembered(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    node.feed(a_conn, dm(keys[1], alice, keys[2], bob))
    public = frames.msg_public_channel(alice, NOW, b64url_encode(b"x" * 64), crypto.encode_public_key(keys[1]), "c2ln")
    node.feed(a_conn, public)
    node.state.now_ms += node.state.timing.ack_interval_ms
    assert sent_to(core.handle(node.state, Tick()), a_conn, "ACK")
    remembered = {user: [(frame.type, frame.to) for _, frame in recent]
                  for user, recent in node.state.delivered_recently.items()}
    # Bob: his DM and his copy of the public message, each as it was sent to him; alice
    # sent the public message and got no copy. Her ACK, the channel updates both got
    # on joining and other answers are not content and are never parked again.
    assert remembered == {bob: [("USER_DELIVER", bob), ("MSG_PUBLIC_CHANNEL", PUBLIC_CHANNEL)]}


def test_each_copy_is_remembered_with_its_own_recipient(node, keys) -> None:
    b_conn, bob, _ = node.connect_user(keys[2])
    c_conn, carol, _ = node.connect_user(keys[3])
    deliver = frames.user_deliver(node.server_id, "", NOW, "Y2lwaGVy", "someone", "", "c2ln")
    recovery.record_delivered(node.state, [Send(((b_conn, bob), (c_conn, carol), (99, "stranger")), deliver)])
    assert [frame.to for _, frame in node.state.delivered_recently[bob]] == [bob]
    assert [frame.to for _, frame in node.state.delivered_recently[carol]] == [carol]
    assert "stranger" not in node.state.delivered_recently   # conn 99 is no user of ours


def test_a_user_lost_with_the_gateway_gets_recent_content_again_first(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    early = dm(keys[1], alice, keys[2], bob, text=b"early", ts=NOW)
    node.feed(a_conn, early)
    node.state.now_ms += 1_000
    core.handle(node.state, LinkDown(b_conn, GATEWAY_RESTARTED))
    while_away = dm(keys[1], alice, keys[2], bob, text=b"while away", ts=NOW + 1)
    node.feed(a_conn, while_away)
    new_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    # The frame sent just before the crash may never have been written: it comes again,
    # ahead of what was parked since, so the user sees the original order.
    assert ciphertexts(sent_to(actions, new_conn)) == [early.payload["ciphertext"],
                                                       while_away.payload["ciphertext"]]
    assert bob not in node.state.parked


def test_content_older_than_the_window_is_not_parked_again(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    node.feed(a_conn, dm(keys[1], alice, keys[2], bob, text=b"old", ts=NOW))
    node.state.now_ms += node.state.timing.redeliver_window_ms + 1
    core.handle(node.state, LinkDown(b_conn, GATEWAY_RESTARTED))
    new_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    assert ciphertexts(sent_to(actions, new_conn)) == []


def test_tick_forgets_content_older_than_the_window(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    node.feed(a_conn, dm(keys[1], alice, keys[2], bob, text=b"one", ts=NOW))
    node.state.now_ms += 2_000
    node.feed(a_conn, dm(keys[1], alice, keys[2], bob, text=b"two", ts=NOW + 1))
    node.state.now_ms += node.state.timing.redeliver_window_ms - 1_000   # "one" is now too old
    core.handle(node.state, Tick())
    assert len(node.state.delivered_recently[bob]) == 1
    node.state.now_ms += 2_000
    core.handle(node.state, Tick())
    assert bob not in node.state.delivered_recently


def test_a_user_who_left_is_forgotten_and_nothing_is_parked(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    node.feed(a_conn, dm(keys[1], alice, keys[2], bob))
    core.handle(node.state, LinkDown(b_conn, "peer closed with 1000"))
    assert bob not in node.state.delivered_recently and bob not in node.state.parked


def test_parking_again_stays_within_the_parked_bound(node, keys) -> None:
    _, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    core.handle(node.state, LinkDown(b_conn, GATEWAY_RESTARTED))
    parked = node.state.parked[bob]
    filler = frames.user_deliver(node.server_id, bob, NOW, "ZmlsbGVy", alice, "", "c2ln")
    parked.frames += [filler] * (PARKED_LIMIT - 1)          # room for one more
    recent = [frames.user_deliver(node.server_id, bob, NOW + i, f"cmVjZW50{i}", alice, "", "c2ln") for i in range(3)]
    node.state.delivered_recently[bob] = deque((node.state.now_ms, frame) for frame in recent)
    recovery.park_again(node.state, bob)
    # Only the newest recent frame fits; it goes first, ahead of what waited already.
    assert len(parked.frames) == PARKED_LIMIT
    assert parked.frames[0] == recent[-1] and parked.frames[1] == filler
