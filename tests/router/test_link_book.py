"""Server links with other teams' servers, in the pure router (issue #14, server links):
the link book the operator sees, consent for unsigned links, and each peer's habits
(G45, G17, G56) as recorded on the wire (tests/interop/recorded/)."""

from __future__ import annotations

import logging

import pytest

from socp.bootstrap_file import BootstrapError, Introducer, parse_bootstrap
from socp.ipc.link_state import LinkState
from socp.ipc.messages import ROLE_SERVER, ROLE_UNKNOWN, Rejected, Verified, VerifyJob
from socp.protocol import crypto, frames, signing
from socp.protocol.envelope import Envelope
from socp.protocol.errors import ErrorCode
from socp.protocol.ids import new_id
from socp.protocol.key_forms import KeyForm, form_of, in_form
from socp.router import core, federation
from socp.router import link_dialects as dialects
from socp.router.core_io import Dial, FrameRejected, LinkDown, LinkUp, Tick
from socp.router.linkbook import LOG_INTERVAL_MS, LinkBook
from socp.verifier.checks import check_job

from .harness import NOW, Harness, closes, sent_to

G45_ID = "master_server_5217d738-07e4-4c59-974a-9dadf81f0118"


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def der(key: crypto.PrivateKey) -> str:
    return crypto.encode_public_key(key)


def dial_introducer(node: Harness, key: crypto.PrivateKey, unsigned_link: bool = False,
                    key_form: KeyForm = KeyForm.DER_B64URL, g45_alias: bool = False) -> int:
    """Start the node with one bootstrap entry; the dial opens; our hello goes out."""
    node.state.introducers = [Introducer("127.0.0.1", 9000, der(key), unsigned_link, key_form, g45_alias=g45_alias)]
    dial = next(a for a in federation.start(node.state) if isinstance(a, Dial))
    assert dial.unsigned_ok is unsigned_link
    core.handle(node.state, LinkUp(dial.conn))
    return dial.conn


def g45_welcome(node: Harness, key: crypto.PrivateKey) -> Envelope:
    """G45's SERVER_WELCOME as recorded: no assigned_id, its own id shape, `role`."""
    return Envelope(type="SERVER_WELCOME", from_=G45_ID, to=node.server_id, ts=NOW,
                    payload={"host": "127.0.0.1", "port": 9000, "pubkey": der(key), "role": "master"})


def link_row(node: Harness, address: str = "127.0.0.1:9000"):
    return node.state.linkbook.entries[address]


# --- the link book ------------------------------------------------------------------------


def test_a_link_moves_through_the_book_and_each_refusal_is_logged_once(caplog) -> None:
    book = LinkBook()
    caplog.set_level(logging.INFO, logger="socp.router")
    book.move("h:1", LinkState.DIALLING, 0)
    for now in (1, 2, 3):
        book.move("h:1", LinkState.REFUSED, now, "INVALID_SIG: frame is not signed")
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "INVALID_SIG" in refusals[0].getMessage()
    book.move("h:1", LinkState.DIALLING, 4)
    book.move("h:1", LinkState.JOINED, 5, peer_id="peer-1")
    assert book.rows() == [("peer-1", "h:1", "joined", "INVALID_SIG: frame is not signed", 0, "", "", "")]


def test_dropped_frames_are_counted_and_logged_at_most_once_a_minute(caplog) -> None:
    book = LinkBook()
    book.move("h:1", LinkState.JOINED, 0, peer_id="p")
    caplog.set_level(logging.WARNING, logger="socp.router")
    for now in range(0, LOG_INTERVAL_MS, 1000):
        book.dropped("h:1", "MALFORMED: field 'payload.ciphertext' is missing", now)
    assert book.entries["h:1"].dropped == LOG_INTERVAL_MS // 1000
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
    book.dropped("h:1", "again", LOG_INTERVAL_MS)
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 2


def test_a_peer_reason_is_kept_printable() -> None:
    book = LinkBook()
    book.move("h:1", LinkState.REFUSED, 0, "it refused our join: X: \x1b[31mred\nline")
    assert "\x1b" not in book.entries["h:1"].reason and "\n" not in book.entries["h:1"].reason


# --- consent for unsigned link frames (G56) -----------------------------------------------


