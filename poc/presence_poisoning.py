"""Attack: redirect a victim's messages by forging presence (SOCP §6.2, §13).

USER_ADVERTISE / USER_REMOVE for a connected victim are sent over a user
connection, by a server that joined but does not host the victim, in the name of
another server, and signed with a key that is not the link's. Blocked when each
is refused or ignored and a DM to the victim still reaches the victim.

Then the victim lives on another server (a second joined server hosts it): the
attacker's server re-advertises it with the attacker's key (a key rebind: the
directory would then hand out the attacker's key) and with the victim's own key (a
route takeover: DMs would go to the attacker), and again with its own key once the
victim's server has gone. Blocked when the directory still serves the victim's key
and a DM to the victim goes to its own server only.

    python poc/presence_poisoning.py --url ws://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.error
import urllib.request

from _common import Keys, Peer, Verdict, http_url, main, now_ms, show, user
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

    await remote_victim(args, keys, verdict, server, friend, attacker_key)
    for peer in (server, victim, friend, attacker):
        await peer.close()


def directory_key(url: str, user_id: str) -> str:
    """The key `GET /directory/<user_id>` serves, or "" if none."""
    try:
        with urllib.request.urlopen(http_url(url, f"/directory/{user_id}"), timeout=5) as answer:
            return str(json.loads(answer.read()).get("pubkey") or "")
    except urllib.error.HTTPError:
        return ""


async def remote_victim(args: argparse.Namespace, keys: Keys, verdict: Verdict, attacker: Peer, friend: Peer,
                        attacker_key: str) -> None:
    """The victim is hosted by another (live) server; the attacker's server tries to
    rebind its key and to take its route over."""
    home = await Peer(args.url, keys.take(), timeout=args.timeout).open()
    await home.join_as_server()
    victim_id, victim_key = new_id(), keys.take()
    victim_pub = crypto.encode_public_key(victim_key)
    await home.send(home.signed(frames.user_advertise(home.peer_id, now_ms(), victim_id, {"pubkey": victim_pub})))
    for _ in range(50):   # the node learns it asynchronously
        if directory_key(args.url, victim_id) == crypto.normalise_public_key(victim_pub):
            break
        await asyncio.sleep(0.1)
    else:
        verdict.note("the node never learned the remote victim; the rest proves nothing")
        verdict.check(False, "remote victim not learned")
        return
    verdict.tried("a joined server re-advertises a user of another live server with the attacker's key")
    await attacker.send(attacker.signed(frames.user_advertise(attacker.peer_id, now_ms(), victim_id,
                                                              {"pubkey": attacker_key})))
    verdict.tried("a joined server re-advertises that user with the user's own key (route takeover)")
    await attacker.send(attacker.signed(frames.user_advertise(attacker.peer_id, now_ms() + 1, victim_id,
                                                              {"pubkey": victim_pub})))
    await friend.list_users()   # the node handled both advertisements before this answer
    kept = directory_key(args.url, victim_id) == crypto.normalise_public_key(victim_pub)
    verdict.check(kept, f"/directory/{victim_id} serves {'the victim' if kept else 'another'} key")
    await friend.send(friend.dm(victim_id, victim_pub, b"for the remote victim"))
    try:
        got = await home.receive("SERVER_DELIVER", where=lambda f: f.payload.get("user_id") == victim_id)
        reached = crypto.oaep_decrypt(victim_key, crypto.b64url_decode(got.payload["ciphertext"])) == \
            b"for the remote victim"
    except TimeoutError:
        reached = False
    verdict.check(reached, f"the DM went to the victim's own server: {reached}")
    leaked = not await attacker.nothing_of("SERVER_DELIVER", 0.5)
    verdict.check(not leaked, f"the attacker's server received {'a copy' if leaked else 'nothing'}")

    verdict.tried("the victim's server goes away; the attacker's server advertises the victim with its key")
    await home.close()
    await asyncio.sleep(0.5)
    await attacker.send(attacker.signed(frames.user_advertise(attacker.peer_id, now_ms() + 2, victim_id,
                                                              {"pubkey": attacker_key})))
    await friend.list_users()
    kept = directory_key(args.url, victim_id) == crypto.normalise_public_key(victim_pub)
    verdict.check(kept, f"/directory/{victim_id} still serves {'the victim' if kept else 'another'} key")


if __name__ == "__main__":
    raise SystemExit(main(run, "presence poisoning with forged USER_ADVERTISE / USER_REMOVE"))
