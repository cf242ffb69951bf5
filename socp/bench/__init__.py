"""`socp bench`: a load generator for any SOCP server (issue "socp bench").

One module per job:

- `targets`     which URLs we may load (loopback only) and the run's hard limits
- `keys`        RSA-4096 user keys, made in parallel and shared by several users
- `prepare`     every frame is encrypted and content-signed before the timed phase
- `capacity`    this machine's RSA-4096 PSS signatures per second, all cores
- `procstats`   CPU seconds and RSS of a local node's processes, from /proc
- `tracker`     deliveries by key: lost, duplicated, latency, errors by code
- `simulated_users`   a bench user: WebSocket, USER_HELLO, the receive loop
- `drive`       open-loop (fixed rate) and closed-loop (bounded window) senders
- `phase`       what every delivery scenario shares: connect, wait, measure, send, drain
- `dm`, `public`, `files`, `connect`, `active`, `presence`   the scenarios
- `schedule`    who sends which DM to whom, and when, in `active`
- `bottleneck`  what limits a run: each resource's use in the timed phase, busiest first
- `launcher`    start and stop local nodes in temporary directories
- `report`      the result record, its table and its JSON
"""
