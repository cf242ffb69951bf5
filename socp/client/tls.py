"""Trust for wss:// servers: the system store, plus `--ca FILE` (a private CA) once
`socp chat` has called `trust_ca`. Certificates are always verified; there is no
option to skip that."""

from __future__ import annotations

import ssl

_extra_ca = ""


class CaFileError(Exception):
    """The --ca file cannot be used; the message says why."""


def trust_ca(path: str) -> None:
    """Also trust the CA certificates in `path` for every later wss:// connection."""
    global _extra_ca
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except FileNotFoundError:
        raise CaFileError(f"no such CA file: {path}") from None
    except (ssl.SSLError, OSError) as exc:
        raise CaFileError(f"{path} holds no usable CA certificate: {getattr(exc, 'reason', None) or exc}") from None
    _extra_ca = path


def context_for(url: str) -> ssl.SSLContext | None:
    """The SSL context to connect to `url` with (None for ws://)."""
    if not url.startswith("wss://"):
        return None
    context = ssl.create_default_context()
    if _extra_ca:
        context.load_verify_locations(cafile=_extra_ca)
    return context


def certificate_refused(exc: ssl.SSLCertVerificationError) -> str:
    return (f"the server's TLS certificate was refused ({exc.verify_message or exc.reason}); "
            "if it comes from a private CA, give that CA with --ca FILE")