def test_bootstrap_unsigned_link_is_a_strict_boolean_and_the_key_form_is_kept(keys) -> None:
    pem = in_form(der(keys[1]), KeyForm.PEM_B64URL)
    text = f'bootstrap_servers:\n  - {{host: "127.0.0.1", port: 9000, pubkey: "{pem}", unsigned_link: true}}\n'
    [entry] = parse_bootstrap(text)
    assert entry.unsigned_link is True and entry.key_form == KeyForm.PEM_B64URL and entry.pubkey == der(keys[1])
    [plain] = parse_bootstrap(f'bootstrap_servers:\n  - {{host: "h", port: 1, pubkey: "{der(keys[1])}"}}\n')
    assert plain.unsigned_link is False and plain.key_form == KeyForm.DER_B64URL
    with pytest.raises(BootstrapError, match="unsigned_link"):
        parse_bootstrap(f'bootstrap_servers:\n  - {{host: "h", port: 1, pubkey: "{der(keys[1])}",'
                        f' unsigned_link: "yes"}}\n')


def _job(frame: Envelope, role: int, verify_key: str, unsigned_ok: bool) -> Verified | Rejected:
    return check_job(VerifyJob(3, 0, frame.to_wire(), role, verify_key, unsigned_ok))


def test_unsigned_link_frames_pass_only_on_a_consented_dialled_link(keys) -> None:
    g56_key = keys[1]
    welcome = Envelope(type="SERVER_WELCOME", from_=new_id(), to=new_id(), ts=NOW,
                       payload={"assigned_id": new_id(), "servers": []})
    # Without consent: refused, as every unsigned server frame is.
    refused = _job(welcome, ROLE_SERVER, der(g56_key), unsigned_ok=False)
    assert isinstance(refused, Rejected) and refused.code == ErrorCode.INVALID_SIG.value
    assert isinstance(_job(welcome, ROLE_SERVER, der(g56_key), unsigned_ok=True), Verified)
    # Consent is no licence for a wrong signature.
    forged = welcome.with_sig(signing.transport_signature(keys[2], welcome.payload))
    assert isinstance(_job(forged, ROLE_SERVER, der(g56_key), unsigned_ok=True), Rejected)
    # An unsigned hello from a server dialling us is refused whatever (consent is for links we dial).
    hello = Envelope(type="SERVER_HELLO_JOIN", from_=new_id(), to="127.0.0.1:1", ts=NOW,
                     payload={"host": "127.0.0.1", "port": 1, "pubkey": der(g56_key)})
    assert isinstance(_job(hello, ROLE_UNKNOWN, "", unsigned_ok=True), Rejected)


def test_an_unsigned_welcome_refused_without_consent_books_the_link_refused_with_the_way_out(node, keys) -> None:
    conn = dial_introducer(node, keys[1])
    actions = core.handle(node.state, FrameRejected(conn, "INVALID_SIG", "frame is not signed", "SERVER_WELCOME"))
    assert conn in closes(actions)
    row = link_row(node)
    assert row.state is LinkState.REFUSED
    assert "INVALID_SIG" in row.reason and "unsigned_link: true" in row.reason


def test_an_unsigned_server_hello_refused_by_the_verifiers_is_booked(node) -> None:
    core.handle(node.state, FrameRejected(7, "INVALID_SIG", "frame is not signed", "SERVER_HELLO_JOIN"))
    assert link_row(node, "incoming").state is LinkState.REFUSED
    assert "SERVER_HELLO_JOIN" in link_row(node, "incoming").reason


def test_with_consent_a_g56_join_hellos_and_announces_our_key_in_its_pem_form(node, keys) -> None:
    conn = dial_introducer(node, keys[1], unsigned_link=True, key_form=KeyForm.PEM_B64URL)
    welcome = Envelope(type="SERVER_WELCOME", from_=new_id(), to=node.server_id, ts=NOW,
                       payload={"assigned_id": node.server_id, "servers": []})
    actions = node.feed(conn, welcome)
    [announce] = sent_to(actions, conn, "SERVER_ANNOUNCE")
    assert form_of(announce.payload["pubkey"]) == KeyForm.PEM_B64URL
    assert crypto.normalise_public_key(announce.payload["pubkey"]) == node.state.me.pubkey
    assert link_row(node).state is LinkState.JOINED and link_row(node).dialect == dialects.G56
    assert welcome.from_ in node.state.unsigned_servers
    # A user's key handed to the G56 link goes as base64url(PEM): its clients read no other form.
    user_conn, user_id, joined = node.connect_user(keys[2])
    [advert] = sent_to(joined, conn, "USER_ADVERTISE")
    assert form_of(advert.payload["meta"]["pubkey"]) == KeyForm.PEM_B64URL


