"""Two G17 servers, one client home (issue #14, note a7).

Every standalone G17 server names itself "auto", and hands out only the keys of users
who sent it REGISTER (our LOGIN_REGISTER in its spelling). The home recorded stored
logins by server id alone, so after registering at one G17 server it sent no REGISTER
to a second one, which then had no key for our user: every DM to it failed "no key
known". Two doubles answer with G17's recorded hello replies; each must get REGISTER.
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.server import serve

from socp.client.connection import ChatClient, ConnectionSettings, LoginStore, command_queue
from socp.client.events import LoginRegistered
from socp.client.home import ClientHome

from .test_slow_peer_server import FAST, g17_hello_double

PASSWORD = "a long password"


async def _session_at_a_g17_double(home: ClientHome, user_key, received: list[dict[str, Any]]) -> list:
    handler = g17_hello_double(home.load_identity().user_id, received)
    seen: list = []
    session = home.session(user_key, PASSWORD)
    store = LoginStore(PASSWORD, home.login_stored, home.remember_login, params=FAST)
    lines = command_queue()
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = ChatClient(session, url, seen.append, ConnectionSettings(connect_attempts=1, linger=2.0),
                            login_store=store)
        await lines.put(None)
        code = await asyncio.wait_for(client.run(lines), 30)
    session.close()
    assert code == 0
    return seen


async def test_each_of_two_g17_servers_called_auto_gets_our_register(keys, tmp_path) -> None:
    home = ClientHome(tmp_path / "alice")
    home.create("alice", PASSWORD, user_key=keys[1])
    first: list[dict[str, Any]] = []
    seen = await _session_at_a_g17_double(home, keys[1], first)
    assert "REGISTER" in [f["type"] for f in first] and any(isinstance(e, LoginRegistered) for e in seen)
    second: list[dict[str, Any]] = []
    seen = await _session_at_a_g17_double(home, keys[1], second)
    assert "REGISTER" in [f["type"] for f in second], [f["type"] for f in second]
    assert any(isinstance(e, LoginRegistered) for e in seen)
