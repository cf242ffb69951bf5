"""`socp up`: start a node with every actor under supervisord; `socp server-info`."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from socp import node
from socp.bootstrap_file import RECOMMENDED_INTRODUCERS, BootstrapError, load_bootstrap
from socp.config import NodeConfig
from socp.gateway.tls import TlsSetupError, check_files
from socp.identity import IdentityError, NodeIdentity, load_identity

DEFAULT_DATA_DIR = Path("socp-data")


def _print_info(config: NodeConfig, server_id: str, public_key: str) -> None:
    click.echo(f"url:        {config.ws_url}")
    if (config.public_host, config.public_port, config.public_tls) != (config.host, config.port, config.tls):
        scheme = "wss" if config.public_tls else "ws"
        click.echo(f"public url: {scheme}://{config.public_host}:{config.public_port}")
    click.echo(f"server id:  {server_id}")
    click.echo(f"public key: {public_key}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="SOCP_HOST", show_envvar=True,
              help="Address to listen on.")
@click.option("--port", default=8765, show_default=True,
              type=click.IntRange(1, 65535), envvar="SOCP_PORT", show_envvar=True,
              help="Port of the WebSocket listener (users, servers, /healthz).")
@click.option("--data-dir", default=DEFAULT_DATA_DIR, show_default=True, envvar="SOCP_DATA_DIR", show_envvar=True,
              type=click.Path(path_type=Path, file_okay=False), help="Identity, database, sockets.")
@click.option("--db", "db_url", default="", envvar="SOCP_DB", show_envvar=True,
              help="sqlite:///path or mysql://user:pass@host:port/db (default: SQLite in the data dir).")
@click.option("--verifiers", default=os.cpu_count() or 1, show_default=True, type=click.IntRange(1, 64),
              envvar="SOCP_VERIFIERS", show_envvar=True, help="Signing/verifying processes.")
@click.option("--bootstrap", default="", envvar="SOCP_BOOTSTRAP", show_envvar=True,
              help="YAML list of introducers to join.")
@click.option("--advertise-host", default="", envvar="SOCP_ADVERTISE_HOST", show_envvar=True,
              help="Host other servers dial (default: --host).")
@click.option("--advertise-port", default=0, envvar="SOCP_ADVERTISE_PORT", type=click.IntRange(0, 65535),
              help="Port other servers dial (default: --port); e.g. 443 behind a reverse proxy.")
@click.option("--advertise-tls", is_flag=True, envvar="SOCP_ADVERTISE_TLS",
              help="Other servers reach this node as wss:// through a TLS-terminating proxy (server-info says so).")
@click.option("--verifier-listen", default="", envvar="SOCP_VERIFIER_LISTEN", show_envvar=True, metavar="tcp://HOST:PORT",
              help="Also take verifiers on other hosts (`socp verifier`), over CURVE; their public keys "
                   "go in DATA_DIR/allowed_verifiers. See docs/scale.md.")
@click.option("--heartbeat-interval", default=15.0, envvar="SOCP_HEARTBEAT_INTERVAL", hidden=True, type=float)
@click.option("--link-timeout", default=45.0, envvar="SOCP_LINK_TIMEOUT", hidden=True, type=float)
@click.option("--hello-timeout", default=10.0, show_default=True, envvar="SOCP_HELLO_TIMEOUT", show_envvar=True,
              type=float,
              help="Seconds a new connection may stay silent. G17's client sends nothing until a person "
                   "has typed /register or /login and a password: raise this (e.g. 300) to serve it.")
@click.option("--tls-cert", default="", envvar="SOCP_TLS_CERT", show_envvar=True, metavar="FILE",
              help="PEM certificate (chain): serve wss:// (users and servers) on --port instead of ws://.")
@click.option("--tls-key", default="", envvar="SOCP_TLS_KEY", show_envvar=True, metavar="FILE",
              help="The certificate's PEM key.")
@click.option("--ca", "ca_file", default="", envvar="SOCP_CA", show_envvar=True, metavar="FILE",
              help="Also trust this CA (PEM) when dialling wss:// servers; the system store is always used.")
@click.option("--metrics", default="", envvar="SOCP_METRICS", show_envvar=True, metavar="HOST:PORT",
              help="Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDRESS",
              help="A reverse proxy's address (repeatable): connections from it are limited per the client "
                   "address it appends to X-Forwarded-For.")
@click.option("--redial-min-backoff", default=0.5, envvar="SOCP_REDIAL_MIN_BACKOFF", show_envvar=True, hidden=True,
              type=click.FloatRange(min=0.01))
@click.option("--redial-max-backoff", default=30.0, envvar="SOCP_REDIAL_MAX_BACKOFF", show_envvar=True, hidden=True,
              type=click.FloatRange(min=0.01))
@click.option("--ack-interval", default=0.5, show_default=True, envvar="SOCP_ACK_INTERVAL",
              type=click.FloatRange(min=0), help="Seconds between two ACKs to one connection (each costs a signature).")
@click.option("--ack-max-delay", default=30.0, show_default=True, envvar="SOCP_ACK_MAX_DELAY",
              type=click.FloatRange(min=0),
              help="While signatures are short, ACKs wait for spare ones, but at most this many seconds.")
def up(host: str, port: int, data_dir: Path, db_url: str, verifiers: int, bootstrap: str, advertise_host: str,
       advertise_port: int, advertise_tls: bool, verifier_listen: str,
       heartbeat_interval: float, link_timeout: float, hello_timeout: float,
       tls_cert: str, tls_key: str, ca_file: str, metrics: str, trusted_proxies: tuple[str, ...],
       redial_min_backoff: float, redial_max_backoff: float, ack_interval: float,
       ack_max_delay: float) -> None:
    """Start a node: store, router, verifier pool and gateway under supervisord.

    Every option can also be set in the environment: SOCP_HOST, SOCP_PORT,
    SOCP_DATA_DIR, SOCP_DB, SOCP_VERIFIERS, SOCP_BOOTSTRAP, SOCP_ADVERTISE_HOST,
    SOCP_HELLO_TIMEOUT (and the others shown as "env var" below). The data
    directory holds the node's private key and users' encrypted keys: it and
    everything in it are private to you (0700 / 0600).
    """
    _make_private(data_dir)
    if redial_min_backoff > redial_max_backoff:
        raise click.BadParameter("must not exceed --redial-max-backoff", param_hint="--redial-min-backoff")
    if verifier_listen and not _is_tcp_address(verifier_listen):
        raise click.BadParameter("give tcp://HOST:PORT", param_hint="--verifier-listen")
    if bootstrap:
        try:
            introducers = load_bootstrap(bootstrap)
        except BootstrapError as exc:
            raise click.ClickException(str(exc)) from None
        if len(introducers) < RECOMMENDED_INTRODUCERS:
            click.echo(f"warning: {bootstrap} lists {len(introducers)} introducer(s); "
                       f"SOCP recommends at least {RECOMMENDED_INTRODUCERS}", err=True)
    proxies = ",".join(_addresses(trusted_proxies))
    if metrics:
        _check_metrics_address(metrics, port, host)
    try:
        check_files(NodeConfig(data_dir=data_dir, tls_cert=tls_cert, tls_key=tls_key, ca_file=ca_file))
    except TlsSetupError as exc:
        raise click.ClickException(str(exc)) from None
    # Before anything is written to the data dir: one node per directory (see DataDirLock).
    try:
        lock = node.DataDirLock.acquire(data_dir)
    except node.NodeStartError as exc:
        raise click.ClickException(str(exc)) from None
    config = NodeConfig(
        data_dir=lock.data_dir, host=host, port=port, db_url=db_url, verifiers=verifiers,
        bootstrap=str(Path(bootstrap).resolve()) if bootstrap else "", advertise_host=advertise_host,
        advertise_port=advertise_port, advertise_tls=advertise_tls,
        heartbeat_interval=heartbeat_interval, link_timeout=link_timeout, hello_timeout=hello_timeout,
        redial_min_backoff=redial_min_backoff, redial_max_backoff=redial_max_backoff, ack_interval=ack_interval,
        ack_max_delay=ack_max_delay,
        tls_cert=_absolute(tls_cert), tls_key=_absolute(tls_key), ca_file=_absolute(ca_file), metrics=metrics,
        trusted_proxies=proxies,
        verifier_listen=verifier_listen,
    )
    try:
        identity, created = node.prepare(config)
    except node.NodeStartError as exc:
        lock.release(refused=True)
        raise click.ClickException(str(exc)) from None
    try:
        _run_until_stopped(config, identity, created)
    finally:
        lock.release()


def _addresses(texts: tuple[str, ...]) -> list[str]:
    import ipaddress

    try:
        return [str(ipaddress.ip_address(text.strip())) for text in texts]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--trusted-proxy") from None


def _absolute(path: str) -> str:
    """Actors run with another working directory: keep file options absolute."""
    return str(Path(path).resolve()) if path else ""


def _check_metrics_address(metrics: str, port: int, host: str) -> None:
    from socp.metrics.address import MetricsAddressError, parse_metrics_address

    try:
        metrics_host, metrics_port = parse_metrics_address(metrics)
    except MetricsAddressError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from None
    if metrics_port == port and metrics_host in (host, "0.0.0.0", "::"):
        raise click.BadParameter(f"port {metrics_port} is the node's own --port", param_hint="--metrics")


def _make_private(data_dir: Path) -> None:
    """Files the node creates from here on are 0600 and directories 0700 (its child
    processes inherit the umask); a data directory made before this is tightened."""
    os.umask(0o077)
    if not data_dir.is_dir():
        return
    data_dir.chmod(0o700)
    for path in data_dir.rglob("*"):
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        if mode & 0o077:
            path.chmod(0o700 if path.is_dir() else mode & 0o700)
def _is_tcp_address(url: str) -> bool:
    host, _, port = url.removeprefix("tcp://").rpartition(":")
    return url.startswith("tcp://") and bool(host) and port.isdigit() and 0 < int(port) < 65536


def _run_until_stopped(config: NodeConfig, identity: NodeIdentity, created: bool) -> None:
    if created:
        click.echo(f"created a new node identity in {config.data_dir}")
    if config.verifier_listen:
        from socp.verifier.curve import ALLOWED_FILE, load_or_create_keypair

        keys, _ = load_or_create_keypair(Path(config.data_dir))
        click.echo(f"verifiers:  {config.verifier_listen}, node key {keys.public} "
                   f"(allowed keys in {Path(config.data_dir) / ALLOWED_FILE})")
    conf = node.render_supervisor_conf(config)
    found_before_start = node.runtime_files(config)
    process = node.start_supervisord(conf)

    def stop_on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        node.wait_ready(config, process)
        _print_info(config, load_identity(config.data_dir).server_id, identity.public_key_text)
        click.echo("ready (Ctrl-C stops the node)", err=False)
        sys.stdout.flush()
        process.wait()
        raise click.ClickException(f"supervisord exited unexpectedly (code {process.returncode})")
    except node.NodeStartError as exc:
        node.stop(config, process, found_before_start)
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("stopping...", err=True)
        node.stop(config, process, found_before_start)
        click.echo("stopped", err=True)


@click.command("server-info")
@click.option("--data-dir", default=DEFAULT_DATA_DIR, show_default=True, envvar="SOCP_DATA_DIR",
              type=click.Path(path_type=Path, file_okay=False))
@click.option("--yaml", "yaml_only", is_flag=True, help="Print only the bootstrap YAML file (one entry).")
@click.option("--entry", "entry_only", is_flag=True,
              help="Print only the list entry, to append (>>) to a bootstrap file.")
def server_info(data_dir: Path, yaml_only: bool, entry_only: bool) -> None:
    """Print a node's URL, server id and public key, and a bootstrap YAML entry."""
    try:
        config = NodeConfig.load(data_dir)
        identity = load_identity(data_dir)
    except (OSError, ValueError, KeyError, IdentityError) as exc:
        raise click.ClickException(f"no usable node in {data_dir}: {exc}") from None
    if entry_only:
        click.echo(node.bootstrap_entry(config, identity, header=False), nl=False)
        return
    if not yaml_only:
        _print_info(config, identity.server_id, identity.public_key_text)
        click.echo("")
    click.echo(node.bootstrap_entry(config, identity), nl=False)
