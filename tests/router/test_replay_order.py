"""A restarted router takes the gateway's replay and the verifiers' results in a safe
order (RouterDriver.inbound and end_replay; no sockets: they are never touched here).

ZeroMQ reconnects each actor's socket to the new router on its own timer, so the
verifiers' results often arrive before the gateway's LinkReplay for their link."""

from __future__ import annotations

import asyncio
from pathlib import Path

from socp.config import NodeConfig
from socp.ipc import messages as m
from socp.ipc.link_state import LinkState
from socp.router.core_io import FrameIn, LinkRestored
from socp.router.peer_links import PeerLink
from socp.router.process import RouterDriver
from socp.router.state import NodeSelf, RouterState

SERVER_LINK = 7
USER_LINK = 2
USER_HELLO = '{"type":"USER_HELLO","from":"bob","to":"*","ts":1,"payload":{},"sig":""}'


def driver() -> RouterDriver:
    state = RouterState(me=NodeSelf(server_id="me", pubkey="", host="127.0.0.1", port=1))
    config = NodeConfig(data_dir=Path("unused"), verifiers=2)
    return RouterDriver(state, config=config, sign_jobs=None, to_gateway=None, store_writes=asyncio.Queue(1))


def verified(conn: int, seq: int, ts: int = 1) -> m.Verified:
    frame = {"type": "SERVER_DELIVER", "from": "peer", "to": "me", "ts": ts, "payload": {}, "sig": ""}
    return m.Verified(conn, seq, frame, b"digest%d" % seq)


def server_replay(seq: int) -> m.LinkReplay:
    return m.LinkReplay(SERVER_LINK, seq, m.ROLE_SERVER, "", "PEER-KEY")


def shape(items) -> list[tuple[int, int, str]]:
    return [(conn, seq, type(event).__name__) for conn, seq, event in items]


def test_results_that_overtake_the_replay_are_taken_not_dropped() -> None:
    router = driver()
    assert router.inbound(verified(SERVER_LINK, 10)) == []
    assert router.inbound(verified(SERVER_LINK, 11)) == []
    assert shape(router.inbound(server_replay(10))) == [(SERVER_LINK, 9, "LinkRestored")]
    assert shape(router.end_replay()) == [(SERVER_LINK, 10, "FrameIn"), (SERVER_LINK, 11, "FrameIn")]
    # The gateway's own re-submission of the same frames comes later: duplicates.
    assert router.inbound(verified(SERVER_LINK, 10)) == []


def test_results_below_the_replayed_seq_were_applied_by_the_old_router() -> None:
    router = driver()
    router.inbound(verified(SERVER_LINK, 8))
    router.inbound(verified(SERVER_LINK, 10))
    router.inbound(server_replay(10))
    assert shape(router.end_replay()) == [(SERVER_LINK, 10, "FrameIn")]


def test_no_frame_is_taken_before_every_link_is_replayed() -> None:
    router = driver()
    # The server link is replayed first; its SERVER_DELIVER names a user whose own
    # connection is replayed next, so it must wait for that.
    router.inbound(server_replay(3))
    assert router.inbound(verified(SERVER_LINK, 3)) == []
    restored = router.inbound(m.LinkReplay(USER_LINK, 5, m.ROLE_USER, USER_HELLO, ""))
    assert shape(restored) == [(USER_LINK, 4, "LinkRestored")]
    assert isinstance(restored[0][2], LinkRestored) and restored[0][2].opening == USER_HELLO
    held = router.end_replay()
    assert shape(held) == [(SERVER_LINK, 3, "FrameIn")] and held[0][2].frame.type == "SERVER_DELIVER"


def test_after_the_replay_frames_are_taken_at_once_in_order() -> None:
    router = driver()
    router.inbound(server_replay(3))
    router.end_replay()
    assert router.inbound(verified(SERVER_LINK, 4)) == []            # waits for 3
    assert shape(router.inbound(verified(SERVER_LINK, 3))) == [(SERVER_LINK, 3, "FrameIn"),
                                                               (SERVER_LINK, 4, "FrameIn")]
    assert router.end_replay() == []


def test_a_link_the_router_knows_already_ignores_its_replay() -> None:
    router = driver()
    router.end_replay()
    router.state.links[USER_LINK] = PeerLink(conn=USER_LINK, state=LinkState.USER, peer_id="bob")
    router.inbound(verified(USER_LINK, 0))
    assert router.inbound(m.LinkReplay(USER_LINK, 1, m.ROLE_USER, USER_HELLO, "")) == []
    assert isinstance(router.inbound(verified(USER_LINK, 1))[0][2], FrameIn)   # its order goes on