# --- G45 ----------------------------------------------------------------------------------


def test_a_g45_welcome_joins_and_its_users_keys_are_asked_for_and_ours_registered(node, keys) -> None:
    user_conn, user_id, _ = node.connect_user(keys[2])
    conn = dial_introducer(node, keys[1])
    actions = node.feed(conn, g45_welcome(node, keys[1]))
    assert link_row(node).state is LinkState.JOINED and link_row(node).dialect == dialects.G45
    assert node.state.servers[G45_ID] == conn
    [register] = sent_to(actions, conn, "DB_REGISTER")
    assert register.payload == {"user_id": user_id, "pubkey": der(keys[2])}
    # G45's advert carries no key: we ask its directory, and bind the answer.
    advert = Envelope(type="USER_ADVERTISE", from_=G45_ID, to="*", ts=NOW,
                      payload={"user_id": "Bob", "server_id": G45_ID})
    [question] = sent_to(node.feed(conn, advert), conn, "DB_GET_USER")
    assert question.payload["user_id"] == "Bob" and question.payload["req_id"]
    answer = Envelope(type="DB_USER", from_=G45_ID, to=node.server_id, ts=NOW,
                      payload={"user_id": "Bob", "found": True, "pubkey": der(keys[3]),
                               "req_id": question.payload["req_id"]})
    node.feed(conn, answer)
    assert node.state.users["Bob"].pubkey == der(keys[3])


def test_a_key_answer_for_a_user_of_another_server_is_ignored(node, keys) -> None:
    conn = dial_introducer(node, keys[1])
    node.feed(conn, g45_welcome(node, keys[1]))
    answer = Envelope(type="DB_USER", from_=G45_ID, to=node.server_id, ts=NOW,
                      payload={"user_id": "Mallory", "found": True, "pubkey": der(keys[3])})
    node.feed(conn, answer)
    assert "Mallory" not in node.state.users


def test_a_peer_that_never_heartbeats_is_not_timed_out_but_one_that_did_is(node, keys) -> None:
    conn = dial_introducer(node, keys[1])
    node.feed(conn, g45_welcome(node, keys[1]))
    node.state.now_ms = NOW + 10 * node.state.timing.link_timeout_ms
    assert conn not in closes(core.handle(node.state, Tick()))
    node.feed(conn, frames.heartbeat(G45_ID, node.server_id, node.state.now_ms))
    node.state.now_ms += node.state.timing.link_timeout_ms + 1
    assert conn in closes(core.handle(node.state, Tick()))
    assert link_row(node).state is LinkState.LOST


def test_a_g45_second_link_keeps_the_first_open(node, keys) -> None:
    """G45 forgets our key when any link to us closes: never close a duplicate to it."""
    conn = dial_introducer(node, keys[1])
    node.feed(conn, g45_welcome(node, keys[1]))
    hello = Envelope(type="SERVER_HELLO_JOIN", from_=G45_ID, to="server_*", ts=NOW,
                     payload={"host": "127.0.0.1", "port": 9000, "pubkey": der(keys[1]), "role": "master"})
    actions = node.feed(50, hello)
    assert conn not in closes(actions) and 50 not in closes(actions)
    assert node.state.servers[G45_ID] == 50
    core.handle(node.state, LinkDown(50, "peer closed"))
    assert node.state.servers[G45_ID] == conn and link_row(node).state is LinkState.JOINED


def test_a_refused_server_hello_link_is_joined_next_time(node, keys) -> None:
    peer_id = new_id()
    node.state.pinned_servers[peer_id] = federation.ServerRecord(der(keys[1]), "127.0.0.1", 9000)
    [dial] = [a for a in federation._dial_server(node.state, peer_id) if isinstance(a, Dial)]
    [hello] = sent_to(core.handle(node.state, LinkUp(dial.conn)), dial.conn, "SERVER_HELLO_LINK")
    refusal = frames.error(peer_id, node.server_id, NOW, "UNKNOWN_TYPE", "expected PEER_HELLO_LINK or USER_HELLO")
    node.feed(dial.conn, refusal)
    assert "SERVER_HELLO_LINK" in link_row(node).reason
    core.handle(node.state, LinkDown(dial.conn, "peer closed with 1000"))
    [again] = [a for a in federation._dial_server(node.state, peer_id) if isinstance(a, Dial)]
    assert sent_to(core.handle(node.state, LinkUp(again.conn)), again.conn, "SERVER_HELLO_JOIN")


