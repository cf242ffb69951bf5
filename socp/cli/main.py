"""`socp`: the command group. Each subcommand lives in its own module and is
imported only when it runs, so `socp --help` stays fast."""

from __future__ import annotations

import importlib
import importlib.util

import click

from socp import __version__

# name -> (module:attribute, one-line help). The one table of subcommands.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "up": ("socp.cli.up:up", "Start a node: every actor under supervisord."),
    "server-info": ("socp.cli.up:server_info", "Print a node's URL, id, key and bootstrap entry."),
    "actor": ("socp.cli.actor:actor", "Run one actor of a node (used by supervisord)."),
    "chat": ("socp.cli.chat:chat", "The interactive client (or --script for JSON lines)."),
    "bench": ("socp.cli.bench:bench", "Load-generate against any SOCP server."),
    "status": ("socp.cli.status:status", "Each actor's state, uptime, restarts and queues."),
    "verifier": ("socp.cli.verifier:verifier", "A verifier on another host, for a node's --verifier-listen."),
}


# Run by supervisord, not by people: callable, but not listed in `socp --help`.
INTERNAL = frozenset({"actor"})


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (target, _) in SUBCOMMANDS.items() if _importable(target))

    def listed_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in self.list_commands(ctx) if name not in INTERNAL]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(name)
        if entry is None:
            return None
        module_name, attribute = entry[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # not built yet
            raise
        command: click.Command = getattr(module, attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.listed_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _importable(target: str) -> bool:
    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="socp")
def cli() -> None:
    """socp: a Secure Overlay Chat Protocol v1.3 node and client."""


def main() -> None:
    cli()
