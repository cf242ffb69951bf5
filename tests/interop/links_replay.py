"""Replay frames recorded on live server links (tests/interop/recorded/<peer>-link.jsonl)
through our parser, verifiers and router core (issue #14, server links).

A recorded line is `{"direction": "peer->us" | "us->peer", "dialled_by": "peer" | "us",
"frame": {...}}` (plus `"opt_in"`, the bootstrap opt-in the link ran under, where
there was one), observed on the wire by a recording proxy between the peer's server
and our node. Signatures were checked live by the verifiers; the router replay feeds
the frames as verified (`link_signed`) and re-stamps their `ts` to the test clock, so
the router's freshness rules see them as new.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from socp.protocol.encoding import canonical_json
from socp.protocol.envelope import Envelope, parse_obj
from socp.router import core
from socp.router.core_io import Action, FrameIn

RECORDED = Path(__file__).parent / "recorded"


def recorded(peer: str, direction: str = "peer->us", dialled_by: str | None = None,
             frame_type: str | None = None) -> list[dict[str, Any]]:
    """The recorded frames of `peer` in one direction (as JSON objects, in wire order)."""
    frames = []
    for line in (RECORDED / f"{peer}-link.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["direction"] != direction or (dialled_by and record["dialled_by"] != dialled_by):
            continue
        if frame_type is None or record["frame"].get("type") == frame_type:
            frames.append(record["frame"])
    return frames


def first(peer: str, frame_type: str, **where: str) -> dict[str, Any]:
    return recorded(peer, frame_type=frame_type, **where)[0]


def stamped(frame: dict[str, Any], now_ms: int, **changes: Any) -> Envelope:
    """The recorded frame as an envelope at the test's time (and any field changed)."""
    raw = copy.deepcopy(frame)
    raw["ts"] = now_ms
    raw.update(changes)
    return parse_obj(raw)


def feed(state, conn: int, frame: Envelope) -> list[Action]:
    digest = hashlib.sha256(canonical_json(frame.payload)).digest()
    return core.handle(state, FrameIn(conn, frame, digest))
