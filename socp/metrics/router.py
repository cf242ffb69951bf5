"""The router's metrics, set on each tick (every TICK_SECONDS) from its tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import families

if TYPE_CHECKING:
    from socp.router.state import RouterState


def router_ticked(state: RouterState, sign_jobs_in_flight: int, store_writes_queued: int) -> None:
    from socp.router.state import LOCAL

    local = len(state.local_users)
    families.users_online.labels("local").set(local)
    families.users_online.labels("remote").set(len(state.user_locations) - state.user_locations.count_at(LOCAL))
    families.queue_depth.labels("router", "sign_jobs_in_flight").set(sign_jobs_in_flight)
    families.queue_depth.labels("router", "store_writes").set(store_writes_queued)
    families.held_messages.set(sum(len(queue) for queue in state.held.by_user.values()))
