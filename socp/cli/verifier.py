"""`socp verifier`: a verifier on another host, for a node started with
`socp up --verifier-listen tcp://HOST:PORT` (issue #18; docs/scale.md).

    socp verifier --data-dir vdir --print-key                  # make (once) and print this verifier's key
    socp verifier --node tcp://HOST:PORT --data-dir vdir --node-key NODEKEY [--processes 2]

The node lets it in once its public key is a line of the node's
DATA_DIR/allowed_verifiers; NODEKEY is what `socp up` prints as "node key" (kept in
vdir after the first run).
"""

from __future__ import annotations

import multiprocessing
import signal
from pathlib import Path

import click

from socp.verifier.curve import CurveKeyError, load_or_create_keypair

MAX_PROCESSES = 64


def _run_one(node_url: str, data_dir: Path, node_key: str) -> None:
    from socp.verifier import remote

    remote.run(node_url, data_dir, node_key)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option("--node", "node_url", default=None, metavar="tcp://HOST:PORT",
              help="The node's --verifier-listen address.")
@click.option("--data-dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Where this verifier keeps its CURVE keys (not the node's data dir).")
@click.option("--node-key", default=None, help="The node's verifier key (Z85), once; kept in the data dir.")
@click.option("--processes", type=click.IntRange(1, MAX_PROCESSES), default=1, show_default=True,
              help="Verifier processes on this host (one per core to spare).")
@click.option("--print-key", is_flag=True, help="Print this verifier's public key (made on first use) and exit.")
def verifier(node_url: str | None, data_dir: Path, node_key: str | None, processes: int, print_key: bool) -> None:
    """Sign and verify for a node on another host, over CURVE-encrypted ZeroMQ TCP."""
    try:
        keys, created = load_or_create_keypair(data_dir)
    except (OSError, CurveKeyError) as exc:
        raise click.ClickException(f"cannot use the keys in {data_dir}: {exc}") from None
    if print_key:
        click.echo(keys.public)
        return
    if not node_url:
        raise click.UsageError("give --node tcp://HOST:PORT (or --print-key)")
    if not node_url.startswith("tcp://"):
        raise click.BadParameter("give tcp://HOST:PORT", param_hint="--node")
    from socp.verifier.remote import node_key_for

    try:
        node_key = node_key_for(data_dir, node_key)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if created:
        click.echo(f"made this verifier's key pair in {data_dir}")
    click.echo(f"verifier key {keys.public}: the node must list it in its allowed_verifiers")
    if processes == 1:
        _run_one(node_url, data_dir, node_key)
        return
    # One process per core; each its own connection and CURVE session with the node.
    children = [multiprocessing.Process(target=_run_one, args=(node_url, data_dir, node_key), daemon=True)
                for _ in range(processes)]
    for child in children:
        child.start()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for child in children:
            child.join()
    except KeyboardInterrupt:
        for child in children:
            if child.is_alive() and child.pid is not None:
                child.terminate()
        for child in children:
            child.join(5)
    finally:
        signal.signal(signal.SIGTERM, previous)
