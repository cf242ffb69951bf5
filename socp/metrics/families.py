"""Every metric of the node, declared once (names follow Prometheus conventions:
`socp_` prefix, `_total` counters, `_seconds` durations, base units).

Gauges are per process and summed over the live ones (`livesum`): the metrics actor
forgets the files of processes that died (actor.py), so a restarted verifier's old
queue depth does not linger."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from socp.protocol.frame_types import FrameType

FRAME_TYPES = frozenset(t.value for t in FrameType)
OTHER = "other"   # a type outside SOCP's closed set: one label, not one per string a peer invents


def frame_type_label(frame_type: str) -> str:
    return frame_type if frame_type in FRAME_TYPES else OTHER


# Latency buckets from a loopback hop (sub-millisecond) to a slow federation path.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIGN_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25)
CHECK_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)

frames_received = Counter(
    "socp_frames_received_total",
    "Frames read from users and servers, checked by a verifier, by type and outcome "
    "(accepted, or the ERROR code they were refused with; type is empty when unreadable).",
    ["type", "outcome"])
frames_sent = Counter(
    "socp_frames_sent_total", "Frames written to users' and servers' sockets, by type.", ["type"])
gateway_events = Counter(
    "socp_gateway_events_total",
    "The gateway's /healthz counters (frames_in, rejected, dropped, slow_consumers, dial_failures, ...).",
    ["event"])
frame_checks = Histogram(
    "socp_frame_check_seconds", "Parsing, validating and verifying the signatures of one inbound frame.",
    buckets=CHECK_BUCKETS)
signatures = Counter("socp_signatures_total", "RSA-PSS signatures made for outbound frames (one per sign job).")
signature_time = Histogram(
    "socp_signature_seconds", "Time to make one sign job's signature and frame texts.", buckets=SIGN_BUCKETS)
delivery_latency = Histogram(
    "socp_delivery_latency_seconds",
    "From the ts the sender put on a direct message to the gateway writing its USER_DELIVER to the "
    "recipient's socket (includes any clock difference between the sender and this node).",
    buckets=LATENCY_BUCKETS)
queue_depth = Gauge(
    "socp_queue_depth", "Items waiting, per actor and queue.", ["actor", "queue"], multiprocess_mode="livesum")
connections = Gauge(
    "socp_connections", "Open WebSocket connections by role (user, server, unknown: no first frame yet).",
    ["role"], multiprocess_mode="livesum")
server_links = Gauge(
    "socp_server_links", "Links to other servers by state, as the router's link book has them.",
    ["state"], multiprocess_mode="livesum")
users_online = Gauge(
    "socp_users_online", "Users present: on this node (local) or on the servers linked to it (remote).",
    ["where"], multiprocess_mode="livesum")
held_messages = Gauge(
    "socp_held_messages", "DMs held for users who are away (with an account here), not yet delivered.",
    multiprocess_mode="livesum")
database_up = Gauge(
    "socp_database_up", "1 while the store reports the database available, else 0.", multiprocess_mode="livesum")
database_state = Gauge(
    "socp_database_state", "1 for the database state the store last reported (available, unavailable, "
    "opening, unknown).", ["state"], multiprocess_mode="livesum")
