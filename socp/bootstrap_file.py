"""Reading the bootstrap file (SOCP §6.1): introducers with pinned keys, and what the
operator opted in to per peer. Node configuration: `socp up`, the router and the
gateway each read it (the router owns the links; the gateway needs the TLS and G101
entries)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from socp.protocol.crypto import normalise_public_key
from socp.protocol.errors import SocpError
from socp.protocol.key_forms import KeyForm, form_of

RECOMMENDED_INTRODUCERS = 3


@dataclass(frozen=True, slots=True)
class Introducer:
    """One entry of the bootstrap file (SOCP §6.1): where, and the pinned key."""

    host: str
    port: int
    pubkey: str
    # Operator consent (bootstrap `unsigned_link: true`): this peer's link frames come
    # unsigned (G56); accepted on the link we dial to it, and nowhere else.
    unsigned_link: bool = False
    key_form: KeyForm = KeyForm.DER_B64URL   # how the entry wrote the key: we present ours the same way
    tls: bool = False   # written as `url: wss://...`: the gateway dials it over TLS only (gateway/tls.py)
    # Operator opt-in (bootstrap `g45_server_alias: true`): on a G45 link to this address
    # we go by `server_<our id>` instead of our id (link_dialects.g45_alias).
    g45_alias: bool = False
    # Operator opt-in (bootstrap `g101_link: true`): links to and from this pinned peer
    # read and write G101's link form (protocol/g101_link.py), and nowhere else.
    g101_link: bool = False


class BootstrapError(Exception):
    """The bootstrap file cannot be used; the message says why."""


class _Loader(yaml.SafeLoader):
    """safe_load, except for repeated keys: PyYAML keeps the last silently. Files made
    by appending `socp server-info --yaml` outputs repeat `bootstrap_servers:`; those
    lists are joined (every introducer counts). Any other repeated key is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            value = self.construct_object(value_node, deep=True)   # deep: complete before joining
            if key in mapping:
                if key == "bootstrap_servers" and isinstance(mapping[key], list) and isinstance(value, list):
                    mapping[key] = mapping[key] + value
                    continue
                raise BootstrapError(f"bootstrap file repeats the key {key!r} (line {key_node.start_mark.line + 1})")
            mapping[key] = value
        return mapping


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)


def parse_bootstrap(text: str) -> list[Introducer]:
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise BootstrapError(f"bootstrap file is not YAML: {exc}") from exc
    entries = document.get("bootstrap_servers") if isinstance(document, dict) else document
    if not isinstance(entries, list) or not entries:
        raise BootstrapError("bootstrap file needs a non-empty list `bootstrap_servers`")
    introducers: list[Introducer] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BootstrapError(f"bootstrap entry {index} is not a mapping")
        host, port, pubkey = entry.get("host"), entry.get("port"), entry.get("pubkey")
        tls = False
        if "url" in entry:   # `url: wss://host:port` (or ws://) in place of host and port
            if "host" in entry or "port" in entry:
                raise BootstrapError(f"bootstrap entry {index}: give either `url` or `host` and `port`, not both")
            host, port, tls = _split_url(entry["url"], index)
        if not isinstance(host, str) or not host:
            raise BootstrapError(f"bootstrap entry {index}: `host` must be a string")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise BootstrapError(f"bootstrap entry {index}: `port` must be 1-65535")
        try:
            raw_key = pubkey if isinstance(pubkey, str) else ""
            key = normalise_public_key(raw_key)
        except SocpError as exc:
            raise BootstrapError(f"bootstrap entry {index} ({host}:{port}): BAD_KEY: {exc.detail}") from exc
        # Operator consent for a peer that does not sign its link frames (G56): only
        # this entry's link, only when we dial it (docs/interop.md "Server links").
        unsigned = entry.get("unsigned_link", False)
        if not isinstance(unsigned, bool):
            raise BootstrapError(f"bootstrap entry {index} ({host}:{port}): `unsigned_link` must be true or false")
        # Operator opt-in for G45, whose servers route users' messages only to server ids
        # of their own shape: we go by `server_<our id>` on that link (docs/interop.md).
        alias = entry.get("g45_server_alias", False)
        if not isinstance(alias, bool):
            raise BootstrapError(f"bootstrap entry {index} ({host}:{port}): `g45_server_alias` must be true or false")
        # Operator opt-in for G101, whose link frames have ISO-string `ts` and are signed
        # over the whole envelope: read and written so on this peer's links only.
        g101 = entry.get("g101_link", False)
        if not isinstance(g101, bool):
            raise BootstrapError(f"bootstrap entry {index} ({host}:{port}): `g101_link` must be true or false")
        introducer = Introducer(host=host, port=port, pubkey=key, unsigned_link=unsigned, key_form=form_of(raw_key),
                                tls=tls, g45_alias=alias, g101_link=g101)
        earlier = next((i for i in introducers if (i.host, i.port) == (host, port)), None)
        if earlier is not None and earlier.pubkey != key:
            raise BootstrapError(f"bootstrap entry {index} ({host}:{port}) pins another key than an earlier entry")
        if earlier is None:   # the same entry twice (a file appended to twice) counts once
            introducers.append(introducer)
    return introducers


def _split_url(url: object, index: int) -> tuple[str, int, bool]:
    """(host, port, tls) of a `url` entry; the port is required (no default for SOCP)."""
    problem = f"bootstrap entry {index}: `url` must be ws://host:port or wss://host:port"
    if not isinstance(url, str):
        raise BootstrapError(problem)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BootstrapError(f"{problem} (got {url!r})") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise BootstrapError(f"{problem} (got {url!r})")
    return parts.hostname, port, parts.scheme == "wss"


def load_bootstrap(path: str | Path) -> list[Introducer]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BootstrapError(f"cannot read bootstrap file {path}: {exc.strerror}") from exc
    return parse_bootstrap(text)
