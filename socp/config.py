"""A node's configuration: one frozen dataclass, saved as `node.json` in the data
directory by `socp up` and read by every actor at start."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from socp.ipc.endpoints import Endpoints, runtime_dir

CONFIG_FILE = "node.json"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8765
    db_url: str = ""                       # "" means sqlite:///<data_dir>/socp.db
    verifiers: int = field(default_factory=lambda: os.cpu_count() or 1)
    bootstrap: str = ""                    # path of a bootstrap YAML file, "" for none
    advertise_host: str = ""               # host other servers dial; "" means `host`
    advertise_port: int = 0                # port other servers dial; 0 means `port` (differs behind a proxy)
    advertise_tls: bool = False            # reached as wss:// through a TLS-terminating proxy
    # TLS (docs/deploy.md): with a certificate and key the one port serves wss:// only.
    tls_cert: str = ""                     # PEM certificate chain, "" for plain ws://
    tls_key: str = ""                      # its PEM private key
    ca_file: str = ""                      # extra CA certificates for dialled wss:// links
    metrics: str = ""                      # host:port of the Prometheus listener, "" for none
    trusted_proxies: str = ""              # comma-separated reverse proxy addresses: X-Forwarded-For is read
    verifier_listen: str = ""              # tcp://HOST:PORT for verifiers on other hosts; "" for none
    # Transport limits (gateway).
    max_frame_bytes: int = 1024 * 1024
    hello_timeout: float = 10.0            # seconds a connection may stay silent at first
    send_queue_frames: int = 4096          # per connection; a slower reader is dropped
    max_connections_per_address: int = 64  # open WebSockets from one remote address
    # Node-wide, whatever the addresses (SOCP §13 resource abuse; issue #15 item 6).
    max_connections: int = 20_000          # open WebSockets in all
    max_waiting_for_hello: int = 1024      # of them, accepted and not yet past their first frame
    # Largest first frame (a hello is ~1.5 KB, a login ~20 KB), and of frames sent
    # before the gateway read the first: a key share for a few hundred members fits.
    opening_frame_bytes: int = 256 * 1024
    frame_rate: float = 200.0              # frames per second per connection (token bucket)
    frame_burst: int = 500                 # frames a connection may send at once
    # Beyond its own rate a user connection may take from a spare shared by all of them:
    # a lone heavy sender can use an idle node, a crowd falls back to its own rates
    # (ratelimit.ElasticBucket). Above the node's signing capacity: the router's fair
    # share of signatures is the real limit (issue #18).
    spare_frame_rate: float = 2000.0       # frames per second, all user connections together (0: none)
    spare_frame_burst: int = 2000
    # A server link carries all of its server's users: its own, higher limit (at least
    # the router's per-server limit, router/abuse_rules.py, so that one is reachable).
    server_frame_rate: float = 2000.0      # frames per second per server link
    server_frame_burst: int = 10000        # frames a server link may send at once
    # Federation timing (SOCP §6.4); shortened by tests.
    heartbeat_interval: float = 15.0
    link_timeout: float = 45.0
    redial_min_backoff: float = 0.5        # first wait before dialling a lost server again
    redial_max_backoff: float = 30.0       # the wait doubles up to this
    redial_give_up: float = 3600.0         # seconds without reaching a server, then no more dials
    # At most one ACK per connection this often (router/user_acks.py): each costs a signature.
    ack_interval: float = 0.5
    # While the signing pool is backlogged ACKs wait (fewer, each covering more), but a
    # connection waits at most this long for one (router/user_acks.py).
    ack_max_delay: float = 30.0

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{Path(self.data_dir).resolve() / 'socp.db'}"

    @property
    def public_host(self) -> str:
        return self.advertise_host or self.host

    @property
    def trusted_proxy_set(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.trusted_proxies.split(",") if a.strip())

    @property
    def public_port(self) -> int:
        return self.advertise_port or self.port

    @property
    def public_tls(self) -> bool:
        return self.tls or self.advertise_tls

    @property
    def run_dir(self) -> Path:
        return runtime_dir(Path(self.data_dir))

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints.in_dir(self.run_dir)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}"

    def to_json(self) -> str:
        data = asdict(self)
        data["data_dir"] = str(Path(self.data_dir).resolve())
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["data_dir"] = Path(values["data_dir"])
        return cls(**values)

    def save(self) -> Path:
        """Owner-only (0600): db_url may hold the database password."""
        path = Path(self.data_dir) / CONFIG_FILE
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)   # a node.json written before this rule was 0644
        with os.fdopen(descriptor, "w") as file:
            file.write(self.to_json())
        return path

    @classmethod
    def load(cls, data_dir: Path) -> NodeConfig:
        return cls.from_dict(json.loads((Path(data_dir) / CONFIG_FILE).read_text()))
