"""The gateway actor: owns every WebSocket, decides nothing about routing.

It moves frames between sockets and ZeroMQ, keeps each connection's order and
enforces transport limits (SOCP §4). Modules, each with one job:

  app             run(config): start, signals, ordered shutdown
  bus             the three ZeroMQ sockets (inbox, verify_jobs, router)
  server          the WebSocket listener
  http            plain HTTP on the same port (process_request): /healthz, /directory/<id>
  lookups         GET /directory/<id>: a look-up the router answers and a verifier signs
  dialer          outbound links the router asks for (DialLink)
  socket_session  one open WebSocket: reader, writer, close, LinkClosed exactly once
  inbox           Deliver / CloseLink / DialLink from the router and verifiers; look-up
                  answers and the store's status
  socket_links    the gateway's half of each link: its sequence counters, reorder
                  buffer, kept frames and outbox (the router keeps the other half)
  roles           the role of a connection, from its first frame
  health          counters, the database's health, and the /healthz body
  admission       node-wide caps on connections and on those yet to say hello
  check_throttle  connections whose signature checks keep failing, throttled (pure)
  bootstrap_view  what the gateway reads of the bootstrap file (wss:// entries, G101 opt-ins)
  memory          hand freed heap back to the OS after a crowd of connections left
  recovery        frames kept until the router applied them, replayed to a new router;
                  outbound progress and server links' credit (docs/recovery.md)
  tls             wss:// on the one port, and TLS for the links we dial
  context         what the parts share

Constants the actors share (conn id ranges, close codes) live with the messages in
socp/ipc/messages.py.
"""

from __future__ import annotations

from socp.gateway.app import run

__all__ = ["run"]
