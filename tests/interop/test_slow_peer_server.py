"""A peer server that answers the hello late (issue #14, seen live on G17).

On a loaded machine G17's server answered our hello about 9 s after it came: the
client's list probes (LIST_REQUEST, USER_LIST_REQ, WHO) had all timed out, so the
server's id was unknown when the client went to store its login there. G17 hands
out only the keys of users who sent its REGISTER (our client's LOGIN_REGISTER in G17's
spelling): without it nobody could DM the user ("no key known"). The double below
answers with G17's own hello replies, recorded on the wire
(tests/interop/recorded/g17-server.jsonl), after every probe has given up.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from socp.client.connection import ChatClient, LoginStore, command_queue
from socp.client.events import LoginRegistered, Ready
from socp.client.session import ClientSession
from socp.client.trust import PinStore
from socp.protocol import login
from socp.protocol.ids import new_id

RECORDED = Path(__file__).parent / "recorded" / "g17-server.jsonl"
FAST = login.ScryptParams(n=2**10, r=8, p=1)
PROBE = 0.2      # each list probe's wait (the first waits twice that): all three give up in 0.8 s
LATE = 1.5       # when the double answers the hello


def g17_hello_replies(user_id: str) -> list[dict[str, Any]]:
    """What G17 sent after our hello on recorded connection 7, addressed to `user_id`."""
    lines = [json.loads(line) for line in RECORDED.read_text(encoding="utf-8").splitlines() if line.strip()]
    replies = []
    for line in lines:
        frame = line["frame"]
        if line["conn"] != 7 or line["dir"] != "in":
            continue
        if frame["type"] in ("PUBLIC_CHANNEL_KEY_SHARE", "CLIENT_WELCOME", "LIST_RESPONSE") or (
                frame["type"] == "ACK" and frame["payload"].get("msg_ref") == "USER_HELLO_OK"):
            recorded_user = frame["to"]
            replies.append(json.loads(json.dumps(frame).replace(recorded_user, user_id)))
        if frame["type"] == "LIST_RESPONSE":
            break
    return replies


async def test_a_server_naming_itself_after_the_list_probes_still_gets_our_register(keys, tmp_path) -> None:
    user_id = new_id()
    replies = g17_hello_replies(user_id)
    assert [r["type"] for r in replies] == ["PUBLIC_CHANNEL_KEY_SHARE", "CLIENT_WELCOME", "ACK", "LIST_RESPONSE"]
    received: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                received.append(frame)
                if frame["type"] == "USER_HELLO":
                    await asyncio.sleep(LATE)
                    for reply in replies:
                        await ws.send(json.dumps(reply))
                elif frame["type"] == "REGISTER":   # G17 answers ACK REGISTER_OK (recorded)
                    await ws.send(json.dumps({"type": "ACK", "from": "auto", "to": user_id, "ts": frame["ts"],
                                              "payload": {"msg_ref": "REGISTER_OK"}, "sig": ""}))
        except ConnectionClosed:
            pass

    stored: dict[str, str] = {}
    store = LoginStore("a long password", lambda server: server in stored,
                       lambda server, url: stored.__setitem__(server, url), params=FAST)
    session = ClientSession(user_id, keys[1], pins=PinStore(tmp_path / "pins.json"), downloads_dir=tmp_path / "dl")
    seen: list = []
    lines = command_queue()
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = ChatClient(session, url, seen.append, connect_attempts=1, linger=LATE + 2.0,
                            list_probe_timeout=PROBE, login_store=store)
        await lines.put(None)
        code = await asyncio.wait_for(client.run(lines), 30)
    assert code == 0
    kinds = [frame["type"] for frame in received]
    assert kinds[:4] == ["USER_HELLO", "LIST_REQUEST", "USER_LIST_REQ", "WHO"]   # every probe gave up first
    assert any(isinstance(event, Ready) for event in seen)
    assert "REGISTER" in kinds, kinds                    # the key G17 hands out to others
    assert any(isinstance(event, LoginRegistered) for event in seen) and list(stored) == ["auto"]
