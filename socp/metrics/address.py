"""`--metrics HOST:PORT`, read once by `socp up` and again by the metrics actor."""

from __future__ import annotations


class MetricsAddressError(ValueError):
    """Not a usable HOST:PORT; the message says why."""


def parse_metrics_address(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise MetricsAddressError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9464)")
    return host, int(port_text)
