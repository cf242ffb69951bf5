"""Pure tests of DMs held for offline users with an account here (router/offline.py)."""

from __future__ import annotations

import pytest

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_decode, b64url_encode
from socp.router import offline
from socp.router.accounts import LoginRecord
from socp.store.records import HeldMessage

from .harness import NOW, Harness, errors_to, sent_to, store_writes


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def dm(sender_key, sender: str, recipient_key, recipient: str, text: bytes, ts: int):
    ciphertext = b64url_encode(crypto.oaep_encrypt(recipient_key.public_key(), text))
    content_sig = signing.sign_dm(sender_key, ciphertext, sender, recipient, ts)
    return frames.msg_direct(sender, recipient, ts, ciphertext, crypto.encode_public_key(sender_key), content_sig)


def away_with_account(node: Harness, key) -> str:
    conn, user_id, _ = node.connect_user(key, name="bob")
    node.state.accounts.logins[user_id] = LoginRecord("blob", "verifier")
    node.drop(conn)
    assert user_id not in node.state.user_locations
    return user_id


def opened(deliver, key, recipient: str) -> bytes:
    payload = deliver.payload
    assert signing.verify_dm(crypto.decode_public_key(payload["sender_pub"]), payload["content_sig"],
                             payload["ciphertext"], frames.deliver_sender(deliver), recipient, deliver.ts)
    return crypto.oaep_decrypt(key, b64url_decode(payload["ciphertext"]))


def test_dms_to_an_away_account_are_held_then_delivered_oldest_first_once(node, keys) -> None:
    bob = away_with_account(node, keys[2])
    a_conn, alice, _ = node.connect_user(keys[1], name="alice")
    held_ids = []
    for i in range(3):
        actions = node.feed(a_conn, dm(keys[1], alice, keys[2], bob, f"m{i}".encode(), NOW + i))
        assert not errors_to(actions, a_conn)
        (write,) = store_writes(actions, "hold_message")
        assert write.arguments[0] == bob and write.arguments[3]["payload"]["ciphertext"]
        held_ids.append(write.arguments[1])
    assert held_ids == sorted(held_ids)

    b_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    delivered = sent_to(actions, b_conn, "USER_DELIVER")
    assert [opened(d, keys[2], bob) for d in delivered] == [b"m0", b"m1", b"m2"]
    (forget,) = store_writes(actions, "drop_held")
    assert forget.arguments == (bob, held_ids)
    node.drop(b_conn)
    _, _, again = node.connect_user(keys[2], user_id=bob)
    assert not sent_to(again, b_conn + 2, "USER_DELIVER") and not store_writes(again, "drop_held")


def test_a_user_without_an_account_is_still_not_found(node, keys) -> None:
    conn, carol, _ = node.connect_user(keys[2])
    node.drop(conn)
    a_conn, alice, _ = node.connect_user(keys[1])
    actions = node.feed(a_conn, dm(keys[1], alice, keys[2], carol, b"x", NOW))
    assert errors_to(actions, a_conn) == ["USER_NOT_FOUND"] and not store_writes(actions, "hold_message")


@pytest.mark.parametrize("bounds", [offline.HeldBounds(max_count=2), offline.HeldBounds(max_bytes=3000)])
def test_a_bound_refuses_the_sender_with_an_error(node, keys, bounds) -> None:
    node.state.held.bounds = bounds
    bob = away_with_account(node, keys[2])
    a_conn, alice, _ = node.connect_user(keys[1])
    outcomes = [errors_to(node.feed(a_conn, dm(keys[1], alice, keys[2], bob, b"m", NOW + i)), a_conn)
                for i in range(3)]
    assert outcomes[0] == [] and outcomes[2] == ["OVERLOADED"]
    error = next(f for f in sent_to(node.feed(a_conn, dm(keys[1], alice, keys[2], bob, b"m", NOW + 9)), a_conn)
                 if f.type == "ERROR")
    assert "offline" in error.payload["detail"] and error.payload.get("msg_ref")


def test_messages_past_the_age_bound_are_dropped_not_delivered(node, keys) -> None:
    node.state.held.bounds = offline.HeldBounds(max_age_ms=60_000)
    bob = away_with_account(node, keys[2])
    a_conn, alice, _ = node.connect_user(keys[1])
    (old,) = store_writes(node.feed(a_conn, dm(keys[1], alice, keys[2], bob, b"old", NOW)), "hold_message")
    node.state.now_ms = NOW + 50_000
    (new,) = store_writes(node.feed(a_conn, dm(keys[1], alice, keys[2], bob, b"new", NOW + 50_000)),
                          "hold_message")
    node.state.now_ms = NOW + 61_000
    b_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    assert [opened(d, keys[2], bob) for d in sent_to(actions, b_conn, "USER_DELIVER")] == [b"new"]
    (forget,) = store_writes(actions, "drop_held")
    assert forget.arguments == (bob, [old.arguments[1], new.arguments[1]])


def test_held_messages_loaded_from_the_store_are_delivered_and_ids_never_reused(node, keys) -> None:
    source = Harness(server_key=keys[0])
    bob = away_with_account(source, keys[2])
    a_conn, alice, _ = source.connect_user(keys[1])
    writes = [store_writes(source.feed(a_conn, dm(keys[1], alice, keys[2], bob, f"r{i}".encode(), NOW + i)),
                           "hold_message")[0] for i in range(2)]
    # A new router: its tables from the snapshot.
    node.state.accounts.logins[bob] = LoginRecord("blob", "verifier")
    offline.load(node.state, [HeldMessage(*w.arguments) for w in writes])
    assert node.state.held.next_id(NOW) > writes[-1].arguments[1]
    b_conn, _, actions = node.connect_user(keys[2], user_id=bob)
    assert [opened(d, keys[2], bob) for d in sent_to(actions, b_conn, "USER_DELIVER")] == [b"r0", b"r1"]
