"""`socp chat`: the terminal client (interactive, or --script for JSON lines).

The home directory holds the identity, the password-protected keys, TOFU pins
and downloads (see socp/client/home.py). The password comes from SOCP_PASSWORD
or a prompt (interactive mode only).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path

import click

from socp.client.connection import FILE_CHUNK_RATE
from socp.client.home import ClientHome, HomeError
from socp.protocol import crypto
from socp.protocol.errors import BadKey

DEFAULT_SERVER = "ws://127.0.0.1:8765"


def _default_home() -> Path:
    return Path(click.get_app_dir("socp"))


def _password(script: bool, creating: bool) -> str:
    password = os.environ.get("SOCP_PASSWORD")
    if password:
        return password
    if script:
        raise click.UsageError("--script needs the key store password in SOCP_PASSWORD")
    return click.prompt("Key store password", hide_input=True, confirmation_prompt=creating)


def _generate_key(script: bool) -> crypto.PrivateKey:
    if script or not sys.stderr.isatty():
        return crypto.generate_private_key()
    from rich.console import Console

    with Console(stderr=True).status("Generating your RSA-4096 key (about a second)…"):
        return crypto.generate_private_key()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", default=DEFAULT_SERVER, envvar="SOCP_SERVER", show_default=True,
              help="WebSocket URL of your node (env SOCP_SERVER).")
@click.option("--home", "home_dir", type=click.Path(file_okay=False, path_type=Path), envvar="SOCP_HOME",
              default=None, help="Client home: identity, keys, pins, downloads. [default: ~/.config/socp]")
@click.option("--name", default=None, help="Display name (set on first run, or changed).")
@click.option("--script", is_flag=True, help="Read commands from stdin, write one JSON object per event.")
@click.option("--linger", type=float, default=1.0, show_default=True,
              help="--script: seconds to keep receiving after the last command.")
@click.option("--server-key", default=None, envvar="SOCP_SERVER_KEY",
              help="The node's public key (`socp server-info`); frames it did not sign are dropped.")
@click.option("--sign-chunks/--no-sign-chunks", default=True, show_default=True,
              help="Sign every FILE_CHUNK as §5 requires; --no-sign-chunks saves the sender an RSA "
                   "signature per chunk where the server accepts unsigned user frames.")
@click.option("--file-rate", type=click.FloatRange(min=1.0), default=FILE_CHUNK_RATE, show_default=True,
              help="File chunks per second (servers drop frames over their rate limit).")
@click.option("--connect-attempts", type=click.IntRange(min=1), default=None,
              help="Give up after this many connection attempts. [default: 5 with --script, else keep trying]")
def chat(server: str, home_dir: Path | None, name: str | None, script: bool, linger: float,
         server_key: str | None, sign_chunks: bool, file_rate: float, connect_attempts: int | None) -> None:
    """Chat over SOCP v1.3: /list, /tell, /all, /file, /whois, /trust, /help, /quit."""
    home = ClientHome(home_dir or _default_home())
    creating = not home.exists()
    password = _password(script, creating)
    try:
        if creating:
            display_name = name or getpass.getuser()
            identity = home.create(display_name, password, user_key=_generate_key(script))
            if not script:
                click.echo(f"Created identity {identity.user_id} ({display_name}) in {home.root}", err=True)
        elif name:
            home.update_identity(display_name=name)
        home.update_identity(last_server=server)
        user_key = home.load_user_key(password)
        pinned_server = crypto.decode_public_key(server_key) if server_key else None
    except HomeError as exc:
        raise click.ClickException(exc.detail) from exc
    except BadKey as exc:
        raise click.BadParameter(exc.detail, param_hint="--server-key") from exc
    session = home.session(user_key, password, server_key=pinned_server, sign_file_chunks=sign_chunks)

    if script:
        from socp.client.script import run_script

        try:
            code = asyncio.run(run_script(session, server, linger=linger, connect_attempts=connect_attempts or 5,
                                          file_chunk_rate=file_rate))
        except KeyboardInterrupt:
            code = 130
        sys.exit(code)

    from socp.client.connection import ChatClient
    from socp.client.tui import ChatApp

    def run_client(emit, lines):  # type: ignore[no-untyped-def]
        client = ChatClient(session, server, emit, connect_attempts=connect_attempts, linger=0.2,
                            reconnect=True, auto_refresh=True, file_chunk_rate=file_rate)
        return client.run(lines)

    try:
        code = ChatApp(run_client).run()
    finally:
        session.close()
    sys.exit(code or 0)
