"""`socp chat` before it connects: the key store password, in both modes."""

from __future__ import annotations

import click
from click.testing import CliRunner

from socp.cli import chat as chat_cli
from socp.client.home import ClientHome
from socp.protocol import crypto
from support.nodes import free_port

from .chat_process import PASSWORD, Chat


async def test_a_wrong_password_in_script_mode_is_a_json_error_and_exit_1(keys, tmp_path):
    ClientHome(tmp_path / "alice").create("alice", PASSWORD, user_key=keys[0])
    chat = await Chat.start(tmp_path / "alice", f"ws://127.0.0.1:{free_port()}", password="not the password")
    try:
        assert await chat.finish() == 1
    finally:
        chat.kill()
    [refused] = chat.events
    assert (refused["event"], refused["code"], refused["source"]) == ("error", "WRONG_PASSWORD", "client")
    assert "wrong password" in refused["detail"]


def test_interactive_mode_asks_again_after_a_wrong_password(keys, tmp_path, monkeypatch):
    home = ClientHome(tmp_path / "alice")
    home.create("alice", PASSWORD, user_key=keys[0])
    answers = iter(["still wrong", PASSWORD])
    monkeypatch.setattr(click, "prompt", lambda *args, **kwargs: next(answers))
    key, password = chat_cli._open_user_key(home, "wrong", script=False)
    assert password == PASSWORD and crypto.encode_public_key(key) == crypto.encode_public_key(keys[0])


def test_interactive_mode_gives_up_after_three_wrong_passwords(keys, tmp_path, monkeypatch):
    ClientHome(tmp_path / "alice").create("alice", PASSWORD, user_key=keys[0])
    monkeypatch.delenv("SOCP_PASSWORD", raising=False)
    outcome = CliRunner().invoke(chat_cli.chat, ["--home", str(tmp_path / "alice")], input="one\ntwo\nthree\nfour\n")
    assert outcome.exit_code == 1
    assert outcome.output.count("Wrong password; try again.") == 2
    assert "wrong password for the key file (3 tries)" in outcome.output
