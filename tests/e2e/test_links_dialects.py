"""A real node linked with a test double of each peer's server dialect (issue #14,
server links): the peer joins the node, and the node joins the peer through its
bootstrap file; users on each side exchange DMs both ways, decrypted and verified.
G56 signs neither its hello nor its welcome: its join is refused, and our join is
accepted only with `unsigned_link: true` in its bootstrap entry. Every link shows in
`/healthz` `server_links`.

The doubles (tests/support/dialect_doubles.py) follow the frames recorded from the
live peers (tests/interop/recorded/<peer>-link.jsonl).
"""

from __future__ import annotations

import asyncio

import pytest

from socp.protocol import crypto, signing
from socp.protocol.key_forms import KeyForm, form_of
from support.dialect_doubles import G17, G45, G56, G101, DialectDouble, VirtualUser, g101_accepts, iso_now
from support.http import aget_json
from support.nodes import start_node
from support.wsclient import RawUser

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node(keys, tmp_path_factory):
    running = start_node(tmp_path_factory.mktemp("links") / "data", keys[0], verifiers=1)
    yield running
    running.stop()


async def listed_with_key(user: RawUser, user_id: str) -> str:
    """The key the node hands out for `user_id`, once it has one (asked over the link)."""
    for _ in range(60):
        listing = await user.list_users()
        detail = next((d for d in listing.payload.get("details", []) if d["user_id"] == user_id), None)
        if detail and detail.get("pubkey"):
            return detail["pubkey"]
        await asyncio.sleep(0.25)
    raise AssertionError(f"{user_id} never listed with a key")


async def server_links(port: int) -> list[dict]:
    return (await aget_json(f"http://127.0.0.1:{port}/healthz")).body["server_links"]


async def link_state(port: int, dialect: str, state: str) -> dict:
    for _ in range(80):
        rows = [row for row in await server_links(port) if row["state"] == state
                and (row["dialect"] == dialect or state == "refused")]
        if rows:
            return rows[0]
        await asyncio.sleep(0.25)
    raise AssertionError(f"no {state} {dialect} link in {await server_links(port)}")


async def dms_both_ways(node_url: str, double: DialectDouble, ours: RawUser, peer_user: VirtualUser,
                        we_go_by: str) -> None:
    pubkey = await listed_with_key(ours, peer_user.user_id)
    assert crypto.normalise_public_key(pubkey) == crypto.encode_public_key(peer_user.key)
    # Our user -> peer user: the fields each peer's server reads (recorded on the wire).
    await ours.send(ours.dm_to(peer_user.user_id, pubkey, b"to the other team"))
    deliver = await double.receive("SERVER_DELIVER")
    payload = deliver.payload
    assert (payload["user_id"], payload["sender"]) == (peer_user.user_id, ours.user_id)
    assert double.open_deliver(peer_user, deliver) == b"to the other team"
    content_ts = payload.get("orig_ts", deliver.ts)
    if double.dialect == G17:
        assert payload["orig_ts"] == deliver.ts          # G17 hands its user orig_ts
    if double.dialect == G56:
        assert form_of(payload["sender_pub"]) == KeyForm.PEM_B64URL   # its clients read only PEM
    # Our own id, or the G45 alias where the bootstrap entry opted in (g45_server_alias).
    assert deliver.from_ == we_go_by
    assert signing.verify_dm(crypto.decode_public_key(payload["sender_pub"]), payload["content_sig"],
                             payload["ciphertext"], ours.user_id, peer_user.user_id, content_ts)
    # Peer user -> our user, in the peer's own form.
    await double.send(double.dm_frame(peer_user, ours.user_id, ours.pubkey, b"from the other team"))
    received = await ours.receive("USER_DELIVER")
    assert received.payload["sender"] == peer_user.user_id
    assert ours.open_dm(received) == b"from the other team"     # decrypted and content_sig verified


