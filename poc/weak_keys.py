"""Attack: get a weak public key accepted as if it were RSA-4096 (SOCP §2, §13).

Tries RSA-1024, RSA-4096 with e = 3, a malformed key and an elliptic-curve key in
a USER_HELLO, in a server's SERVER_HELLO_JOIN, in a USER_ADVERTISE from a server
that joined, and in a bootstrap file entry, both parsed and given to `socp up
--bootstrap`. Blocked when every one is answered BAD_KEY (or refused) and no such
user or server appears in the node's tables.

    python poc/weak_keys.py --url ws://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from _common import Keys, Peer, Verdict, main, now_ms, show, user
from socp.bootstrap_file import BootstrapError, parse_bootstrap
from socp.protocol import frames
from socp.protocol.encoding import b64url_encode
from socp.protocol.ids import new_id


def _spki(key: object) -> str:
    return b64url_encode(key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined] - any key object with public_bytes
                                          serialization.PublicFormat.SubjectPublicKeyInfo))


def _rsa_public(bits: int, exponent: int) -> object:
    """A well-formed RSA public key of `bits` bits: the server sees only (n, e), so a
    random odd modulus of the right size tests exactly what it checks, instantly."""
    modulus = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


REPO_ROOT = Path(__file__).resolve().parent.parent


def _bootstrap_file(pubkey: str) -> str:
    return f'bootstrap_servers:\n  - host: "127.0.0.1"\n    port: 9\n    pubkey: "{pubkey}"\n'


def socp_up_with_bootstrap(text: str) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Run `socp up --bootstrap FILE` in a fresh temp dir; return its result and whether
    it created the data dir. Its port is held here, so even a `socp up` that wrongly
    took the file would refuse to start rather than run on (bounded either way)."""
    with tempfile.TemporaryDirectory(prefix="socp-poc-") as scratch, socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        bootstrap = Path(scratch) / "bootstrap.yaml"
        bootstrap.write_text(text)
        data_dir = Path(scratch) / "node"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                         os.environ.get("PYTHONPATH")]))}
        result = subprocess.run([sys.executable, "-m", "socp", "up", "--data-dir", str(data_dir),
                                 "--port", str(held.getsockname()[1]), "--verifiers", "1",
                                 "--bootstrap", str(bootstrap)],
                                capture_output=True, text=True, timeout=60, env=env)
        return result, data_dir.exists()


def weak_keys() -> list[tuple[str, str]]:
    return [
        ("RSA-1024", _spki(_rsa_public(1024, 65537))),
        ("RSA-4096 with e=3", _spki(_rsa_public(4096, 3))),
        ("malformed key", b64url_encode(b"\x30\x82not-a-key" * 8)),
        ("EC P-256 key", _spki(ec.generate_private_key(ec.SECP256R1()).public_key())),
    ]


async def run(args: argparse.Namespace, verdict: Verdict) -> None:
    keys = Keys(args.keys)
    weak = weak_keys()
    witness = await user(args.url, keys, args.timeout)
    planted: list[str] = []

    for label, pubkey in weak:
        verdict.tried(f"USER_HELLO with a {label}")
        peer = await Peer(args.url, keys.take(), timeout=args.timeout).open()
        await peer.hello(signed=False, pubkey=pubkey)
        code, detail = await peer.error()
        planted.append(peer.peer_id)
        verdict.check(code == "BAD_KEY", f"answer: {code or 'none'} {show(detail)}")
        await peer.close()

    for label, pubkey in weak[:2]:
        verdict.tried(f"SERVER_HELLO_JOIN (a new server) with a {label}")
        peer = await Peer(args.url, keys.take(), timeout=args.timeout).open()
        hello = frames.server_hello_join(peer.peer_id, "127.0.0.1:1", now_ms(), "127.0.0.1", 9, pubkey)
        await peer.send(hello)
        code, detail = await peer.error()
        verdict.check(code in ("BAD_KEY", "INVALID_SIG"), f"answer: {code or 'none'} {show(detail)}")
        await peer.close()

    verdict.tried("USER_ADVERTISE from a joined server, advertising a user with a weak key")
    server = await Peer(args.url, keys.take(), timeout=args.timeout).open()
    await server.join_as_server()
    for label, pubkey in weak[:2]:
        victim = new_id()
        planted.append(victim)
        advert = frames.user_advertise(server.peer_id, now_ms(), victim, {"pubkey": pubkey})
        await server.send(server.signed(advert))
        code, detail = await server.error()
        verdict.check(code == "BAD_KEY", f"{label}: answer {code or 'none'} {show(detail)}")
    await server.close()

    verdict.tried("a bootstrap file whose introducer has a weak pinned key")
    for label, pubkey in weak[:2]:
        try:
            parse_bootstrap(_bootstrap_file(pubkey))
        except BootstrapError as exc:
            verdict.check("BAD_KEY" in str(exc), f"{label}: refused: {show(exc)}")
        else:
            verdict.check(False, f"{label}: the bootstrap entry was accepted")

    verdict.tried("`socp up --bootstrap` with a file whose introducer has a weak pinned key")
    for label, pubkey in weak:
        result, made_data_dir = await asyncio.to_thread(socp_up_with_bootstrap, _bootstrap_file(pubkey))
        said = (result.stderr.strip().splitlines() or ["(nothing)"])[-1]
        verdict.check(result.returncode == 1 and "BAD_KEY" in result.stderr and "Traceback" not in result.stderr
                      and not made_data_dir,
                      f"{label}: exit {result.returncode}, data dir {'created' if made_data_dir else 'not created'}: "
                      f"{show(said)}")

    verdict.tried("nothing was stored: /list of a legitimate user names none of the attempted ids")
    listed = set(await witness.list_users())
    leaked = [i for i in planted if i in listed]
    verdict.check(not leaked, f"{len(listed)} users listed, {len(leaked)} of {len(planted)} weak-key ids among them")
    await witness.close()


if __name__ == "__main__":
    raise SystemExit(main(run, "weak keys: RSA-1024, e=3, malformed and non-RSA keys"))
