"""G17 advertises a user before that user has registered with it (issue #14, G17 (c)).

Recorded live on 2026-12-06 (recorded/g17-late-register-link.jsonl): G17's server
joined our node; a `socp chat` user on G17 said hello, and only then stored its login
(REGISTER). G17 advertised the user at the hello, without a key; our PUBKEY_REQUEST
was answered `{"user_id": ..., "pubkey": null}` (G17 answers from its own user table,
which the REGISTER fills), and nothing asked again: every DM from our users to that
user failed "no key known for user ...". A local user's look-up now asks G17 again
and is answered when G17 answers (socp/router/key_waits.py); the recording goes on
with that second PUBKEY_RESPONSE, carrying the key.
"""

from __future__ import annotations

import json

import pytest

from interop.links_replay import feed, first, recorded, stamped
from router.harness import NOW, Harness, errors_to, sent_to
from socp.protocol import crypto, frames
from socp.protocol.envelope import Envelope
from socp.router import key_waits

LATE = "g17-late-register"
UNKNOWN_USER = "3f1c2b9e-0d4a-4c5b-9e6f-7a8b9c0d1e2f"


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def _g17_joined(node: Harness) -> tuple[int, str, list[Envelope]]:
    """G17 joins as `auto` on conn 5 and advertises its user (asked for its key, answered
    null). Returns (conn, the user's id, the two recorded PUBKEY_RESPONSEs)."""
    conn = 5
    [welcome] = sent_to(feed(node.state, conn, stamped(first(LATE, "SERVER_HELLO_JOIN"), NOW)),
                        conn, "SERVER_WELCOME")
    # G17 adopted the id of the recorded run's welcome; here it gets a new one.
    recorded_id = first(LATE, "SERVER_WELCOME", direction="us->peer")["payload"]["assigned_id"]

    def from_g17(raw: dict) -> Envelope:
        return stamped(json.loads(json.dumps(raw).replace(recorded_id, welcome.payload["assigned_id"])), NOW)

    advert = from_g17(first(LATE, "USER_ADVERTISE"))
    assert "meta" not in advert.payload   # G17's adverts carry no key
    wanted = advert.payload["user_id"]
    asked = sent_to(feed(node.state, conn, advert), conn, "PUBKEY_REQUEST")
    assert [q.payload["user_id"] for q in asked] == [wanted]
    answers = [from_g17(raw) for raw in recorded(LATE, frame_type="PUBKEY_RESPONSE")]
    assert [a.payload["pubkey"] is None for a in answers] == [True, False]
    assert errors_to(feed(node.state, conn, answers[0]), conn) == []
    return conn, wanted, answers


@pytest.mark.parametrize("question, answer_type", [
    (frames.directory_get, "DIRECTORY_ENTRY"),   # our client
    (frames.pubkey_request, "PUBKEY_RESPONSE"),  # G17's client on our node
])
def test_a_lookup_after_a_null_answer_asks_g17_again_and_gets_the_key(node, keys, question, answer_type) -> None:
    g17, wanted, (_, key_answer) = _g17_joined(node)
    user_conn, user_id, _ = node.connect_user(keys[1])
    actions = node.feed(user_conn, question(user_id, node.server_id, NOW, wanted))
    assert [q.payload["user_id"] for q in sent_to(actions, g17, "PUBKEY_REQUEST")] == [wanted]
    assert sent_to(actions, user_conn) == []   # held: no USER_NOT_FOUND yet
    [answer] = sent_to(feed(node.state, g17, key_answer), user_conn, answer_type)
    assert crypto.normalise_public_key(answer.payload["pubkey"]) == crypto.normalise_public_key(
        key_answer.payload["pubkey"])
    assert node.state.held_key_lookups == {}


def test_a_held_lookup_is_answered_not_found_when_g17_still_has_no_key(node, keys) -> None:
    g17, wanted, (null_answer, _) = _g17_joined(node)
    user_conn, user_id, _ = node.connect_user(keys[1])
    node.feed(user_conn, frames.directory_get(user_id, node.server_id, NOW, wanted))
    actions = feed(node.state, g17, null_answer)
    assert errors_to(actions, user_conn) == ["USER_NOT_FOUND"]


def test_two_lookups_while_one_question_is_out_ask_once_and_both_are_answered(node, keys) -> None:
    g17, wanted, (_, key_answer) = _g17_joined(node)
    user_conn, user_id, _ = node.connect_user(keys[1])
    first_ask = node.feed(user_conn, frames.directory_get(user_id, node.server_id, NOW, wanted))
    second_ask = node.feed(user_conn, frames.pubkey_request(user_id, node.server_id, NOW, wanted))
    assert len(sent_to(first_ask, g17, "PUBKEY_REQUEST")) == 1 and sent_to(second_ask, g17) == []
    answered = feed(node.state, g17, key_answer)
    assert [f.type for f in sent_to(answered, user_conn)] == ["DIRECTORY_ENTRY", "PUBKEY_RESPONSE"]


def test_a_lookup_of_a_user_nobody_knows_is_answered_at_once(node, keys) -> None:
    user_conn, user_id, _ = node.connect_user(keys[1])
    actions = node.feed(user_conn, frames.directory_get(user_id, node.server_id, NOW, UNKNOWN_USER))
    assert errors_to(actions, user_conn) == ["USER_NOT_FOUND"]


def test_held_lookups_are_bounded_the_oldest_wait_is_answered_first(node, keys, monkeypatch) -> None:
    monkeypatch.setattr(key_waits, "HELD_USERS", 1)
    g17, wanted, _ = _g17_joined(node)
    other = "0b7c6d5e-4f3a-4b2c-8d1e-9f0a1b2c3d4e"
    node.state.user_locations[other] = node.state.user_locations[wanted]   # a second keyless G17 user
    user_conn, user_id, _ = node.connect_user(keys[1])
    node.feed(user_conn, frames.directory_get(user_id, node.server_id, NOW, wanted))
    actions = node.feed(user_conn, frames.directory_get(user_id, node.server_id, NOW, other))
    assert errors_to(actions, user_conn) == ["USER_NOT_FOUND"]   # the first wait, answered to make room
    assert list(node.state.held_key_lookups) == [other]
    assert [q.payload["user_id"] for q in sent_to(actions, g17, "PUBKEY_REQUEST")] == [other]
