"""Issue #19 item 1: a node behind TLS. Users and a second node reach it over wss://
(certificates from a private CA made in the test, trusted with --ca); a node or a
client without that CA is refused in words, never with a traceback."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import urllib.request

import pytest

from socp.client.home import ClientHome
from support.certificates import make_server_certificate
from support.nodes import start_node
from support.wsclient import RawUser

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse"

FAST_LINKS = ("--heartbeat-interval", "0.5", "--link-timeout", "2")


@pytest.fixture(scope="module")
def tls_mesh(keys, tmp_path_factory):
    """A serves wss:// only; B joins it by `url: wss://` and trusts the CA; C and D name
    it host/port (so try ws://, then wss://): C does not trust the CA, D does."""
    base = tmp_path_factory.mktemp("tls")
    certs = make_server_certificate(base / "certs")
    started = []
    try:
        a = start_node(base / "a", keys[0], verifiers=1,
                       extra_args=(*FAST_LINKS, "--tls-cert", str(certs.cert_file), "--tls-key", str(certs.key_file)))
        started.append(a)
        by_url = base / "wss.yaml"
        by_url.write_text(f'bootstrap_servers:\n  - url: "wss://127.0.0.1:{a.port}"\n    pubkey: "{a.pubkey}"\n')
        b = start_node(base / "b", keys[5], verifiers=1,
                       extra_args=(*FAST_LINKS, "--bootstrap", str(by_url), "--ca", str(certs.ca_file)))
        started.append(b)
        plain_entry = base / "plain.yaml"
        plain_entry.write_text(a.bootstrap_yaml())
        c = start_node(base / "c", keys[6], verifiers=1, extra_args=(*FAST_LINKS, "--bootstrap", str(plain_entry)))
        started.append(c)
        d = start_node(base / "d", keys[7], verifiers=1,
                       extra_args=(*FAST_LINKS, "--bootstrap", str(plain_entry), "--ca", str(certs.ca_file)))
        started.append(d)
        yield certs, a, b, c, d
    finally:
        for node in reversed(started):
            node.stop()


async def test_a_plain_entry_for_a_tls_node_is_dialled_again_over_wss(tls_mesh):
    """D names A by host and port (no scheme): its ws:// dial meets TLS, so it dials
    wss:// at once, verifies A's certificate with --ca, and joins."""
    _, a, _, _, d = tls_mesh

    async def joined() -> bool:
        rows = await links_of(f"http://127.0.0.1:{d.port}")
        return any(row["state"] == "joined" and row["peer_id"] == a.server_id for row in rows)

    await wait_for(joined)
    assert "speaks TLS: dialled over wss:// from now on" in d.log(5000)


def trusting(ca_file) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def healthz(url: str, context: ssl.SSLContext | None = None) -> dict:
    with urllib.request.urlopen(f"{url}/healthz", timeout=10, context=context) as reply:
        return json.loads(reply.read())


async def links_of(url: str, context: ssl.SSLContext | None = None) -> list[dict]:
    return (await asyncio.to_thread(healthz, url, context))["server_links"]


async def wait_for(predicate, timeout: float = 20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)


async def test_users_and_healthz_are_served_over_tls_only(tls_mesh, keys):
    certs, a, _, _, _ = tls_mesh
    user = await RawUser(f"wss://127.0.0.1:{a.port}", keys[1], ssl_context=trusting(certs.ca_file)).connect()
    try:
        assert user.user_id in (await user.list_users()).payload["users"]
    finally:
        await user.close()
    assert (await asyncio.to_thread(healthz, f"https://localhost:{a.port}", trusting(certs.ca_file)))["ok"]
    with pytest.raises(Exception):   # noqa: B017 - any failure: no plain text on a TLS port
        await RawUser(f"ws://127.0.0.1:{a.port}", keys[1]).connect()


async def test_a_second_node_links_over_wss_and_carries_a_dm(tls_mesh, keys):
    certs, a, b, _, _ = tls_mesh
    context = trusting(certs.ca_file)

    async def joined() -> bool:
        rows = await links_of(f"https://127.0.0.1:{a.port}", context)
        return any(row["state"] == "joined" and row["peer_id"] == b.server_id for row in rows)

    await wait_for(joined)
    on_a = await RawUser(f"wss://127.0.0.1:{a.port}", keys[2], ssl_context=context).connect(display_name="on-a")
    on_b = await RawUser(b.url, keys[3]).connect(display_name="on-b")
    try:
        async def sees_a() -> bool:
            return on_a.user_id in (await on_b.list_users()).payload["users"]

        await wait_for(sees_a)
        await on_b.send(on_b.dm_to(on_a.user_id, on_a.pubkey, b"over wss"))
        deliver = await on_a.receive("USER_DELIVER", where=lambda f: f.payload["sender"] == on_b.user_id)
        assert on_a.open_dm(deliver) == b"over wss"
    finally:
        await on_a.close()
        await on_b.close()


async def test_a_node_without_the_ca_refuses_the_certificate_in_words(tls_mesh):
    _, a, _, c, _ = tls_mesh

    async def refused() -> list[dict]:
        rows = await links_of(f"http://127.0.0.1:{c.port}")
        return [row for row in rows if "TLS certificate refused" in row["reason"]]

    rows = await wait_for(refused)
    assert rows[0]["state"] != "joined" and "unable to get local issuer certificate" in rows[0]["reason"]
    assert "Traceback" not in c.log(5000)
    assert "Traceback" not in a.log(5000)


def _chat(home, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOCP_PASSWORD": PASSWORD}
    return subprocess.run([sys.executable, "-c", "from socp.cli.main import cli; cli()", "chat", "--home", str(home),
                           "--script", "--server", url, "--connect-attempts", "1", "--linger", "0.3", *extra],
                          input="/list\n", capture_output=True, text=True, env=env, timeout=60)


def test_socp_chat_takes_wss_with_ca_and_refuses_a_wrong_certificate(tls_mesh, keys, tmp_path):
    certs, a, _, _, _ = tls_mesh
    ClientHome(tmp_path / "alice").create("alice", PASSWORD, user_key=keys[4])
    url = f"wss://127.0.0.1:{a.port}"

    trusted = _chat(tmp_path / "alice", url, "--ca", str(certs.ca_file))
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert any(json.loads(line)["event"] == "list" for line in trusted.stdout.splitlines() if line.strip())

    untrusted = _chat(tmp_path / "alice", url)
    other_ca = make_server_certificate(tmp_path / "other", ca_name="another CA")
    wrong_ca = _chat(tmp_path / "alice", url, "--ca", str(other_ca.ca_file))
    for refused in (untrusted, wrong_ca):
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert "TLS certificate was refused" in output and "--ca" in output, output
        assert "Traceback" not in output
