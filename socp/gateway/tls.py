"""TLS for the one WebSocket port and for the links we dial (docs/deploy.md "TLS").

Serving: with `tls_cert`/`tls_key` the port speaks wss:// only (users, servers, and
the plain HTTP answers become HTTPS).

Dialling: certificates are always verified, against the system store plus `ca_file`;
there is no option to skip that. Which scheme a peer speaks:

  - a bootstrap entry written as `url: wss://host:port` is dialled over wss:// only;
  - any other peer is dialled over ws:// first (peers without TLS keep working), and
    over wss:// when it answers ws:// with something that is not HTTP (a TLS-only
    port does that); once a peer has answered over wss:// it is dialled over wss://
    only, for the life of the gateway (no later downgrade to plain text).
"""

from __future__ import annotations

import logging
import ssl

from socp.config import NodeConfig
from socp.gateway import bootstrap_view

log = logging.getLogger("socp.gateway")

Address = tuple[str, int]


class TlsSetupError(Exception):
    """The certificate, key or CA file cannot be used; the message says which and why."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """The listening side's context; TlsSetupError names the file at fault."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise TlsSetupError(f"TLS: no such file: {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsSetupError(f"TLS: cannot use certificate {cert_file} with key {key_file}: "
                            f"{getattr(exc, 'reason', None) or exc}") from None
    return context


def client_context(ca_file: str = "") -> ssl.SSLContext:
    """Verify the peer's certificate and host name: the system store, plus `ca_file`
    (a private CA) when given."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except FileNotFoundError:
            raise TlsSetupError(f"TLS: no such CA file: {ca_file}") from None
        except (ssl.SSLError, OSError) as exc:
            raise TlsSetupError(f"TLS: {ca_file} holds no usable CA certificate: "
                                f"{getattr(exc, 'reason', None) or exc}") from None
    return context


def check_files(config: NodeConfig) -> None:
    """`socp up` calls this before any actor starts: one clear line for a bad file."""
    if bool(config.tls_cert) != bool(config.tls_key):
        raise TlsSetupError("TLS: give both --tls-cert and --tls-key")
    if config.tls_cert:
        server_context(config.tls_cert, config.tls_key)
    client_context(config.ca_file)


def uri(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class LinkSchemes:
    """Which scheme to dial each peer address with (the rules in the module docstring)."""

    def __init__(self, wss_only: set[Address] | None = None) -> None:
        self._wss_only: set[Address] = set(wss_only or ())

    def first(self, address: Address) -> str:
        return "wss" if address in self._wss_only else "ws"

    @staticmethod
    def after_not_http(scheme: str) -> str | None:
        """The peer answered `scheme` with something that is not HTTP: the scheme to
        try next at once, or None."""
        return "wss" if scheme == "ws" else None

    def opened(self, address: Address, scheme: str) -> None:
        if scheme == "wss" and address not in self._wss_only:
            log.info("peer %s:%d speaks TLS: dialled over wss:// from now on", *address)
            self._wss_only.add(address)


def wss_bootstrap_addresses(bootstrap_path: str) -> set[Address]:
    """The bootstrap entries that asked for wss:// (read again by the gateway)."""
    return {(entry.host, entry.port) for entry in bootstrap_view.entries(bootstrap_path) if entry.tls}
