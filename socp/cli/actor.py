"""`socp actor NAME`: run one actor of a node in the foreground (supervisord's job)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from socp.config import NodeConfig
from socp.metrics import prepare_environment
from socp.node import die_with_parent

ACTORS = ("gateway", "verifier", "router", "store", "metrics")


@click.command(hidden=True)
@click.argument("name", type=click.Choice(ACTORS))
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), required=True)
def actor(name: str, data_dir: Path) -> None:
    """Run one actor of the node whose configuration is in DATA_DIR."""
    die_with_parent()
    config = NodeConfig.load(data_dir)
    prepare_environment(config)   # before any actor imports prometheus_client
    module = importlib.import_module(f"socp.{name}")
    sys.exit(module.run(config) or 0)