# --- G17 ----------------------------------------------------------------------------------


def test_a_g17_join_as_auto_gets_an_id_and_our_welcome_carries_our_key(node, keys) -> None:
    hello = Envelope(type="SERVER_HELLO_JOIN", from_="auto", to="*", ts=NOW,
                     payload={"host": "127.0.0.1", "port": 9430, "pubkey": der(keys[1]),
                              "ws_uri": "ws://127.0.0.1:9431"})
    [welcome] = sent_to(node.feed(5, hello), 5, "SERVER_WELCOME")
    assert welcome.payload["assigned_id"] not in ("auto", "")
    # G17 reads our key from server_pub, G45 from pubkey (with host and port).
    assert welcome.payload["server_pub"] == welcome.payload["pubkey"] == node.state.me.pubkey
    assert (welcome.payload["host"], welcome.payload["port"]) == ("127.0.0.1", 1)
    assert link_row(node, "127.0.0.1:9430").dialect == dialects.G17


def test_g17_snapshot_users_get_key_lookups_and_its_orig_ts_is_the_content_ts(node, keys) -> None:
    user_conn, user_id, _ = node.connect_user(keys[2])
    conn = dial_introducer(node, keys[1])
    g17 = new_id()
    welcome = Envelope(type="SERVER_WELCOME", from_=g17, to=node.server_id, ts=NOW,
                       payload={"server_id": g17, "server_pub": der(keys[1]), "assigned_id": None,
                                "snapshot": {"user_locations": {"erin": {"server_id": g17, "ts": 1.5},
                                                                "elsewhere": {"server_id": "other", "ts": 1.0}}}})
    actions = node.feed(conn, welcome)
    [question] = sent_to(actions, conn, "PUBKEY_REQUEST")
    assert question.payload == {"user_id": "erin"} and "elsewhere" not in node.state.user_locations
    node.feed(conn, Envelope(type="PUBKEY_RESPONSE", from_=g17, to=node.server_id, ts=NOW,
                             payload={"user_id": "erin", "pubkey": der(keys[3])}))
    assert node.state.users["erin"].pubkey == der(keys[3])
    # G17 stamps SERVER_DELIVER with its own time; the sender's is payload.orig_ts.
    sent_ts = NOW - 5000
    ciphertext = "AAAA"
    deliver = Envelope(type="SERVER_DELIVER", from_=g17, to=node.server_id, ts=NOW,
                       payload={"user_id": user_id, "ciphertext": ciphertext, "sender": "erin",
                                "sender_pub": der(keys[3]), "content_sig": "c2ln", "orig_ts": sent_ts})
    [delivered] = sent_to(node.feed(conn, deliver), user_conn, "USER_DELIVER")
    assert delivered.ts == sent_ts
    # ...and our SERVER_DELIVER to a G17 link carries orig_ts, which its server reads.
    dm = frames.msg_direct(user_id, "erin", NOW, ciphertext, der(keys[2]), "c2ln")
    [onward] = sent_to(node.feed(user_conn, dm), conn, "SERVER_DELIVER")
    assert onward.payload["orig_ts"] == NOW and onward.ts == NOW


def test_a_g17_second_link_keeps_the_first_open_too(node, keys) -> None:
    """G17 forgets where to send to us when the link it registered last closes."""
    hello = Envelope(type="SERVER_HELLO_JOIN", from_="auto", to="*", ts=NOW,
                     payload={"host": "127.0.0.1", "port": 9430, "pubkey": der(keys[1]), "ws_uri": "ws://x"})
    [welcome] = sent_to(node.feed(5, hello), 5, "SERVER_WELCOME")
    g17 = welcome.payload["assigned_id"]
    again = Envelope(type="SERVER_HELLO_JOIN", from_=g17, to="*", ts=NOW + 1,
                     payload={"host": "127.0.0.1", "port": 9430, "pubkey": der(keys[1]), "ws_uri": "ws://x"})
    actions = node.feed(6, again)
    assert 5 not in closes(actions) and 6 not in closes(actions)
    assert node.state.servers[g17] == 6


