"""The metrics' pure parts: frame types bounded to SOCP's set, a USER_DELIVER's age,
the --metrics address, and a dashboard that only names metrics the node exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from socp.metrics import families
from socp.metrics.address import MetricsAddressError, parse_metrics_address
from socp.metrics.gateway import GatewayMetrics
from socp.protocol.envelope import Envelope

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-socp.json"


def frame(frame_type: str, ts: int) -> str:
    return Envelope(type=frame_type, from_="a", to="b", ts=ts, payload={"x": "y" * 2000}, sig="s").to_wire()


def test_written_frames_are_counted_by_type_and_deliveries_by_age():
    metrics = GatewayMetrics(clock_ms=lambda: 10_250)
    metrics.frames_written([frame("USER_DELIVER", 10_000), frame("ACK", 1), frame("MADE_UP", 1),
                            # a peer's frame with its type after a long payload: not searched whole
                            '{"payload":{"x":"' + "y" * 1000 + '"},"type":"USER_DELIVER"}'])
    assert metrics._written == {"USER_DELIVER": 1, "ACK": 1, "other": 2}
    assert metrics._latencies == [0.25]


def test_a_delivery_stamped_in_the_future_counts_as_zero_not_negative():
    metrics = GatewayMetrics(clock_ms=lambda: 1_000)
    metrics.frames_written([frame("USER_DELIVER", 5_000)])
    assert metrics._latencies == [0.0]


def test_peers_cannot_invent_label_values():
    assert families.frame_type_label("MSG_DIRECT") == "MSG_DIRECT"
    assert families.frame_type_label("X" * 30) == families.OTHER


@pytest.mark.parametrize("text", ["9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":9464", "host:port"])
def test_bad_metrics_addresses_are_refused(text):
    with pytest.raises(MetricsAddressError, match="HOST:PORT"):
        parse_metrics_address(text)


def test_good_metrics_addresses():
    assert parse_metrics_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_metrics_address("[::1]:9464") == ("::1", 9464)


def test_the_dashboard_names_only_exported_metrics():
    exported = set()
    for value in vars(families).values():
        name = getattr(value, "_name", None)
        kind = getattr(value, "_type", None)
        if name and kind:
            exported |= {name + suffix for suffix in ("", "_total", "_bucket", "_sum", "_count")}
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\bsocp_[a-z_]+", target["expr"])}
    assert used and used <= exported, used - exported
