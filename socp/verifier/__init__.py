"""The verifier actor: the node's pool of CPU workers for RSA.

Each process takes `VerifyJob`s from the gateway (parse, validate, check keys and
signatures: `checks`) and `SignJob`s from the router (sign a payload once for many
connections: `signer`), and answers with `Verified` / `Rejected` to the router and
`Deliver` to the gateway (`worker`). It holds no state between jobs, so a node runs
as many as it has cores.

Verifiers on other hosts: `bridge` (the node's door for them, CURVE and ZAP),
`remote_pool` (the remotes as the bridge sees them, pure), `remote` (`socp verifier`,
one such verifier), `curve` (their key pairs). `budget`: how many failed content
signatures a connection may cost a verifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from socp.config import NodeConfig


def run(config: NodeConfig) -> None:
    """Run one verifier process until SIGTERM/SIGINT (see `worker.run`)."""
    # Imported here so the pure modules (`checks`, `signer`) load without zmq.
    from .worker import run as run_worker

    run_worker(config)