def test_on_a_g45_link_that_opted_in_we_go_by_a_name_it_routes_to(node, keys) -> None:
    """G45 routes a DM only to a location id starting `server_`/`master_server_`: on a
    link whose bootstrap entry says `g45_server_alias: true` we are `server_<our id>`
    (in `from` and in our adverts' `server_id`), join once more under that name, and
    the link row says so; other links see our id."""
    alias = f"server_{node.server_id}"
    conn = dial_introducer(node, keys[1], g45_alias=True)
    actions = node.feed(conn, g45_welcome(node, keys[1]))
    assert [h.from_ for h in sent_to(actions, conn, "SERVER_HELLO_JOIN")] == [alias]
    assert link_row(node).goes_by == alias and node.state.linkbook.rows()[0][6] == alias
    other = new_id()
    hello = Envelope(type="SERVER_HELLO_LINK", from_=other, to=node.server_id, ts=NOW,
                     payload={"host": "127.0.0.1", "port": 9999, "pubkey": der(keys[4])})
    node.state.pinned_servers[other] = federation.ServerRecord(der(keys[4]), "127.0.0.1", 9999)
    node.feed(60, hello)
    user_conn, user_id, joined = node.connect_user(keys[2])
    [to_g45] = sent_to(joined, conn, "USER_ADVERTISE")
    [to_ours] = sent_to(joined, 60, "USER_ADVERTISE")
    assert (to_g45.from_, to_g45.payload["server_id"]) == (alias, alias)
    assert (to_ours.from_, to_ours.payload["server_id"]) == (node.server_id, node.server_id)
    assert sent_to(joined, conn, "DB_REGISTER")[0].from_ == alias
    # G45 answers the second join with a second welcome: taken quietly.
    assert sent_to(node.feed(conn, g45_welcome(node, keys[1])), conn, "ERROR") == []


def test_without_the_opt_in_a_g45_link_sees_our_own_id(node, keys) -> None:
    """The reference says we emit our UUID v4 id: with no `g45_server_alias` in the
    bootstrap entry, a G45 link gets no second join, our adverts and registrations
    carry our id, and the row shows no alias. Users' files still go in its relay form
    (from our server, under our own id), since G45 checks a server frame with the key
    of its `from`."""
    me = node.server_id
    conn = dial_introducer(node, keys[1])
    actions = node.feed(conn, g45_welcome(node, keys[1]))
    assert sent_to(actions, conn, "SERVER_HELLO_JOIN") == []
    assert link_row(node).dialect == dialects.G45 and link_row(node).goes_by == ""
    user_conn, user_id, joined = node.connect_user(keys[2])
    [advert] = sent_to(joined, conn, "USER_ADVERTISE")
    assert (advert.from_, advert.payload["server_id"]) == (me, me)
    assert sent_to(joined, conn, "DB_REGISTER")[0].from_ == me
    node.feed(conn, Envelope(type="USER_ADVERTISE", from_=G45_ID, to="*", ts=NOW,
                             payload={"user_id": "Bob", "server_id": G45_ID}))
    start = frames.file_start(user_id, "Bob", NOW, "f1", "a.bin", 3, "ab" * 32, "dm")
    [out] = sent_to(node.feed(user_conn, start), conn, "FILE_START")
    assert (out.from_, out.payload["user_id"], out.payload["sender"]) == (me, "Bob", user_id)


def test_the_g45_alias_opt_in_is_read_from_the_bootstrap_entry(keys) -> None:
    key = der(keys[1])
    text = (f'bootstrap_servers:\n  - {{host: "127.0.0.1", port: 9000, pubkey: "{key}", g45_server_alias: true}}\n'
            f'  - {{host: "127.0.0.1", port: 9001, pubkey: "{key}"}}\n')
    assert [entry.g45_alias for entry in parse_bootstrap(text)] == [True, False]
    with pytest.raises(BootstrapError, match="g45_server_alias"):
        parse_bootstrap(f'bootstrap_servers:\n  - {{host: "h", port: 1, pubkey: "{key}", g45_server_alias: "yes"}}\n')


def test_the_opt_in_does_not_alias_a_link_of_another_dialect(node, keys) -> None:
    """`g45_server_alias` on an entry whose peer turns out not to speak G45 changes nothing."""
    conn = dial_introducer(node, keys[1], g45_alias=True)
    welcome = Envelope(type="SERVER_WELCOME", from_=new_id(), to=node.server_id, ts=NOW,
                       payload={"assigned_id": node.server_id, "servers": [], "clients": []})
    node.feed(conn, welcome)
    assert link_row(node).state is LinkState.JOINED and link_row(node).goes_by == ""


