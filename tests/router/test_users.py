"""Pure tests of the router's user-facing rules (SOCP §7, §8, §11)."""

from __future__ import annotations

import pytest

from socp.protocol import crypto, frames, signing
from socp.protocol.encoding import b64url_encode
from socp.protocol.ids import new_id
from socp.router import core
from socp.router.core_io import BatchEnd
from socp.router.state import LOCAL

from .harness import NOW, Harness, closes, errors_to, sends, sent_to, store_writes


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def dm(sender_key, sender: str, recipient_key, recipient: str, text: bytes = b"hi", ts: int = NOW):
    ciphertext = b64url_encode(crypto.oaep_encrypt(recipient_key.public_key(), text))
    content_sig = signing.sign_dm(sender_key, ciphertext, sender, recipient, ts)
    return frames.msg_direct(sender, recipient, ts, ciphertext, crypto.encode_public_key(sender_key), content_sig)


def test_hello_admits_user_binds_key_and_joins_channel(node, keys) -> None:
    conn, alice, actions = node.connect_user(keys[1], name="Alice")
    assert node.state.local_users[alice] == conn
    assert node.state.user_locations[alice] == LOCAL
    assert alice in node.state.channel_members
    assert node.state.channel_version == 2
    (bind,) = store_writes(actions, "bind_user")
    assert bind.arguments[:2] == (alice, crypto.encode_public_key(keys[1]))
    added = sent_to(actions, conn, "PUBLIC_CHANNEL_ADD")
    assert added and added[0].payload == {"add": [alice], "if_version": 1}
    assert sent_to(actions, conn, "PUBLIC_CHANNEL_UPDATED")[0].payload["version"] == 2
    assert not errors_to(actions, conn)


def test_a_join_is_not_fanned_out_to_every_local_user(node, keys) -> None:
    first, _, _ = node.connect_user(keys[1])
    second, bob, actions = node.connect_user(keys[2])
    assert sent_to(actions, second, "PUBLIC_CHANNEL_ADD")  # the newcomer learns the version
    assert not sent_to(actions, first, "PUBLIC_CHANNEL_ADD")  # no n^2 fan-out of joins
    assert not sent_to(actions, first, "PUBLIC_CHANNEL_UPDATED")


def test_joins_of_one_batch_share_one_announcement(node, keys) -> None:
    # The process driver batches: a burst of hellos costs two signatures, not two each.
    node.state.batch_joins = True
    joined = [node.connect_user(keys[1 + i % 2]) for i in range(3)]
    assert all(not sends(actions, "PUBLIC_CHANNEL_ADD") for _, _, actions in joined)
    gone_conn, gone_user, _ = joined[2]
    node.drop(gone_conn)                                   # left before the batch ended
    actions = core.handle(node.state, BatchEnd())
    (add,) = sends(actions, "PUBLIC_CHANNEL_ADD")
    (updated,) = sends(actions, "PUBLIC_CHANNEL_UPDATED")
    assert add.frame.payload == {"add": [user for _, user, _ in joined], "if_version": 1}
    assert updated.frame.payload["version"] == 2 == node.state.channel_version
    assert add.targets == updated.targets == tuple((conn, "*") for conn, _, _ in joined[:2])
    assert [w.arguments for w in store_writes(actions, "add_channel_member")] == [(u, 2) for _, u, _ in joined]
    assert gone_user in node.state.channel_members            # members are never removed
    assert core.handle(node.state, BatchEnd()) == []          # nothing new, nothing sent


def test_duplicate_user_id_is_refused_and_first_connection_stays(node, keys) -> None:
    first, alice, _ = node.connect_user(keys[1])
    second, _, actions = node.connect_user(keys[1], user_id=alice)
    assert errors_to(actions, second) == ["NAME_IN_USE"]
    assert closes(actions) == [second]
    assert node.state.local_users[alice] == first


def test_registered_id_with_another_key_is_refused(node, keys) -> None:
    conn, alice, _ = node.connect_user(keys[1])
    node.drop(conn)
    again, _, actions = node.connect_user(keys[2], user_id=alice)
    assert errors_to(actions, again) == ["NAME_IN_USE"]
    assert alice not in node.state.local_users
    # The rightful key still gets in.
    back, _, actions = node.connect_user(keys[1], user_id=alice)
    assert node.state.local_users[alice] == back and not errors_to(actions, back)


