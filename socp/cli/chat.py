"""`socp chat`: the terminal client (interactive, or --script for JSON lines).

The home directory holds the identity, the password-protected keys, TOFU pins
and downloads (see socp/client/home.py). The password comes from SOCP_PASSWORD
or a prompt (interactive mode only). A wrong password is asked again, up to
PASSWORD_ATTEMPTS tries in all; --script prints an `error` event (WRONG_PASSWORD)
and exits 1.

The same password protects the login the client stores on its server (once per
home and server, after the first hello): `socp chat --login USER_ID --home NEW_DIR`
on another machine gets the key back from the server with it (docs/chat.md,
"Logging in on a new machine").
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path

import click

from socp.client import tls
from socp.client.connection import LoginStore
from socp.client.home import THEMES, USER_KEY_FILE, ClientHome, HomeError, WrongPassword
from socp.client.transport import server_url_problem
from socp.protocol import crypto
from socp.protocol.errors import BadKey

DEFAULT_SERVER = "ws://127.0.0.1:8765"
PASSWORD_ATTEMPTS = 3   # interactive mode: tries at the key store password


def _default_home() -> Path:
    return Path(click.get_app_dir("socp"))


def _password(script: bool, creating: bool, prompt: str = "Key store password") -> str:
    password = os.environ.get("SOCP_PASSWORD")
    if password:
        return password
    if script:
        raise click.UsageError("--script needs the key store password in SOCP_PASSWORD")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=creating)


def _check_server_url(server: str, script: bool) -> None:
    """A --server that cannot be a node's URL stops here, before any prompt: one line
    (an `error` event BAD_SERVER_URL in --script) and exit code 2, never a traceback."""
    problem = server_url_problem(server)
    if not problem:
        return
    if script:
        from socp.client.events import ErrorReceived
        from socp.client.script import JsonLinesOutput

        JsonLinesOutput(sys.stdout)(ErrorReceived("BAD_SERVER_URL", problem, "client"))
    click.echo(f"Error: --server: {problem}", err=True)
    sys.exit(2)


def _open_user_key(home: ClientHome, password: str, script: bool) -> tuple[crypto.PrivateKey, str]:
    """The user key and the password that opened it. Interactive mode asks again
    after a wrong password (PASSWORD_ATTEMPTS tries in all); --script prints a
    WRONG_PASSWORD `error` event and exits 1."""
    tries = 1
    while True:
        try:
            return home.load_user_key(password), password
        except WrongPassword as exc:
            if script:
                from socp.client.events import ErrorReceived
                from socp.client.script import JsonLinesOutput

                JsonLinesOutput(sys.stdout)(ErrorReceived("WRONG_PASSWORD", exc.detail, "client"))
                click.echo(f"Error: {exc.detail}", err=True)
                sys.exit(1)
            if tries >= PASSWORD_ATTEMPTS:
                raise click.ClickException(f"{exc.detail} ({tries} tries)") from exc
            tries += 1
            click.echo("Wrong password; try again.", err=True)
            password = click.prompt("Key store password", hide_input=True)


def _log_in(home: ClientHome, user_id: str, password: str, server: str, pinned_server: crypto.PublicKey | None,
            name: str | None, script: bool, connect_attempts: int) -> None:
    """`--login`: get the user's key back from the server into a new home, or exit 1."""
    from socp.client.events import ErrorReceived, Event, LoggedIn
    from socp.client.render import event_text
    from socp.client.roaming import LoginFailed, RoamingLogin
    from socp.client.script import JsonLinesOutput
    from socp.client.transport import ConnectFailed, log_in

    def emit(event: Event) -> None:
        if script:
            JsonLinesOutput(sys.stdout)(event)
        else:
            line = event_text(event)
            click.echo(line.plain if line is not None else str(event), err=True)

    if home.exists() or (home.root / USER_KEY_FILE).exists():
        raise click.UsageError(f"--login makes a new home, but {home.root} already holds an identity; "
                               "give --home a new, empty directory")
    try:
        attempt = RoamingLogin(user_id, password, server_key=pinned_server)
    except LoginFailed as exc:
        raise click.BadParameter(exc.detail, param_hint="--login") from exc
    if not script:
        click.echo(f"Logging in as {user_id} on {server}…", err=True)
    try:
        key = asyncio.run(log_in(attempt, server, emit, connect_attempts=connect_attempts))
        home.create(name or getpass.getuser(), password, user_key=key, user_id=user_id)
    except (LoginFailed, ConnectFailed, HomeError) as exc:
        code = exc.wire_code if isinstance(exc, LoginFailed) else "UNREACHABLE" if isinstance(
            exc, ConnectFailed) else exc.code.value
        if not script:
            raise click.ClickException(f"{code}: {exc.detail}") from exc
        emit(ErrorReceived(code, exc.detail, "client"))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    # The server that gave the key back keeps our login: nothing to register there.
    home.remember_login(attempt.server_id, server)
    emit(LoggedIn(user_id, attempt.server_id, server, crypto.fingerprint(key.public_key())))


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
@click.option("--ca", "ca_file", default=None, envvar="SOCP_CA", metavar="FILE",
              help="Also trust this CA (PEM) for a wss:// --server; the system store is always used.")
