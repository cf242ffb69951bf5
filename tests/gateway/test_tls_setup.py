"""TLS setup without sockets: which scheme a peer is dialled with, bootstrap `url`
entries, and files that cannot be used named in one line."""

from __future__ import annotations

import pytest

from socp.bootstrap_file import BootstrapError, parse_bootstrap
from socp.config import NodeConfig
from socp.gateway.tls import LinkSchemes, TlsSetupError, check_files, client_context, server_context
from support.certificates import make_server_certificate

KEY = "MCowBQYDK2VwAyEA"  # not used: every entry below fails before or passes the key check


def test_a_plain_peer_is_dialled_over_ws_then_wss_when_it_does_not_speak_http():
    schemes = LinkSchemes()
    assert schemes.first(("h", 1)) == "ws"
    assert schemes.after_not_http("ws") == "wss"
    assert schemes.after_not_http("wss") is None       # never down to plain text


def test_once_a_peer_answered_over_tls_it_is_never_dialled_in_plain_text_again():
    schemes = LinkSchemes()
    schemes.opened(("h", 1), "wss")
    assert schemes.first(("h", 1)) == "wss"
    schemes.opened(("h", 2), "ws")
    assert schemes.first(("h", 2)) == "ws"


def test_a_wss_bootstrap_entry_is_dialled_over_tls_only(keys):
    from socp.protocol.crypto import encode_public_key

    pub = encode_public_key(keys[0])
    entries = parse_bootstrap(f'bootstrap_servers:\n  - url: "wss://node.example:8443"\n    pubkey: "{pub}"\n'
                              f'  - url: "ws://[::1]:9000"\n    pubkey: "{pub}"\n')
    assert [(e.host, e.port, e.tls) for e in entries] == [("node.example", 8443, True), ("::1", 9000, False)]
    assert LinkSchemes({("node.example", 8443)}).first(("node.example", 8443)) == "wss"


@pytest.mark.parametrize(("entry", "words"), [
    ('url: "https://h:1"', "ws://host:port or wss://host:port"),
    ('url: "wss://h"', "ws://host:port or wss://host:port"),
    ('url: "wss://h:99999"', "ws://host:port or wss://host:port"),
    ('url: "wss://h:1"\n    host: "h"', "either `url` or `host`"),
])
def test_bad_url_entries_are_named(entry, words):
    with pytest.raises(BootstrapError, match="bootstrap entry 0") as caught:
        parse_bootstrap(f'bootstrap_servers:\n  - {entry}\n    pubkey: "{KEY}"\n')
    assert words in str(caught.value)


def test_files_that_cannot_be_used_are_named(tmp_path):
    certs = make_server_certificate(tmp_path)
    server_context(str(certs.cert_file), str(certs.key_file))
    client_context(str(certs.ca_file))
    other = make_server_certificate(tmp_path / "other")
    with pytest.raises(TlsSetupError, match="cannot use certificate"):
        server_context(str(certs.cert_file), str(other.key_file))       # key of another certificate
    with pytest.raises(TlsSetupError, match="no such file"):
        server_context(str(tmp_path / "missing.pem"), str(certs.key_file))
    with pytest.raises(TlsSetupError, match="no usable CA"):
        client_context(str(certs.key_file))
    with pytest.raises(TlsSetupError, match="both --tls-cert and --tls-key"):
        check_files(NodeConfig(data_dir=tmp_path, tls_cert=str(certs.cert_file)))


def test_socp_up_refuses_a_key_that_does_not_match_in_one_line(tmp_path):
    import subprocess
    import sys

    certs = make_server_certificate(tmp_path / "a")
    other = make_server_certificate(tmp_path / "b")
    done = subprocess.run([sys.executable, "-m", "socp", "up", "--data-dir", str(tmp_path / "node"), "--port", "1",
                           "--tls-cert", str(certs.cert_file), "--tls-key", str(other.key_file)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "cannot use certificate" in done.stderr
    assert not (tmp_path / "node").exists()


def test_node_json_is_owner_only_since_it_may_hold_the_database_password(tmp_path):
    config_file = NodeConfig(data_dir=tmp_path, db_url="mysql://socp:secret@127.0.0.1/socp").save()
    assert config_file.stat().st_mode & 0o777 == 0o600
    config_file.chmod(0o644)    # as older versions wrote it
    NodeConfig(data_dir=tmp_path).save()
    assert config_file.stat().st_mode & 0o777 == 0o600
