"""The bootstrap file (SOCP §6.1) as people write it, and what `socp up` says about it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from socp import node
from socp.bootstrap_file import BootstrapError, parse_bootstrap
from socp.cli import up as up_cli
from socp.protocol import crypto
from socp.store.records import StoreSnapshot


def entry_file(keys, index: int, port: int, header: bool = True, tls: bool = False) -> str:
    """What `socp server-info --yaml` (or `--entry`) prints for a node on `port`."""
    config = SimpleNamespace(public_host="127.0.0.1", public_port=port, public_tls=tls)
    identity = SimpleNamespace(public_key_text=crypto.encode_public_key(keys[index]))
    return node.bootstrap_entry(config, identity, header=header)


def test_appended_yaml_outputs_keep_every_introducer(keys) -> None:
    # README advice once was: append more `--yaml` outputs. PyYAML alone keeps only the
    # last `bootstrap_servers:` list, silently losing the introducers before it.
    text = entry_file(keys, 0, 8765) + entry_file(keys, 1, 8766) + entry_file(keys, 2, 8767)
    assert [i.port for i in parse_bootstrap(text)] == [8765, 8766, 8767]


def test_entries_appended_with_entry_make_one_list(keys) -> None:
    text = entry_file(keys, 0, 8765) + entry_file(keys, 1, 8766, header=False)
    introducers = parse_bootstrap(text)
    assert [(i.port, i.pubkey) for i in introducers] == [(8765, crypto.encode_public_key(keys[0])),
                                                          (8766, crypto.encode_public_key(keys[1]))]


def test_a_tls_node_prints_a_wss_url_entry(keys) -> None:
    text = entry_file(keys, 0, 8443, tls=True) + entry_file(keys, 1, 8766, header=False)
    assert 'url: "wss://127.0.0.1:8443"' in text
    assert [(i.host, i.port, i.tls) for i in parse_bootstrap(text)] == [("127.0.0.1", 8443, True),
                                                                       ("127.0.0.1", 8766, False)]


def test_a_node_behind_a_tls_proxy_prints_its_public_url(keys, tmp_path) -> None:
    from socp.config import NodeConfig

    config = NodeConfig(data_dir=tmp_path, host="127.0.0.1", port=8765, advertise_host="chat.example.org",
                        advertise_port=443, advertise_tls=True)
    identity = SimpleNamespace(public_key_text=crypto.encode_public_key(keys[0]))
    text = node.bootstrap_entry(config, identity)
    assert [(i.host, i.port, i.tls) for i in parse_bootstrap(text)] == [("chat.example.org", 443, True)]


def test_the_same_entry_twice_counts_once(keys) -> None:
    assert len(parse_bootstrap(entry_file(keys, 0, 8765) * 2)) == 1


def test_one_address_with_two_keys_is_refused(keys) -> None:
    with pytest.raises(BootstrapError, match="another key"):
        parse_bootstrap(entry_file(keys, 0, 8765) + entry_file(keys, 1, 8765))


def test_any_other_repeated_key_is_refused(keys) -> None:
    text = entry_file(keys, 0, 8765).replace("    port: 8765\n", "    port: 8765\n    port: 8766\n")
    with pytest.raises(BootstrapError, match="repeats the key 'port'"):
        parse_bootstrap(text)


def test_up_warns_about_fewer_than_three_introducers(keys, tmp_path, monkeypatch) -> None:
    bootstrap = tmp_path / "bootstrap.yaml"
    bootstrap.write_text(entry_file(keys, 0, 8765) + entry_file(keys, 1, 8766))

    def stop_here(config):
        raise node.NodeStartError("stopped by the test")

    monkeypatch.setattr(node, "prepare", stop_here)
    result = CliRunner().invoke(up_cli.up, ["--data-dir", str(tmp_path / "data"), "--bootstrap", str(bootstrap)])
    assert "lists 2 introducer(s); SOCP recommends at least 3" in result.output
    assert "stopped by the test" in result.output


def test_redial_backoff_is_configurable_like_the_link_timing(tmp_path, monkeypatch) -> None:
    from socp.config import NodeConfig
    from socp.router.snapshot import state_from_snapshot

    seen: list[NodeConfig] = []

    def stop_here(config):
        seen.append(config)
        raise node.NodeStartError("stopped by the test")

    monkeypatch.setattr(node, "prepare", stop_here)
    monkeypatch.setenv("SOCP_REDIAL_MIN_BACKOFF", "0.2")
    CliRunner().invoke(up_cli.up, ["--data-dir", str(tmp_path), "--redial-max-backoff", "4"])
    (config,) = seen
    assert (config.redial_min_backoff, config.redial_max_backoff) == (0.2, 4.0)
    snapshot = StoreSnapshot(users={}, pinned_servers={}, pending_key_shares=(), public_channel_version=1,
                             public_channel_members=())
    identity = SimpleNamespace(server_id="6f1e8f0a-1d2c-4b3a-9e8f-7a6b5c4d3e2f", public_key_text="")
    timing = state_from_snapshot(identity, config, snapshot).timing
    assert (timing.min_backoff_ms, timing.max_backoff_ms) == (200, 4000)
    bad = CliRunner().invoke(up_cli.up, ["--data-dir", str(tmp_path), "--redial-min-backoff", "9",
                                         "--redial-max-backoff", "4"])
    assert bad.exit_code != 0 and "must not exceed --redial-max-backoff" in bad.output
