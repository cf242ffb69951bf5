from __future__ import annotations

import stat

import pytest

from socp.client.events import MessageReceived
from socp.client.home import ClientHome, HomeError
from socp.protocol import crypto

from .client_fakes import FakeNode, MemoryNet


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_keeps_identity_keys_and_pins_private(keys, tmp_path):
    home = ClientHome(tmp_path / "home")
    identity = home.create("alice", "pw", user_key=keys[0], channel_key=keys[3])
    assert home.load_identity() == identity
    for name in ("identity.json", "user_key.pem", "channel_key.pem"):
        assert _mode(home.root / name) == 0o600
    assert _mode(home.downloads_dir) == 0o700
    assert b"ENCRYPTED" in (home.root / "user_key.pem").read_bytes()
    with pytest.raises(HomeError, match="wrong password"):
        home.load_user_key("not it")
    with pytest.raises(HomeError, match="already"):
        home.create("again", "pw", user_key=keys[0])
    key = home.load_user_key("pw")
    assert crypto.encode_public_key(key) == crypto.encode_public_key(keys[0])
    session = home.session(key, "pw")
    assert session.me.user_id == identity.user_id and session.me.display_name == "alice"
    assert crypto.encode_public_key(session.channel_keys.own()) == crypto.encode_public_key(keys[3])
    assert home.update_identity(last_server="ws://x").last_server == "ws://x"


def test_peer_channel_keys_and_pins_survive_a_restart(keys, tmp_path):
    alice_home, bob_home = ClientHome(tmp_path / "a"), ClientHome(tmp_path / "b")
    alice_home.create("alice", "pw", user_key=keys[0], channel_key=keys[3])
    bob_home.create("bob", "pw", user_key=keys[1])
    alice, bob = alice_home.session(keys[0], "pw"), bob_home.session(keys[1], "pw")
    net = MemoryNet(FakeNode())
    for session in (alice, bob):
        net.join(session)
    net.refresh(alice, bob)
    net.send(alice, alice.messages.post_public("one"))
    assert net.take(bob, MessageReceived)[0].text == "one"
    assert (bob_home.root / "pins.json").exists() and _mode(bob_home.root / "peer_channel_keys.json") == 0o600
    # Bob restarts: alice does not re-share (she already did), bob still reads her.
    net.leave(bob)
    bob = bob_home.session(keys[1], "pw")
    net.join(bob)
    net.refresh(bob)
    net.take(bob)
    again = alice.messages.post_public("two")
    assert [f.type for f in again.frames] == ["MSG_PUBLIC_CHANNEL"]
    net.send(alice, again)
    [message] = net.take(bob, MessageReceived)
    assert (message.text, message.form, message.trusted) == ("two", "encrypted", True)
    assert bob.pins.get(alice.me.user_id) == crypto.fingerprint(keys[0].public_key())


def test_config_toml_sets_the_auto_accept_and_max_sizes(keys, tmp_path):
    home = ClientHome(tmp_path / "home")
    home.create("alice", "pw", user_key=keys[0], channel_key=keys[3])
    files = home.session(keys[0], "pw").incoming_files
    assert (files.auto_accept_bytes, files.max_file_bytes) == (16 * 1024**2, 4 * 1024**3)
    (home.root / "config.toml").write_text('[files]\nauto_accept = "1 MiB"\nmax_size = "500 MB"\n')
    files = home.session(keys[0], "pw").incoming_files
    assert (files.auto_accept_bytes, files.max_file_bytes) == (1024**2, 500 * 1000**2)
    (home.root / "config.toml").write_text("[files]\nauto_accept = 0\n")
    assert home.session(keys[0], "pw").incoming_files.auto_accept_bytes == 0            # always ask
    (home.root / "config.toml").write_text('[files]\nauto_accept = "lots"\n')
    with pytest.raises(HomeError, match="'lots' is not a size"):
        home.session(keys[0], "pw")
    (home.root / "config.toml").write_text('[files]\nauto_acept = "1 MiB"\n')
    with pytest.raises(HomeError, match="unknown setting.*auto_acept"):
        home.session(keys[0], "pw")


def test_config_toml_chooses_the_apps_theme(keys, tmp_path):
    home = ClientHome(tmp_path / "home")
    home.create("alice", "pw", user_key=keys[0], channel_key=keys[3])
    assert home.settings().theme == "dark"
    (home.root / "config.toml").write_text('[ui]\ntheme = "light"\n')
    assert home.settings().theme == "light"
    (home.root / "config.toml").write_text('[ui]\ntheme = "solarized"\n')
    with pytest.raises(HomeError, match="theme must be one of dark, light, not 'solarized'"):
        home.settings()
    (home.root / "config.toml").write_text('[ui]\ncolour = "light"\n')
    with pytest.raises(HomeError, match=r"unknown setting.*\[ui\]: colour"):
        home.settings()


def test_an_existing_channel_key_is_loaded_not_announced_as_made(keys, tmp_path):
    with_key = ClientHome(tmp_path / "with")
    with_key.create("alice", "pw", user_key=keys[0], channel_key=keys[3])
    ring = with_key.session(keys[0], "pw").channel_keys
    assert not ring.must_make_own and not ring.has_own
    without = ClientHome(tmp_path / "without")
    without.create("bob", "pw", user_key=keys[1])
    assert without.session(keys[1], "pw").channel_keys.must_make_own


def test_a_login_is_recorded_per_server_and_per_url_when_the_id_may_be_shared(keys, tmp_path):
    """Every standalone G17 server calls itself "auto" (issue #14, note a7): a login
    stored at one of them is not taken as stored at another; a UUID id is one server
    whatever URL reached it."""
    home = ClientHome(tmp_path / "alice")
    home.create("alice", "pw", user_key=keys[0])
    home.remember_login("auto", "ws://127.0.0.1:9001")
    assert home.login_stored("auto", "ws://127.0.0.1:9001")
    assert not home.login_stored("auto", "ws://127.0.0.1:9002")
    node_id = "0b6f1c1e-5d7a-4c1e-9a53-3f0f1e2a4b5c"
    home.remember_login(node_id, "ws://127.0.0.1:9003")
    assert home.login_stored(node_id, "wss://chat.example:443")
