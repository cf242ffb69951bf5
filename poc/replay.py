"""Attack: replay captured frames so that they take effect twice (SOCP §8, §13).

A user's DM is sent again byte for byte; DMs with a timestamp 11 minutes old or 5
minutes ahead are sent; a server (joined through the node as introducer) sends a
SERVER_DELIVER twice and one with an old timestamp; a captured signed USER_HELLO
and a captured SERVER_HELLO_JOIN are replayed on new connections. Blocked when
the victim receives each message exactly once and every copy is refused. Floods of
copies and of stale DMs must cost the node a few signed ERRORs, not one each.

    python poc/replay.py --url ws://127.0.0.1:8765
"""

from __future__ import annotations

import argparse

from _common import Keys, Peer, Verdict, main, now_ms, show, user
from socp.protocol import frames
from socp.protocol.envelope import Envelope

MINUTE_MS = 60_000


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    alice = await user(args.url, keys, args.timeout)
    bob = await user(args.url, keys, args.timeout)

    verdict.tried("user frame sent twice, byte for byte")
    dm = alice.dm(bob.peer_id, bob.pubkey, b"pay carol 10")
    await alice.send(dm)
    first = await bob.receive("USER_DELIVER")
    verdict.note(f"first copy delivered: {show(bob.open_dm(first))}")
    await alice.send(dm)
    code, detail = await alice.error()
    again = not await bob.nothing_of("USER_DELIVER", 1.0)
    verdict.check(not again and code == "REPLAY", f"second copy: victim got {'it AGAIN' if again else 'nothing'}; "
                                                   f"sender told {code or 'nothing'} {show(detail)}")

    for label, shift in (("11 minutes old", -11 * MINUTE_MS), ("5 minutes in the future", 5 * MINUTE_MS)):
        verdict.tried(f"a correctly signed DM whose ts is {label}")
        await alice.send(alice.dm(bob.peer_id, bob.pubkey, b"old news", ts=now_ms() + shift))
        code, detail = await alice.error()
        got = not await bob.nothing_of("USER_DELIVER", 0.5)
        verdict.check(not got and code == "REPLAY", f"victim got {'it' if got else 'nothing'}; sender told "
                                                     f"{code or 'nothing'} {show(detail)}")

    await floods_buy_few_errors(args, alice, bob, dm, verdict)

    verdict.tried("a server frame (SERVER_DELIVER, signed by a joined server) sent twice")
    server = await Peer(args.url, keys.take(), timeout=args.timeout).open()
    join = await server.join_as_server_frame()
    inner = alice.dm(bob.peer_id, bob.pubkey, b"from afar")
    deliver = server.signed(frames.server_deliver(server.peer_id, "*", inner.ts, bob.peer_id,
                                                  inner.payload["ciphertext"], alice.peer_id,
                                                  alice.pubkey, inner.payload["content_sig"]))
    await server.send(deliver)
    await bob.receive("USER_DELIVER")
    await server.send(deliver)
    verdict.check(await bob.nothing_of("USER_DELIVER", 1.0), "victim received the first copy only")

    verdict.tried("a SERVER_DELIVER whose ts is 11 minutes old")
    old = alice.dm(bob.peer_id, bob.pubkey, b"stale", ts=now_ms() - 11 * MINUTE_MS)
    await server.send(server.signed(frames.server_deliver(server.peer_id, "*", old.ts, bob.peer_id,
                                                          old.payload["ciphertext"], alice.peer_id,
                                                          alice.pubkey, old.payload["content_sig"])))
    code, detail = await server.error()
    verdict.check(await bob.nothing_of("USER_DELIVER", 1.0), f"victim got nothing; server told {code} {show(detail)}")
    await server.close()

    verdict.tried("a captured SERVER_HELLO_JOIN replayed on a new connection")
    copy = await Peer(args.url, server.key, timeout=args.timeout).open()
    await copy.send(join)
    code, detail = await copy.error()
    verdict.check(code == "REPLAY", f"answer: {code or 'none'} {show(detail)}")
    await copy.close()

    verdict.tried("a captured signed USER_HELLO replayed after its user left")
    carol = await Peer(args.url, keys.take(), timeout=args.timeout).open()
    captured = await carol.hello()
    await carol.list_users()
    await carol.close()
    await bob.list_users()  # carol's departure is processed before the replay arrives
    thief = await Peer(args.url, carol.key, peer_id=carol.peer_id, timeout=args.timeout).open()
    await thief.send(captured)
    code, detail = await thief.error()
    verdict.check(code == "REPLAY", f"answer: {code or 'none'} {show(detail)}")
    await thief.close()
    carol_again = await Peer(args.url, carol.key, peer_id=carol.peer_id, timeout=args.timeout).open()
    await carol_again.hello()
    listed = await carol_again.list_users()
    verdict.note(f"carol's own fresh hello still works: listed={carol.peer_id in listed}")
    await carol_again.close()
    verdict.note("the duplicate cache is bounded in size and age (router/seen.py; tests/poc unit tests)")
    await alice.close()
    await bob.close()


async def floods_buy_few_errors(args: argparse.Namespace, alice: Peer, bob: Peer, delivered: Envelope,
                                verdict: Verdict) -> None:
    """Every ERROR costs the node an RSA signature: a flood of refused frames must not
    buy one each. Same refusal, same connection: at most one answer per interval."""
    # Each stale DM correctly signed for its own ts, as a captured frame would be (a
    # content_sig that does not verify is refused before the window is looked at).
    stale = [alice.dm(bob.peer_id, bob.pubkey, b"old news", ts=now_ms() - 11 * MINUTE_MS - n)
             for n in range(args.flood)]
    for label, copy in (("copies of the delivered DM", lambda n: delivered),
                        ("stale DMs (11 minutes old, each ts different)", lambda n: stale[n])):
        verdict.tried(f"{args.flood} {label}")
        for n in range(args.flood):
            await alice.send(copy(n))
        errors = 0
        while (await alice.error(timeout=1.5))[0]:
            errors += 1
        got = not await bob.nothing_of("USER_DELIVER", 0.2)
        verdict.check(errors <= 3 and not got, f"{errors} ERRORs answered (signed) for {args.flood} frames; "
                                               f"victim got {'some' if got else 'nothing'}")


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flood", type=int, default=200, help="frames per flood of copies / stale frames")


if __name__ == "__main__":
    raise SystemExit(main(run, "replay of user frames, server frames and hellos", options))
