"""The router actor: single writer of the presence tables and routing (SOCP §3, §8).

`run(config)` is its one entry point; the decisions live in `core` (pure), the
process plumbing in `process`.
"""

from __future__ import annotations

from socp.config import NodeConfig


def run(config: NodeConfig) -> int:
    from socp.identity import load_identity
    from socp.runtime import run_async_actor
    from socp.store.client import StoreClient

    identity = load_identity(config.data_dir)

    async def main() -> None:
        from .process import serve

        async with StoreClient(config.endpoints.store_requests) as store:
            await serve(config, identity, store)

    return run_async_actor("router", main)
