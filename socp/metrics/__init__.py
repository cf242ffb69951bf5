"""Prometheus metrics for the node (`socp up --metrics HOST:PORT`, docs/deploy.md)."""