def test_direct_message_becomes_user_deliver_with_original_ts(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    frame = dm(keys[1], alice, keys[2], bob, ts=NOW - 5)
    actions = node.feed(a_conn, frame)
    (deliver,) = sent_to(actions, b_conn, "USER_DELIVER")
    assert deliver.ts == NOW - 5 and deliver.to == bob and deliver.from_ == node.server_id
    assert deliver.payload == {
        "ciphertext": frame.payload["ciphertext"], "sender": alice,
        "sender_pub": frame.payload["sender_pub"], "content_sig": frame.payload["content_sig"],
    }
    # The recipient can decrypt and verify what the server relayed.
    assert signing.verify_dm(keys[1].public_key(), deliver.payload["content_sig"], deliver.payload["ciphertext"],
                             alice, bob, deliver.ts)


def test_unknown_recipient_gets_user_not_found(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    actions = node.feed(a_conn, dm(keys[1], alice, keys[2], new_id()))
    assert errors_to(actions, a_conn) == ["USER_NOT_FOUND"]


def test_frame_with_someone_elses_from_is_refused(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    actions = node.feed(a_conn, dm(keys[2], bob, keys[1], alice))
    assert errors_to(actions, a_conn) == ["FORBIDDEN"]
    assert not sent_to(actions, b_conn) and not sent_to(actions, a_conn, "USER_DELIVER")


def test_replayed_and_stale_frames_have_no_second_effect(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    frame = dm(keys[1], alice, keys[2], bob)
    assert sent_to(node.feed(a_conn, frame), b_conn, "USER_DELIVER")
    again = node.feed(a_conn, frame)  # a re-send: REPLAY naming its msg_ref (user_acks.py), never delivered twice
    assert errors_to(again, a_conn) == ["REPLAY"] and not sent_to(again, b_conn)
    stale = dm(keys[1], alice, keys[2], bob, ts=NOW - 60 * 60 * 1000)
    late = node.feed(a_conn, stale)
    assert errors_to(late, a_conn) == ["REPLAY"] and not sent_to(late, b_conn)


def test_list_answers_every_request_form_sorted_in_its_own_dialect(node, keys) -> None:
    """Interop table: LIST_REQUEST -> LIST_RESPONSE; USER_LIST_REQ/LIST/CMD_LIST ->
    USER_LIST {users} (G45's client reads only that); WHO -> WHO {users} (G101)."""
    a_conn, alice, _ = node.connect_user(keys[1], name="Alice")
    _, bob, _ = node.connect_user(keys[2])
    replies = {"LIST_REQUEST": "LIST_RESPONSE", "USER_LIST_REQ": "USER_LIST", "LIST": "USER_LIST",
               "CMD_LIST": "USER_LIST", "WHO": "WHO"}
    for frame_type, reply_type in replies.items():
        request = frames.list_request(alice, node.server_id, NOW)
        request = type(request)(type=frame_type, from_=alice, to=node.server_id, ts=NOW, payload={})
        actions = node.feed(a_conn, request)
        (reply,) = sent_to(actions, a_conn, reply_type)
        assert reply.payload["users"] == sorted([alice, bob])
        if reply_type == "LIST_RESPONSE":
            assert reply.payload["online_users"] == reply.payload["users"]
            names = {d["user_id"]: d["display_name"] for d in reply.payload["details"]}
            assert names[alice] == "Alice"
        else:
            assert not sent_to(actions, a_conn, "LIST_RESPONSE")


def test_public_message_reaches_every_other_member_with_one_signature(node, keys) -> None:
    conns = [node.connect_user(keys[1 + i % 2])[0:2] for i in range(4)]
    (sender_conn, sender), others = conns[0], [c for c, _ in conns[1:]]
    ciphertext = b64url_encode(b"\x00" * 512)
    frame = frames.msg_public_channel(sender, NOW, ciphertext, crypto.encode_public_key(keys[1]),
                                      b64url_encode(b"s" * 512))
    actions = node.feed(sender_conn, frame)
    (fan_out,) = sends(actions, "MSG_PUBLIC_CHANNEL")
    assert sorted(c for c, _ in fan_out.targets) == sorted(others)
    assert fan_out.frame.from_ == sender and fan_out.frame.to == "public" and fan_out.frame.ts == NOW
    assert fan_out.frame.payload == frame.payload


def test_key_share_is_delivered_now_or_kept_for_an_offline_member(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    node.drop(b_conn)
    shares = [{"member": bob, "wrapped_public_channel_key": b64url_encode(b"w" * 512)}]
    creator_pub = crypto.encode_public_key(keys[1])
    frame = frames.public_channel_key_share(alice, NOW, shares, creator_pub,
                                            signing.sign_key_share(keys[1], shares, creator_pub))
    actions = node.feed(a_conn, frame)
    assert store_writes(actions, "save_key_share")[0].arguments[:2] == (alice, bob)
    b_again, _, actions = node.connect_user(keys[2], user_id=bob)
    (delivered,) = sent_to(actions, b_again, "PUBLIC_CHANNEL_KEY_SHARE")
    assert delivered.payload == frame.payload
    assert store_writes(actions, "mark_share_delivered")[0].arguments == (alice, bob)
    assert signing.verify_key_share(keys[1].public_key(), delivered.payload["content_sig"], shares, creator_pub)


def test_key_share_with_someone_elses_creator_key_is_refused(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    _, bob, _ = node.connect_user(keys[2])
    shares = [{"member": bob, "wrapped_public_channel_key": "AA"}]
    other = crypto.encode_public_key(keys[2])
    frame = frames.public_channel_key_share(alice, NOW, shares, other, signing.sign_key_share(keys[2], shares, other))
    assert errors_to(node.feed(a_conn, frame), a_conn) == ["FORBIDDEN"]


def test_file_frames_are_routed_in_order_to_the_recipient(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    b_conn, bob, _ = node.connect_user(keys[2])
    file_id = new_id()
    sequence = [
        frames.file_start(alice, bob, NOW, file_id, "a.txt", 3, "ab" * 32, "dm"),
        frames.file_chunk(alice, bob, NOW + 1, file_id, 0, b64url_encode(b"c" * 512)),
        frames.file_end(alice, bob, NOW + 2, file_id),
    ]
    received = [f for frame in sequence for f in sent_to(node.feed(a_conn, frame), b_conn)]
    assert [f.type for f in received] == ["FILE_START", "FILE_CHUNK", "FILE_END"]
    assert all(f.from_ == alice and f.to == bob for f in received)


def test_public_file_frames_fan_out_in_order_to_every_other_member(node, keys) -> None:
    conns = [node.connect_user(keys[1 + i % 2])[0:2] for i in range(4)]
    (sender_conn, sender), others = conns[0], [conn for conn, _ in conns[1:]]
    file_id = new_id()
    sequence = [
        frames.file_start(sender, "public", NOW, file_id, "a.txt", 6, "ab" * 32, "public"),
        frames.file_chunk(sender, "public", NOW + 1, file_id, 0, b64url_encode(b"c" * 512)),
        frames.file_chunk(sender, "public", NOW + 2, file_id, 1, b64url_encode(b"d" * 512)),
        frames.file_end(sender, "public", NOW + 3, file_id),
    ]
    received: dict[int, list] = {conn: [] for conn, _ in conns}
    for frame in sequence:
        for send in sends(node.feed(sender_conn, frame), frame.type):
            for conn, _ in send.targets:
                received[conn].append(send.frame)
    assert received[sender_conn] == []                          # not echoed to the sender (it gets ACKs)
    for conn in others:
        assert [(f.type, f.from_, f.to, f.ts) for f in received[conn]] == [
            (f.type, sender, "public", f.ts) for f in sequence], conn
        assert [f.payload for f in received[conn]] == [f.payload for f in sequence]


def test_gossip_over_a_user_connection_is_refused(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    forged = frames.user_advertise(alice, NOW, new_id(), {})
    actions = node.feed(a_conn, forged)
    assert errors_to(actions, a_conn) == ["FORBIDDEN"]


def test_disconnect_removes_presence(node, keys) -> None:
    a_conn, alice, _ = node.connect_user(keys[1])
    node.drop(a_conn)
    assert alice not in node.state.local_users and alice not in node.state.user_locations
    assert alice in node.state.channel_members  # never removed from the channel (§7.3)


def test_first_frame_must_be_a_hello(node, keys) -> None:
    actions = node.feed(99, dm(keys[1], new_id(), keys[2], new_id()))
    assert errors_to(actions, 99) == ["MALFORMED"] and closes(actions) == [99]


def test_rejected_hello_closes_but_rejected_later_frame_does_not(node, keys) -> None:
    actions = node.reject(50, "BAD_KEY", "RSA modulus is 1024 bits")
    assert errors_to(actions, 50) == ["BAD_KEY"] and closes(actions) == [50]
    a_conn, _, _ = node.connect_user(keys[1])
    actions = node.reject(a_conn, "MALFORMED", "frame is not valid JSON")
    assert errors_to(actions, a_conn) == ["MALFORMED"] and not closes(actions)