@pytest.mark.parametrize("dialect", [G45, G17])
async def test_a_peer_joins_the_node_and_dms_flow_both_ways(node, keys, dialect) -> None:
    double = DialectDouble(dialect, keys[6], port=40_045 if dialect == G45 else 40_017)
    welcome = await double.join("127.0.0.1", node.port)
    # What the peer reads of our welcome: G45 our key and address, G17 server_pub.
    assert welcome.payload["pubkey"] == welcome.payload["server_pub"] == node.pubkey
    assert welcome.payload["port"] == node.port
    peer_user = VirtualUser(keys[7], user_id="Bob") if dialect == G45 else VirtualUser(keys[7])
    await double.advertise(peer_user)
    ours = await RawUser(node.url, keys[1]).connect(display_name="ours")
    # No bootstrap entry opted in for it: we go by our own id (the reference's form).
    await dms_both_ways(node.url, double, ours, peer_user, we_go_by=welcome.from_)
    assert [q.type for q in double.questions][:1] == ["DB_GET_USER" if dialect == G45 else "PUBKEY_REQUEST"]
    if dialect == G45:   # its clients look keys up in its directory: ours are registered there
        register = await double.receive("DB_REGISTER", where=lambda f: f.payload["user_id"] == ours.user_id)
        assert register.payload["pubkey"] == ours.pubkey
    row = await link_state(node.port, dialect, "joined")
    assert row["peer_id"] == double.server_id and row["goes_by"] == ""
    await ours.close()
    await double.close()


async def test_an_unsigned_g56_join_is_refused_and_shown(node, keys) -> None:
    double = DialectDouble(G56, keys[6], port=40_056)
    with pytest.raises(TimeoutError):
        await double.join("127.0.0.1", node.port, welcome_timeout=3)
    refused = await link_state(node.port, "", "refused")
    assert "INVALID_SIG" in refused["reason"] and "SERVER_HELLO_JOIN" in refused["reason"]
    await double.close()


async def test_a_g101_hello_is_refused_and_shown_with_its_reason(node, keys) -> None:
    """G101 links with nobody but G101 (ISO ts, no address, whole-envelope signatures):
    what matters here is that the operator can read why."""
    double = DialectDouble(G101, keys[6], port=40_101)
    with pytest.raises(TimeoutError):
        await double.join("127.0.0.1", node.port, welcome_timeout=3)
    [error] = [frame for frame in double.inbox if frame.type == "ERROR"]   # kept while it waited for a welcome
    assert error.payload["code"] == "MALFORMED"
    for _ in range(40):
        rows = [r for r in await server_links(node.port) if r["state"] == "refused" and "'ts'" in r["reason"]]
        if rows:
            break
        await asyncio.sleep(0.25)
    assert rows and "SERVER_HELLO_JOIN" in rows[0]["reason"] and "MALFORMED" in rows[0]["reason"]
    await double.close()


def bootstrap_for(double: DialectDouble, unsigned_link: bool = False, g45_server_alias: bool = False,
                  g101_link: bool = False) -> str:
    entry = (f'bootstrap_servers:\n  - host: "127.0.0.1"\n    port: {double.port}\n'
             f'    pubkey: "{double.key_text(double.key)}"\n')
    return (entry + ("    unsigned_link: true\n" if unsigned_link else "")
            + ("    g45_server_alias: true\n" if g45_server_alias else "")
            + ("    g101_link: true\n" if g101_link else ""))


async def start_joining(tmp_path, keys, double: DialectDouble, unsigned_link: bool = False,
                        g45_server_alias: bool = False, g101_link: bool = False, listen: bool = True):
    if listen:
        await double.listen()
    path = tmp_path / "bootstrap.yaml"
    path.write_text(bootstrap_for(double, unsigned_link, g45_server_alias, g101_link))
    return await asyncio.to_thread(start_node, tmp_path / "data", keys[2], verifiers=1,
                                   extra_args=("--bootstrap", str(path)))


@pytest.mark.parametrize("dialect", [G45, G17, G56])
async def test_the_node_joins_a_peer_and_dms_flow_both_ways(tmp_path, keys, dialect) -> None:
    double = DialectDouble(dialect, keys[6])
    peer_user = VirtualUser(keys[7], user_id="Dave") if dialect == G45 else VirtualUser(keys[7])
    if dialect == G17:
        double.users.append(peer_user)   # G17 lists its users in its welcome's snapshot
    # G45 routes users' messages only to server ids of its own shape: this entry opts in
    # to our G45 alias (server_<our id>).
    joiner = await start_joining(tmp_path, keys, double, unsigned_link=dialect == G56,
                                 g45_server_alias=dialect == G45)
    try:
        await double.linked()
        hello = double.hello
        assert hello.type == "SERVER_HELLO_JOIN"
        if dialect == G56:   # our key in the form the bootstrap entry used
            assert form_of(hello.payload["pubkey"]) == KeyForm.PEM_B64URL
        row = await link_state(joiner.port, dialect, "joined")
        we_go_by = f"server_{hello.from_}" if dialect == G45 else hello.from_
        assert row["goes_by"] == ("" if we_go_by == hello.from_ else we_go_by)   # shown in /healthz
        if dialect != G17:
            await double.advertise(peer_user)
        ours = await RawUser(joiner.url, keys[1]).connect(display_name="ours")
        await dms_both_ways(joiner.url, double, ours, peer_user, we_go_by)
        await ours.close()
    finally:
        await double.close()
        joiner.stop()


