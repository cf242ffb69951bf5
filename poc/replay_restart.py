"""Attack: replay a captured DM after the node restarts (issue #15, weakness 5).

The duplicate cache of a node used to live in memory only: a DM captured before a
restart and re-sent byte for byte after it (its ts still inside the 10-minute
window), on a new connection with a freshly signed hello, was delivered again.

This script runs the node itself, in `--data-dir` (empty or new) on the port of
`--url`, so that it can restart it: once cleanly (Ctrl-C, as an operator would) and
once by SIGKILL to every process of the node (a crash). Each time the captured DMs
are re-sent after the restart. Blocked when none is delivered again, each refusal
names the frame (REPLAY: seen before; RESEND: the node cannot tell after a crash and
asks for a re-stamped frame), and a new DM still goes through.

In a mesh (`--bootstrap FILE` naming a node of it, as `socp up --bootstrap` takes it,
and `--mesh-url` for a node of that mesh), the node joins the mesh at every start and
the recipient is a user of the `--mesh-url` node: the captured DM crossed a server
link, and after each restart the script waits for the mesh to carry the recipient's
presence back before replaying, so a refusal cannot be mistaken for a lost route.

    python poc/replay_restart.py --url ws://127.0.0.1:9501 --data-dir /tmp/replay-node \
        [--bootstrap bootstrap.yaml --mesh-url ws://127.0.0.1:8766]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from _common import Keys, Peer, UsageError, Verdict, main, now_ms, show, wait_listed
from socp.bench.launcher import LocalNode, start_local_node
from socp.protocol.acks import msg_ref, refs_named
from socp.protocol.envelope import Envelope

KEY_FLUSH_WAIT = 1.5     # seconds: the node writes the keys it saw once per tick (0.5 s)
RELINK_WAITS = 4         # --timeout periods for a restarted node to be linked into the mesh again


def extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", required=True,
                        help="where the node this script runs keeps its state (must be empty or new)")
    parser.add_argument("--bootstrap", default="",
                        help="a bootstrap file (socp up --bootstrap) naming a node of the mesh to join at every "
                             "start; needed with --mesh-url")


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    data_dir = Path(args.data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise UsageError(f"{data_dir}: not empty; give a new directory (the script runs its own node there)")
    if args.mesh_url and not args.bootstrap:
        raise UsageError("--mesh-url needs --bootstrap: the node this script runs must join that mesh")
    port = int(args.url.rsplit(":", 1)[1])
    keys = Keys(args.keys)
    # In a subdirectory: stopping the node kills every process that names its directory
    # on its command line, and this script's own command line names `data_dir`.
    running = [await start(data_dir / "node", keys.take(), port, args.bootstrap)]   # the node as now restarted
    try:
        await attack(args, keys, running, verdict)
    finally:
        await asyncio.to_thread(running[0].stop)   # the latest start: a clean stop of every actor


async def attack(args: argparse.Namespace, keys: Keys, running: list[LocalNode], verdict: Verdict) -> None:
    alice_key, bob_key = keys.take(), keys.take()
    bob_url = args.mesh_url[0] if args.mesh_url else args.url     # the recipient's node
    alice, bob = await connect(args.url, args, alice_key), await connect(bob_url, args, bob_key)
    if bob_url != args.url:
        verdict.note(f"the recipient is a user of {bob_url}: the DMs cross a server link")
    await await_route(alice, bob, args)
    first = alice.dm(bob.peer_id, bob.pubkey, b"pay carol 10")
    await alice.send(first)
    await bob.receive("USER_DELIVER")
    verdict.note(f"captured a delivered DM, msg_ref {msg_ref(first)}")
    await asyncio.sleep(KEY_FLUSH_WAIT)
    await alice.close()

    verdict.tried("re-send it byte for byte after a clean restart, on a new signed hello")
    await restart(running, crash=False, bootstrap=args.bootstrap)
    alice, bob = await reconnect(alice, bob, args, bob_url)
    await refused_not_delivered(alice, bob, first, ("REPLAY",), verdict)

    verdict.tried("capture a second DM, crash the node (SIGKILL), re-send both after it restarts")
    second = alice.dm(bob.peer_id, bob.pubkey, b"pay carol 20")
    await alice.send(second)
    await bob.receive("USER_DELIVER")
    # Never sent before the crash, but stamped before it: the node cannot know that.
    unsent = alice.dm(bob.peer_id, bob.pubkey, b"pay carol 30", ts=now_ms())
    await restart(running, crash=True, bootstrap=args.bootstrap)
    alice, bob = await reconnect(alice, bob, args, bob_url)
    await refused_not_delivered(alice, bob, first, ("REPLAY",), verdict)
    await refused_not_delivered(alice, bob, second, ("REPLAY", "RESEND"), verdict)
    verdict.tried("a frame stamped before the crash and never seen: the node must not guess")
    await refused_not_delivered(alice, bob, unsent, ("RESEND",), verdict)

    verdict.tried("control: a new DM after the restarts is delivered")
    fresh = alice.dm(bob.peer_id, bob.pubkey, b"hello again")
    await alice.send(fresh)
    got = await bob.receive("USER_DELIVER")
    verdict.check(got.payload["ciphertext"] == fresh.payload["ciphertext"], "the new DM arrived")


async def reconnect(alice: Peer, bob: Peer, args: argparse.Namespace, bob_url: str) -> tuple[Peer, Peer]:
    """Sender and recipient back after a restart: the sender at the restarted node; the
    recipient too if it was there (a recipient at another node of the mesh stays)."""
    await alice.close()
    alice = await connect(args.url, args, alice.key, alice.peer_id)
    if bob_url == args.url:
        await bob.close()
        bob = await connect(bob_url, args, bob.key, bob.peer_id)
    await await_route(alice, bob, args)
    return alice, bob


async def await_route(alice: Peer, bob: Peer, args: argparse.Namespace) -> None:
    """Until alice's node lists bob (in a mesh: linked again, and bob's presence known)."""
    if not await wait_listed(alice, bob.peer_id, args.timeout * RELINK_WAITS):
        raise TimeoutError(f"{args.url} does not list the recipient: the node did not rejoin the mesh")


async def connect(url: str, args: argparse.Namespace, key, user_id: str = "") -> Peer:
    peer = Peer(url, key, timeout=args.timeout)
    if user_id:
        peer.peer_id = user_id
    await peer.open()
    await peer.hello()              # a fresh signature: a used one would be a replay itself
    await peer.list_users()
    return peer


async def start(data_dir: Path, key, port: int, bootstrap: str) -> LocalNode:
    try:
        return await asyncio.to_thread(start_local_node, data_dir, verifiers=1, key=key, port=port,
                                       bootstrap=Path(bootstrap) if bootstrap else None)
    except RuntimeError as exc:
        raise UsageError(str(exc)) from exc


async def restart(running: list[LocalNode], crash: bool, bootstrap: str) -> None:
    """Stop (or crash) the node and start it again; running[0] is the new start."""
    node = running[0]
    if crash:
        os.killpg(node.process.pid, signal.SIGKILL)   # `socp up`, supervisord; stop() kills the actors left
    await asyncio.to_thread(node.stop)
    running[0] = await start(node.data_dir, node.key, node.port, bootstrap)


async def refused_not_delivered(sender: Peer, recipient: Peer, frame: Envelope, codes: tuple[str, ...],
                                verdict: Verdict) -> None:
    await sender.send(frame)
    ref = msg_ref(frame)
    try:
        error = await sender.receive("ERROR", where=lambda f: ref in refs_named(f.payload))
        code, detail = error.payload.get("code", ""), error.payload.get("detail", "")
    except TimeoutError:
        code, detail = "", ""
    delivered = not await recipient.nothing_of("USER_DELIVER", 1.0)
    verdict.check(not delivered and code in codes,
                  f"victim got {'it AGAIN' if delivered else 'nothing'}; sender told {code or 'nothing'} "
                  f"{show(detail)}")


if __name__ == "__main__":
    raise SystemExit(main(run, "replay after a restart: captured DMs re-sent once the node is back", extra))
