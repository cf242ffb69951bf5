"""Attack: act in someone else's name (SOCP §5, §7.1, §13).

A user sends frames with another user's `from`; someone connects as a registered
user who is away, with an unsigned hello carrying the owner's public key (which is
public), or with a different key; a connection claims the id of a pinned server
with another key, or the node's own id; a linked server signs with a key that is
not pinned for it. Blocked when each is refused and nothing reaches anyone.

    python poc/impersonation.py --url ws://127.0.0.1:8765
"""

from __future__ import annotations

import argparse

from _common import Keys, Peer, Verdict, main, now_ms, show, user
from socp.protocol import frames, signing


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    owner = await user(args.url, keys, args.timeout)
    friend = await user(args.url, keys, args.timeout)
    mallory = await user(args.url, keys, args.timeout)

    verdict.tried("a DM whose `from` is another user, on mallory's own connection (content_sig by mallory's key, "
                  "which it names as sender_pub)")
    forged = mallory.dm(friend.peer_id, friend.pubkey, b"it's me, the owner")
    ts, ciphertext = now_ms(), forged.payload["ciphertext"]
    forged = frames.msg_direct(owner.peer_id, friend.peer_id, ts, ciphertext, mallory.pubkey,
                               signing.sign_dm(mallory.key, ciphertext, owner.peer_id, friend.peer_id, ts))
    await mallory.send(forged)
    code, detail = await mallory.error()
    got = not await friend.nothing_of("USER_DELIVER", 0.5)
    verdict.check(code == "FORBIDDEN" and not got, f"answer {code or 'none'} {show(detail)}; friend got "
                                                   f"{'it' if got else 'nothing'}")

    verdict.tried("the same DM naming the owner's key as sender_pub (its content_sig cannot verify)")
    forged = frames.msg_direct(owner.peer_id, friend.peer_id, ts + 1, ciphertext, owner.pubkey,
                               signing.sign_dm(mallory.key, ciphertext, owner.peer_id, friend.peer_id, ts + 1))
    await mallory.send(forged)
    code, detail = await mallory.error()
    got = not await friend.nothing_of("USER_DELIVER", 0.5)
    verdict.check(code in ("INVALID_SIG", "FORBIDDEN") and not got,
                  f"answer {code or 'none'} {show(detail)}; friend got {'it' if got else 'nothing'}")

    await owner.close()
    await friend.list_users()   # the owner's departure is processed
    verdict.tried("an UNSIGNED hello for the registered (now away) owner, with the owner's public key")
    thief = await Peer(args.url, mallory.key, peer_id=owner.peer_id, timeout=args.timeout).open()
    await thief.hello(signed=False, pubkey=owner.pubkey)
    code, detail = await thief.error()
    verdict.check(code in ("INVALID_SIG", "NAME_IN_USE"), f"answer {code or 'none'} {show(detail)}")
    await thief.close()

    verdict.tried("a signed hello for the owner's id with mallory's own key")
    thief = await Peer(args.url, mallory.key, peer_id=owner.peer_id, timeout=args.timeout).open()
    await thief.hello()
    code, detail = await thief.error()
    verdict.check(code == "NAME_IN_USE", f"answer {code or 'none'} {show(detail)}")
    await thief.close()
    listed = await friend.list_users()
    verdict.check(
        owner.peer_id not in listed, f"the owner's id is {'ONLINE' if owner.peer_id in listed else 'not online'}"
    )

    verdict.tried("SERVER_HELLO_LINK claiming the id of a server pinned here, signed with another key")
    server = await Peer(args.url, keys.take(), timeout=args.timeout).open()
    await server.join_as_server()
    clone = await Peer(args.url, mallory.key, peer_id=server.peer_id, timeout=args.timeout).open()
    await clone.send(
        clone.signed(frames.server_hello_link(server.peer_id, "*", now_ms(), "127.0.0.1", 9, clone.pubkey))
    )
    code, detail = await clone.error()
    verdict.check(code in ("INVALID_SIG", "FORBIDDEN"), f"answer {code or 'none'} {show(detail)}")
    await clone.close()

    verdict.tried("a server frame on a linked server's connection signed with a key not pinned for it")
    await server.send(
        server.signed(frames.user_advertise(server.peer_id, now_ms(), mallory.peer_id, {}), key=mallory.key)
    )
    code, detail = await server.error()
    verdict.check(code == "INVALID_SIG", f"answer {code or 'none'} {show(detail)}")
    await server.close()
    for peer in (friend, mallory):
        await peer.close()


if __name__ == "__main__":
    raise SystemExit(main(run, "impersonation of users and servers"))
