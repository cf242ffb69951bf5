"""Plain HTTP GETs on a node's port (/healthz, /directory/<id>), for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def get_json(url: str, timeout: float = 10.0) -> HttpReply:
    """GET `url`; error statuses are answers too (their JSON body is read)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return HttpReply(reply.status, dict(reply.headers), json.loads(reply.read()))
    except urllib.error.HTTPError as error:
        with error:
            return HttpReply(error.code, dict(error.headers), json.loads(error.read()))


async def aget_json(url: str, timeout: float = 10.0) -> HttpReply:
    return await asyncio.to_thread(get_json, url, timeout)