def test_a_server_announced_with_our_own_key_is_never_pinned(node, keys) -> None:
    """G45 announces us back under the name we use with it: that is us, not a server to dial."""
    conn = dial_introducer(node, keys[1], g45_alias=True)
    node.feed(conn, g45_welcome(node, keys[1]))
    alias = f"server_{node.server_id}"
    announce = Envelope(type="SERVER_ANNOUNCE", from_=G45_ID, to="*", ts=NOW,
                        payload={"server_id": alias, "host": "127.0.0.1", "port": 1, "pubkey": node.state.me.pubkey,
                                 "role": "local"})
    node.feed(conn, announce)
    assert alias not in node.state.pinned_servers
    node.state.now_ms += 60_000
    assert not [a for a in core.handle(node.state, Tick()) if isinstance(a, Dial)]


def test_a_hello_with_our_own_key_is_refused(node) -> None:
    """Reaching ourselves under another name must not link, nor let us assign ourselves a new id."""
    hello = frames.server_hello_join(f"server_{node.server_id}", "127.0.0.1:1", NOW, "127.0.0.1", 1,
                                     node.state.me.pubkey)
    actions = node.feed(5, hello)
    assert 5 in closes(actions) and not sent_to(actions, 5, "SERVER_WELCOME")


def test_files_cross_a_g45_link_in_its_relay_form_both_ways(node, keys) -> None:
    conn = dial_introducer(node, keys[1], g45_alias=True)
    node.feed(conn, g45_welcome(node, keys[1]))
    user_conn, user_id, _ = node.connect_user(keys[2])
    node.feed(conn, Envelope(type="USER_ADVERTISE", from_=G45_ID, to="*", ts=NOW,
                             payload={"user_id": "Bob", "server_id": G45_ID}))
    # Ours to Bob: from our G45 name, Bob in payload.user_id, the sender in FILE_START.
    start = frames.file_start(user_id, "Bob", NOW, "f1", "a.bin", 3, "ab" * 32, "dm")
    [out] = sent_to(node.feed(user_conn, start), conn, "FILE_START")
    assert (out.from_, out.payload["user_id"], out.payload["sender"]) == (f"server_{node.server_id}", "Bob", user_id)
    # Bob's to ours, as G45 relays it: from its server, to our name.
    manifest = {"file_id": "f2", "name": "b.bin", "size": 3, "sha256": "cd" * 32, "mode": "dm", "sender": "Bob",
                "user_id": user_id}
    relayed = Envelope(type="FILE_START", from_=G45_ID, to=f"server_{node.server_id}", ts=NOW, payload=manifest)
    [got] = sent_to(node.feed(conn, relayed), user_conn, "FILE_START")
    assert (got.from_, got.to) == ("Bob", user_id) and "user_id" not in got.payload
    chunk = Envelope(type="FILE_CHUNK", from_=G45_ID, to=f"server_{node.server_id}", ts=NOW + 1,
                     payload={"file_id": "f2", "index": 0, "ciphertext": "AAAA", "user_id": user_id})
    [got_chunk] = sent_to(node.feed(conn, chunk), user_conn, "FILE_CHUNK")
    assert got_chunk.from_ == "Bob"


def test_our_own_welcome_is_not_taken_for_a_peer_dialect(keys) -> None:
    """Our SERVER_WELCOME carries G17's `server_pub` beside its server lists; a node
    that joined another socp node must not treat it as G17 (duplicate-link rule, key
    look-ups, orig_ts: a restarted router then never relearned the peer's users)."""
    me = new_id()
    payload = {"assigned_id": new_id(), "servers": [], "clients": [], "server_pub": der(keys[1]),
               "pubkey": der(keys[1]), "host": "127.0.0.1", "port": 9000}
    welcome = Envelope(type="SERVER_WELCOME", from_=me, to=new_id(), ts=NOW, payload=payload)
    assert dialects.of_opening(welcome) == ""
    g17 = Envelope(type="SERVER_WELCOME", from_=me, to=new_id(), ts=NOW,
                   payload={"server_id": me, "server_pub": der(keys[1]), "snapshot": {"user_locations": {}},
                            "assigned_id": None})
    assert dialects.of_opening(g17) == dialects.G17
