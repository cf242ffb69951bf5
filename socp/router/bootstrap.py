"""Reading the bootstrap file (SOCP §6.1): introducers with pinned keys."""

from __future__ import annotations

from pathlib import Path

import yaml

from socp.protocol.crypto import normalise_public_key
from socp.protocol.errors import SocpError

from .state import Introducer

RECOMMENDED_INTRODUCERS = 3


class BootstrapError(Exception):
    """The bootstrap file cannot be used; the message says why."""


def parse_bootstrap(text: str) -> list[Introducer]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BootstrapError(f"bootstrap file is not YAML: {exc}") from exc
    entries = document.get("bootstrap_servers") if isinstance(document, dict) else document
    if not isinstance(entries, list) or not entries:
        raise BootstrapError("bootstrap file needs a non-empty list `bootstrap_servers`")
    introducers = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BootstrapError(f"bootstrap entry {index} is not a mapping")
        host, port, pubkey = entry.get("host"), entry.get("port"), entry.get("pubkey")
        if not isinstance(host, str) or not host:
            raise BootstrapError(f"bootstrap entry {index}: `host` must be a string")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise BootstrapError(f"bootstrap entry {index}: `port` must be 1-65535")
        try:
            key = normalise_public_key(pubkey) if isinstance(pubkey, str) else normalise_public_key("")
        except SocpError as exc:
            raise BootstrapError(f"bootstrap entry {index} ({host}:{port}): BAD_KEY: {exc.detail}") from exc
        introducers.append(Introducer(host=host, port=port, pubkey=key))
    return introducers


def load_bootstrap(path: str | Path) -> list[Introducer]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BootstrapError(f"cannot read bootstrap file {path}: {exc.strerror}") from exc
    return parse_bootstrap(text)
