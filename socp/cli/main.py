"""`socp`: the command group. Each subcommand lives in its own module."""

from __future__ import annotations

import click

from socp import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "SOCP"})
@click.version_option(__version__, prog_name="socp")
def cli() -> None:
    """socp: a Secure Overlay Chat Protocol v1.3 node and client."""


def main() -> None:
    cli()
