"""The operator's opt-in for G101's link form (bootstrap `g101_link: true`; docs/interop.md
"Opt-in: G101's link form"): on links to and from that pinned peer our openings are
signed over the whole envelope and our DM relays go in its shape; the link row says
so. Every other link, G101-looking or not, gets the reference's frames."""

from __future__ import annotations

import pytest

from socp.bootstrap_file import BootstrapError, Introducer, parse_bootstrap
from socp.protocol import crypto, frames
from socp.protocol.envelope import Envelope
from socp.protocol.ids import new_id
from socp.router import core, federation
from socp.router import link_dialects as dialects
from socp.router.core_io import Dial, LinkUp

from .harness import NOW, Harness, sends, sent_to

G101_ID = "127.0.0.1:9000"   # G101 goes by SERVER_ID, "host:port" unless set


@pytest.fixture
def node(keys) -> Harness:
    return Harness(server_key=keys[0])


def der(key: crypto.PrivateKey) -> str:
    return crypto.encode_public_key(key)


def dial(node: Harness, key: crypto.PrivateKey, g101_link: bool) -> tuple[int, list]:
    node.state.introducers = [Introducer("127.0.0.1", 9000, der(key), g101_link=g101_link)]
    conn = next(a for a in federation.start(node.state) if isinstance(a, Dial)).conn
    return conn, core.handle(node.state, LinkUp(conn))


def its_welcome(node: Harness, key: crypto.PrivateKey) -> Envelope:
    """G101's SERVER_WELCOME as the verifiers hand it on (its ISO ts read as ms)."""
    return Envelope(type="SERVER_WELCOME", from_=G101_ID, to=node.server_id, ts=NOW,
                    payload={"server_id": G101_ID, "pubkey": der(key), "ts": NOW})


def test_bootstrap_g101_link_is_a_strict_boolean(keys) -> None:
    entry = f'host: "127.0.0.1", port: 9000, pubkey: "{der(keys[1])}"'
    [opted] = parse_bootstrap(f"bootstrap_servers:\n  - {{{entry}, g101_link: true}}\n")
    [plain] = parse_bootstrap(f"bootstrap_servers:\n  - {{{entry}}}\n")
    assert opted.g101_link is True and plain.g101_link is False
    with pytest.raises(BootstrapError, match="g101_link"):
        parse_bootstrap(f'bootstrap_servers:\n  - {{{entry}, g101_link: "yes"}}\n')


@pytest.mark.parametrize("g101_link", [True, False])
def test_our_hello_to_it_is_signed_its_way_only_with_the_opt_in(node, keys, g101_link: bool) -> None:
    conn, actions = dial(node, keys[1], g101_link)
    [hello] = sends(actions, "SERVER_HELLO_JOIN")
    assert hello.whole_envelope is g101_link and hello.targets == ((conn, "127.0.0.1:9000"),)


@pytest.mark.parametrize("g101_link", [True, False])
def test_its_welcome_joins_and_the_row_shows_the_opt_in(node, keys, g101_link: bool) -> None:
    conn, _ = dial(node, keys[1], g101_link)
    node.feed(conn, its_welcome(node, keys[1]))
    row = node.state.linkbook.entries["127.0.0.1:9000"]
    assert row.dialect == dialects.G101 and row.peer_id == G101_ID
    assert row.opt_in == ("g101_link" if g101_link else "")
    assert node.state.linkbook.rows()[0][7] == row.opt_in


@pytest.mark.parametrize("g101_link", [True, False])
def test_a_dm_to_its_user_goes_in_its_relay_shape_only_with_the_opt_in(node, keys, g101_link: bool) -> None:
    user_conn, user_id, _ = node.connect_user(keys[2])
    conn, _ = dial(node, keys[1], g101_link)
    node.feed(conn, its_welcome(node, keys[1]))
    node.feed(conn, Envelope(type="USER_ADVERTISE", from_=G101_ID, to="*", ts=NOW,
                             payload={"user_id": "gaia", "server_id": G101_ID, "ts": NOW}))
    dm = frames.msg_direct(user_id, "gaia", NOW, "AAAA", der(keys[2]), "c2ln")
    actions = node.feed(user_conn, dm)
    [send] = [s for s in sends(actions, "SERVER_DELIVER") if s.targets[0][0] == conn]
    relay = send.frame
    if g101_link:   # G101 hands `to`'s user the frame's `from` and payload; its client reads from/to/ts there
        assert send.targets == ((conn, "gaia"),) and (relay.from_, relay.to) == (user_id, "gaia")
        assert {k: relay.payload[k] for k in ("from", "to", "ts")} == {"from": user_id, "to": "gaia", "ts": NOW}
    else:
        assert send.targets == ((conn, G101_ID),) and relay.from_ == node.server_id and "from" not in relay.payload
    assert relay.payload["user_id"] == "gaia" and relay.payload["sender"] == user_id


@pytest.mark.parametrize("pinned_g101", [True, False])
def test_our_welcome_to_it_is_signed_its_way_only_if_its_key_is_opted_in(node, keys, pinned_g101: bool) -> None:
    node.state.introducers = [Introducer("127.0.0.1", 9000, der(keys[1]), g101_link=True)]
    key = keys[1] if pinned_g101 else keys[3]
    hello = Envelope(type="SERVER_HELLO_JOIN", from_=G101_ID if pinned_g101 else new_id(), to=node.server_id,
                     ts=NOW, payload={"host": "127.0.0.1", "port": 9000 if pinned_g101 else 9001,
                                      "pubkey": der(key), "server_id": G101_ID, "ts": NOW})
    actions = node.feed(5, hello)
    [welcome] = sends(actions, "SERVER_WELCOME")
    assert welcome.whole_envelope is pinned_g101 and sent_to(actions, 5, "SERVER_WELCOME")
    row = node.state.linkbook.entries["127.0.0.1:9000" if pinned_g101 else "127.0.0.1:9001"]
    assert row.opt_in == ("g101_link" if pinned_g101 else "")
