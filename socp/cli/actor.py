"""`socp actor NAME`: run one actor of a node in the foreground (supervisord's job)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from socp.config import NodeConfig
from socp.metrics import prepare_environment
from socp.node import die_with_parent

# Actor name -> module with run(config).
ACTORS = {"gateway": "socp.gateway", "verifier": "socp.verifier", "router": "socp.router", "store": "socp.store",
          "metrics": "socp.metrics", "verifier-bridge": "socp.verifier.bridge"}


@click.command(hidden=True)
@click.argument("name", type=click.Choice(list(ACTORS)))
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), required=True)
def actor(name: str, data_dir: Path) -> None:
    """Run one actor of the node whose configuration is in DATA_DIR."""
    die_with_parent()
    config = NodeConfig.load(data_dir)
    prepare_environment(config)   # before any actor imports prometheus_client
    module = importlib.import_module(ACTORS[name])
    sys.exit(module.run(config) or 0)