@click.option("--server-key", default=None, envvar="SOCP_SERVER_KEY",
              help="The node's public key (`socp server-info`); frames it did not sign are dropped.")
@click.option("--sign-chunks/--no-sign-chunks", default=True, show_default=True,
              help="Sign every FILE_CHUNK as §5 requires; --no-sign-chunks saves the sender an RSA "
                   "signature per chunk where the server accepts unsigned user frames.")
@click.option("--file-rate", type=click.FloatRange(min=1.0), default=None,
              help="Cap file chunks per second below what the node grants (by default they go as fast "
                   "as our node allows a user: 240/s after a burst of 450 while it is idle).")
@click.option("--chunk-blocks", type=click.IntRange(1, 64), default=1, show_default=True,
              help="RSA-OAEP blocks (446 bytes each) per file chunk.")
@click.option("--connect-attempts", type=click.IntRange(min=1), default=None,
              help="Give up after this many connection attempts. [default: 5 with --script or --login, "
                   "else keep trying]")
@click.option("--reconnect", is_flag=True,
              help="--script: after a lost connection, connect again (with backoff) instead of exiting 1; "
                   "the interactive client always does.")
@click.option("--login", "login_id", default=None, metavar="USER_ID",
              help="On a new machine: get your key back from the server with your password, into a new, "
                   "empty --home, then chat as usual.")
@click.option("--theme", type=click.Choice(THEMES), default=None,
              help="Colours for a dark or a light terminal. [default: [ui] theme in the home's config.toml, "
                   "else dark]")
@click.option("--store-login/--no-store-login", default=True, show_default=True, envvar="SOCP_STORE_LOGIN",
              help="Keep your key, encrypted under your password, on the server (once per home and server), "
                   "so that --login works on other machines (env SOCP_STORE_LOGIN=0 turns it off).")
def chat(server: str, home_dir: Path | None, name: str | None, script: bool, linger: float, ca_file: str | None,
         server_key: str | None, sign_chunks: bool, file_rate: float | None, chunk_blocks: int,
         connect_attempts: int | None,
         reconnect: bool, login_id: str | None, store_login: bool, theme: str | None) -> None:
    """Chat over SOCP v1.3: windows per conversation, /help lists the commands and keys.

    The key store's password comes from SOCP_PASSWORD, else a prompt (--script
    needs SOCP_PASSWORD). Files up to 16 MiB are saved without asking; set
    [files] auto_accept and max_size in the home's config.toml (docs/chat.md).
    Files and directories the client creates are private (0600 / 0700).
    """
    os.umask(0o077)   # everything made from here on (home, downloads) is private
    _check_server_url(server, script)
    if ca_file:
        try:
            tls.trust_ca(ca_file)
        except tls.CaFileError as exc:
            raise click.BadParameter(str(exc), param_hint="--ca") from None
    home = ClientHome(home_dir or _default_home())
    try:
        pinned_server = crypto.decode_public_key(server_key) if server_key else None
    except BadKey as exc:
        raise click.BadParameter(exc.detail, param_hint="--server-key") from exc
    if login_id:
        password = _password(script, False, prompt="Password")
        _log_in(home, login_id, password, server, pinned_server, name, script, connect_attempts or 5)
        name = None   # the login set it
    else:
        password = _password(script, not home.exists())
    creating = not home.exists()
    notes: list[str] = []     # shown in the app's status window (the terminal is the app's then)
    try:
        if creating:
            display_name = name or getpass.getuser()
            identity = home.create(display_name, password, user_key=_generate_key(script))
            created = f"Created identity {identity.user_id} ({display_name}) in {home.root}"
            notes.append(created)
            if not script:
                click.echo(created, err=True)
        elif name:
            home.update_identity(display_name=name)
        home.update_identity(last_server=server)
        user_key, password = _open_user_key(home, password, script)
        session = home.session(user_key, password, server_key=pinned_server, sign_file_chunks=sign_chunks,
                               chunk_blocks=chunk_blocks)
        theme = theme or home.settings().theme
    except HomeError as exc:
        raise click.ClickException(exc.detail) from exc
    login_store = LoginStore(password, home.login_stored, home.remember_login) if store_login else None

    if script:
        from socp.client.script import run_script

        try:
            code = asyncio.run(run_script(session, server, linger=linger, connect_attempts=connect_attempts or 5,
                                          file_chunk_rate=file_rate, login_store=login_store,
                                          reconnect=reconnect))
        except KeyboardInterrupt:
            code = 130
        sys.exit(code)

    from socp.client.connection import ChatClient, ConnectionSettings
    from socp.client.tui import ChatApp

    def run_client(emit, lines):  # type: ignore[no-untyped-def]  # ChatApp's callback; typed in socp.client.tui
        client = ChatClient(session, server, emit,
                            ConnectionSettings(connect_attempts=connect_attempts, linger=0.2, reconnect=True,
                                               auto_refresh=True, file_chunk_rate=file_rate),
                            login_store=login_store)
        return client.run(lines)

    app = ChatApp(run_client, notes=tuple(notes), theme=theme)
    try:
        app_code = app.run()
    finally:
        session.close()
    if app_code and app.last_error:
        click.echo(f"Error: {app.last_error}", err=True)
    sys.exit(app_code or 0)
