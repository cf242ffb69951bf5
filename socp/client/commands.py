"""The slash commands of `socp chat`, declared once (STYLE §10).

`COMMANDS` drives /help, argument checks (`parse`) and completion (`complete`),
in both the interactive app and --script mode. The drivers map each name to a
handler and a test checks that every command has one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from socp.protocol.errors import SocpError
from socp.protocol.ids import PUBLIC_CHANNEL


class CommandError(SocpError):
    """A command the client refuses; shown to the user (with `client_code`), never sent."""

    def __init__(self, detail: str = "", client_code: str = "USAGE") -> None:
        super().__init__(detail)
        self.client_code = client_code   # USAGE, or e.g. FILE_NOT_FOUND for /file


class ArgKind(str, Enum):
    USER = "user"          # a user id, unique id prefix or display name
    TARGET = "target"      # a user, or "public"
    TEXT = "text"          # free text, the rest of the line
    PATH = "path"          # a local file, the rest of the line
    SENDING = "sending"    # a file being sent: its name or file id (prefix), the rest of the line
    TRANSFER = "transfer"  # a file being received or offered: its name or file id (prefix), the rest


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    kind: ArgKind

    @property
    def rest(self) -> bool:
        """Free text and paths take the rest of the line (spaces included)."""
        return self.kind in (ArgKind.TEXT, ArgKind.PATH, ArgKind.SENDING, ArgKind.TRANSFER)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    args: tuple[Arg, ...]
    help: str

    @property
    def usage(self) -> str:
        return " ".join([f"/{self.name}", *(f"<{arg.name}>" for arg in self.args)])


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: dict[str, str]


_USER = Arg("user", ArgKind.USER)
_TEXT = Arg("text", ArgKind.TEXT)

# The one table. SOCP §11 lists /list, /tell, /all, /file as mandatory. A user
# argument with spaces in it is quoted: /tell "Dave Smith" hi (Tab quotes it).
COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("list", (), "List the users online in the network."),
    CommandSpec("tell", (_USER, _TEXT), "Send an end-to-end encrypted direct message."),
    CommandSpec("msg", (_USER, _TEXT), "The same as /tell."),
    CommandSpec("query", (_USER,), "Open a window for direct messages with a user."),
    CommandSpec("close", (), "Close the current window (not the status or public one)."),
    CommandSpec("all", (_TEXT,), "Post to the public channel (plain text in its window does the same)."),
    CommandSpec("me", (_TEXT,), "Say what you do, in the current window: /me waves."),
    CommandSpec("file", (Arg("target", ArgKind.TARGET), Arg("path", ArgKind.PATH)),
                f"Send a file to a user or to '{PUBLIC_CHANNEL}' (in the background)."),
    CommandSpec("files", (), "Show every file being sent, received or waiting for /accept."),
    CommandSpec("accept", (Arg("file", ArgKind.TRANSFER),), "Save an offered file (its name or id)."),
    CommandSpec("reject", (Arg("file", ArgKind.TRANSFER),), "Refuse an offered or incoming file; it is deleted."),
    CommandSpec("cancel", (Arg("file", ArgKind.SENDING),),
                "Stop sending a file (its name or id); the receiver discards it."),
    CommandSpec("whois", (_USER,), "Show a user's id, display name, server and key fingerprint."),
    CommandSpec("trust", (_USER,), "Accept a user's changed key (after checking its fingerprint)."),
    CommandSpec("help", (), "Show the commands and keys."),
    CommandSpec("quit", (), "Leave."),
)
# Commands that act on the app's windows; --script answers them with a usage error.
WINDOW_COMMANDS = frozenset({"close"})
ME_PREFIX = "/me "   # a text sent by /me starts so; receivers show it as an action

COMMANDS_BY_NAME: dict[str, CommandSpec] = {spec.name: spec for spec in COMMANDS}


def help_rows() -> tuple[tuple[str, str], ...]:
    return tuple((spec.usage, spec.help) for spec in COMMANDS)


def parse(line: str) -> Command:
    """Check a command line against the table; raise CommandError with a usage hint."""
    line = line.strip()
    if not line.startswith("/"):
        return Command("all", {"text": line})  # plain text goes to the public channel
    head, _, rest = line[1:].partition(" ")
    spec = COMMANDS_BY_NAME.get(head.lower())
    if spec is None:
        raise CommandError(f"unknown command /{head}; try /help")
    values: dict[str, str] = {}
    for arg in spec.args:
        rest = rest.lstrip()
        if arg.rest:
            value = rest.strip()
            quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
            if arg.kind in (ArgKind.PATH, ArgKind.SENDING, ArgKind.TRANSFER) and quoted:
                value = value[1:-1]
            rest = ""
        else:
            value, rest = _word(rest, spec)
        if not value:
            raise CommandError(f"missing <{arg.name}>; usage: {spec.usage}")
        values[arg.name] = value
    if rest.strip():
        raise CommandError(f"too many arguments; usage: {spec.usage}")
    return Command(spec.name, values)


def _word(rest: str, spec: CommandSpec) -> tuple[str, str]:
    """The next argument and what follows it: up to a space, or a quoted name
    ("Dave Smith" or 'Dave Smith') up to its closing quote."""
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        if end < 0:
            raise CommandError(f"no closing {rest[0]} after the name; usage: {spec.usage}")
        return rest[1:end].strip(), rest[end + 1:]
    value, _, rest = rest.partition(" ")
    return value, rest


def quote_name(name: str) -> str:
    """A name as an argument: quoted when it holds a space or starts with a quote."""
    if " " not in name and name[:1] not in ("'", '"'):
        return name
    return f"'{name}'" if '"' in name else f'"{name}"'


def complete(line: str, users: Iterable[str]) -> str | None:
    """The completed line for `line`, or None: command names first, then users."""
    if not line.startswith("/"):
        return None
    head, space, rest = line[1:].partition(" ")
    if not space:
        names = [spec.name for spec in COMMANDS if spec.name.startswith(head.lower())]
        return f"/{names[0]} " if len(names) == 1 and names[0] != head else None
    spec = COMMANDS_BY_NAME.get(head.lower())
    if spec is None or not spec.args or spec.args[0].kind not in (ArgKind.USER, ArgKind.TARGET):
        return None
    typed = rest.lstrip("'\"")
    if rest[:1] not in ("'", '"') and " " in rest:
        return None  # completing only the first (user) argument
    if rest[:1] in ("'", '"') and rest.count(rest[0]) > 1:
        return None  # the quoted name is closed already
    candidates = list(users)
    if spec.args[0].kind is ArgKind.TARGET:
        candidates.append(PUBLIC_CHANNEL)
    matches = sorted({c for c in candidates if c.lower().startswith(typed.lower()) and c != rest})
    if len(matches) == 1 or (matches and typed):
        return f"/{spec.name} {quote_name(matches[0])} "
    return None
