"""`socp verifier` and `socp up --verifier-listen`: what an operator types (issue #18)."""

from __future__ import annotations

from click.testing import CliRunner

from socp.cli.up import up
from socp.cli.verifier import verifier
from socp.verifier.curve import NODE_PUBLIC_FILE, PUBLIC_FILE, check_key


def test_print_key_makes_the_key_pair_once_and_prints_the_same_key(tmp_path) -> None:
    first = CliRunner().invoke(verifier, ["--data-dir", str(tmp_path / "v"), "--print-key"])
    second = CliRunner().invoke(verifier, ["--data-dir", str(tmp_path / "v"), "--print-key"])
    assert first.exit_code == second.exit_code == 0
    assert first.output == second.output == (tmp_path / "v" / PUBLIC_FILE).read_text()
    check_key(first.output)


def test_without_the_nodes_key_it_says_where_to_get_it(tmp_path) -> None:
    outcome = CliRunner().invoke(verifier, ["--node", "tcp://127.0.0.1:1", "--data-dir", str(tmp_path / "v")])
    assert outcome.exit_code != 0
    assert "--node-key" in outcome.output and "Traceback" not in outcome.output
    assert not (tmp_path / "v" / NODE_PUBLIC_FILE).exists()


def test_a_bad_node_key_or_address_is_refused_clearly(tmp_path) -> None:
    bad_key = CliRunner().invoke(verifier, ["--node", "tcp://127.0.0.1:1", "--data-dir", str(tmp_path / "v"),
                                            "--node-key", "not a key"])
    assert bad_key.exit_code != 0 and "CURVE public key" in bad_key.output
    bad_url = CliRunner().invoke(verifier, ["--node", "ws://127.0.0.1:1", "--data-dir", str(tmp_path / "v")])
    assert bad_url.exit_code != 0 and "tcp://HOST:PORT" in bad_url.output


def test_up_refuses_a_verifier_listen_that_is_not_tcp(tmp_path) -> None:
    outcome = CliRunner().invoke(up, ["--data-dir", str(tmp_path / "n"), "--verifier-listen", "0.0.0.0:7600"])
    assert outcome.exit_code != 0 and "tcp://HOST:PORT" in outcome.output
    assert not (tmp_path / "n").exists()