async def test_without_consent_the_node_refuses_an_unsigned_welcome_and_says_how_to_consent(tmp_path, keys) -> None:
    double = DialectDouble(G56, keys[6])
    joiner = await start_joining(tmp_path, keys, double, unsigned_link=False)
    try:
        await double.linked()
        row = await link_state(joiner.port, "", "refused")
        assert "INVALID_SIG" in row["reason"] and "unsigned_link: true" in row["reason"]
        assert "refused" in joiner.log()
    finally:
        await double.close()
        joiner.stop()


async def g101_dms_both_ways(double: DialectDouble, ours: RawUser, peer_key: crypto.PrivateKey) -> None:
    """G101's adverts carry no key (its client reads keys from files): its user's DM
    comes first, and our user answers with the key it knows, as with G101's client."""
    peer_user = VirtualUser(peer_key)
    await double.advertise(peer_user)
    await double.send(double.dm_frame(peer_user, ours.user_id, ours.pubkey, b"from g101"))
    received = await ours.receive("USER_DELIVER")
    assert received.payload["sender"] == peer_user.user_id and ours.open_dm(received) == b"from g101"
    await ours.send(ours.dm_to(peer_user.user_id, crypto.encode_public_key(peer_user.key), b"to g101"))
    deliver = await double.receive("SERVER_DELIVER")
    # What G101 reads: its server the recipient in `to`, its client `from`, `to`, `ts`
    # in the payload and content_sig over ciphertext + from + to + str(ts).
    payload = deliver.payload
    assert (deliver.to, deliver.from_) == (peer_user.user_id, ours.user_id)
    assert (payload["from"], payload["to"]) == (ours.user_id, peer_user.user_id)
    assert double.open_deliver(peer_user, deliver) == b"to g101"
    assert signing.verify_dm(crypto.decode_public_key(payload["sender_pub"]), payload["content_sig"],
                             payload["ciphertext"], payload["from"], payload["to"], payload["ts"])


async def g101_linked(joiner, double: DialectDouble, keys) -> None:
    """The link row shows the opt-in; a DM goes each way over it; its user who leaves
    (G101's USER_REMOVE from "server", docs/interop.md note c12 (ii)) is no longer
    listed."""
    row = await link_state(joiner.port, G101, "joined")
    assert row["opt_in"] == "g101_link" and row["peer_id"] == double.server_id
    ours = await RawUser(joiner.url, keys[1]).connect(display_name="ours")
    await g101_dms_both_ways(double, ours, keys[7])
    [peer_user] = double.users
    assert peer_user.user_id in listed(await ours.list_users())
    await double.send({"type": "USER_REMOVE", "from": "server", "ts": iso_now(),   # its cleanup_user
                       "payload": {"user_id": peer_user.user_id, "ts": iso_now()}})
    for _ in range(50):
        if peer_user.user_id not in listed(await ours.list_users()):
            break
        await asyncio.sleep(0.1)
    assert peer_user.user_id not in listed(await ours.list_users())
    await ours.close()


def listed(answer) -> set[str]:
    return set(answer.payload["users"])   # sorted ids (frames.list_response)


async def test_with_g101_link_a_g101_server_joins_and_dms_flow_both_ways(tmp_path, keys) -> None:
    double = DialectDouble(G101, keys[6], port=40_102)   # the entry's port: nothing listens there
    joiner = await start_joining(tmp_path, keys, double, g101_link=True, listen=False)
    try:
        welcome = await double.join("127.0.0.1", joiner.port)
        assert g101_accepts(welcome.to_dict(), joiner.pubkey)      # its check of our welcome
        await g101_linked(joiner, double, keys)
    finally:
        await double.close()
        joiner.stop()


async def test_with_g101_link_the_node_joins_a_g101_server_and_dms_flow_both_ways(tmp_path, keys) -> None:
    double = DialectDouble(G101, keys[6])
    joiner = await start_joining(tmp_path, keys, double, g101_link=True)
    try:
        await double.linked()
        assert double.hello is not None and g101_accepts(double.hello.to_dict(), joiner.pubkey)   # its check
        await g101_linked(joiner, double, keys)
    finally:
        await double.close()
        joiner.stop()
