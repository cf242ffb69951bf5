"""One builder per SOCP frame type (§6, §7, interop table), producing unsigned
envelopes in exactly the reference's shapes. Signing is separate (`signing.py`)
because on a node it happens in the verifier pool.
"""

from __future__ import annotations

from typing import Any

from . import limits
from .encoding import dumps
from .envelope import Envelope
from .errors import ErrorCode
from .frame_types import FrameType as T
from .ids import BROADCAST, PUBLIC_CHANNEL


def _env(frame_type: T, sender: str, to: str, ts: int, payload: dict[str, Any]) -> Envelope:
    return Envelope(type=frame_type.value, from_=sender, to=to, ts=ts, payload=payload)


# --- server <-> server (§6) -----------------------------------------------------------


def server_hello_join(server_id: str, introducer: str, ts: int, host: str, port: int, pubkey: str) -> Envelope:
    """§6.1 step 1; `introducer` is "host:port"."""
    return _env(T.SERVER_HELLO_JOIN, server_id, introducer, ts, {"host": host, "port": port, "pubkey": pubkey})


def server_hello_link(server_id: str, peer_id: str, ts: int, host: str, port: int, pubkey: str) -> Envelope:
    return _env(T.SERVER_HELLO_LINK, server_id, peer_id, ts, {"host": host, "port": port, "pubkey": pubkey})


def server_announce(server_id: str, ts: int, host: str, port: int, pubkey: str) -> Envelope:
    return _env(T.SERVER_ANNOUNCE, server_id, BROADCAST, ts, {"host": host, "port": port, "pubkey": pubkey})


def server_welcome(introducer_id: str, newcomer_id: str, ts: int, assigned_id: str, servers: list[dict[str, Any]],
                   introducer: tuple[str, int, str] | None = None) -> Envelope:
    """Project decision: the same entries under `servers` and `clients`. With
    `introducer` (host, port, key), the welcome also says where we are and our key:
    G45 reads `host`/`port`/`pubkey`, G17 `server_pub` (issue #14, server links)."""
    listed = [
        {"server_id": s["server_id"], "host": s["host"], "port": s["port"], "pubkey": s["pubkey"]} for s in servers
    ]
    as_clients = [
        {"user_id": s["server_id"], "host": s["host"], "port": s["port"], "pubkey": s["pubkey"]} for s in servers
    ]
    payload: dict[str, Any] = {"assigned_id": assigned_id, "servers": listed, "clients": as_clients}
    if introducer is not None:
        host, port, pubkey = introducer
        payload.update({"host": host, "port": port, "pubkey": pubkey, "server_pub": pubkey})
    return _env(T.SERVER_WELCOME, introducer_id, newcomer_id, ts, payload)


def user_advertise(server_id: str, ts: int, user_id: str, meta: dict[str, Any]) -> Envelope:
    return _env(T.USER_ADVERTISE, server_id, BROADCAST, ts, {"user_id": user_id, "server_id": server_id, "meta": meta})


def user_remove(server_id: str, ts: int, user_id: str) -> Envelope:
    return _env(T.USER_REMOVE, server_id, BROADCAST, ts, {"user_id": user_id, "server_id": server_id})


def server_deliver(server_id: str, peer_id: str, ts: int, user_id: str, ciphertext: str, sender: str,
                   sender_pub: str, content_sig: str, **extra: Any) -> Envelope:
    """§6.3. `ts` is the original ts of the user's frame: content_sig covers it."""
    payload = {"user_id": user_id, "ciphertext": ciphertext, "sender": sender,
               "sender_pub": sender_pub, "content_sig": content_sig, **extra}
    return _env(T.SERVER_DELIVER, server_id, peer_id, ts, payload)


def heartbeat(server_id: str, peer_id: str, ts: int) -> Envelope:
    return _env(T.HEARTBEAT, server_id, peer_id, ts, {})


# --- user <-> server (§7) ---------------------------------------------------------


def user_hello(user_id: str, server_id: str | None, ts: int, pubkey: str, client: str = "socp-cli",
               display_name: str | None = None) -> Envelope:
    """Interop table: `to` = the server id if known, else "*"."""
    payload: dict[str, Any] = {"client": client, "pubkey": pubkey, "enc_pubkey": pubkey}
    if display_name:
        payload["meta"] = {"display_name": display_name}
    return _env(T.USER_HELLO, user_id, server_id or BROADCAST, ts, payload)


def msg_direct(sender: str, recipient: str, ts: int, ciphertext: str, sender_pub: str, content_sig: str,
               part: dict[str, Any] | None = None) -> Envelope:
    payload: dict[str, Any] = {"ciphertext": ciphertext, "sender_pub": sender_pub, "content_sig": content_sig}
    if part:
        payload["part"] = part
    return _env(T.MSG_DIRECT, sender, recipient, ts, payload)


def user_deliver(server_id: str, recipient: str, ts: int, ciphertext: str, sender: str, sender_pub: str,
                 content_sig: str, **extra: Any) -> Envelope:
    payload = {"ciphertext": ciphertext, "sender": sender, "sender_pub": sender_pub,
               "content_sig": content_sig, **extra}
    return _env(T.USER_DELIVER, server_id, recipient, ts, payload)


def public_channel_add(server_id: str, ts: int, added: list[str], if_version: int) -> Envelope:
    return _env(T.PUBLIC_CHANNEL_ADD, server_id, BROADCAST, ts, {"add": added, "if_version": if_version})


def public_channel_updated(server_id: str, ts: int, version: int, wraps: list[dict[str, Any]]) -> Envelope:
    return _env(T.PUBLIC_CHANNEL_UPDATED, server_id, BROADCAST, ts, {"version": version, "wraps": wraps})


def public_channel_key_share(sender: str, ts: int, shares: list[dict[str, str]], creator_pub: str,
                             content_sig: str) -> Envelope:
    return _env(T.PUBLIC_CHANNEL_KEY_SHARE, sender, BROADCAST, ts,
                {"shares": shares, "creator_pub": creator_pub, "content_sig": content_sig})


def msg_public_channel(sender: str, ts: int, ciphertext: str, sender_pub: str, content_sig: str,
                       part: dict[str, Any] | None = None) -> Envelope:
    payload: dict[str, Any] = {"ciphertext": ciphertext, "sender_pub": sender_pub, "content_sig": content_sig}
    if part:
        payload["part"] = part
    return _env(T.MSG_PUBLIC_CHANNEL, sender, PUBLIC_CHANNEL, ts, payload)


def file_start(sender: str, to: str, ts: int, file_id: str, name: str, size: int, sha256_hex: str,
               mode: str) -> Envelope:
    return _env(T.FILE_START, sender, to, ts,
                {"file_id": file_id, "name": name, "size": size, "sha256": sha256_hex, "mode": mode})


def file_chunk(sender: str, to: str, ts: int, file_id: str, index: int, ciphertext: str) -> Envelope:
    return _env(T.FILE_CHUNK, sender, to, ts, {"file_id": file_id, "index": index, "ciphertext": ciphertext})


def file_end(sender: str, to: str, ts: int, file_id: str) -> Envelope:
    return _env(T.FILE_END, sender, to, ts, {"file_id": file_id})


def ack(sender: str, to: str, ts: int, msg_ref: str) -> Envelope:
    return _env(T.ACK, sender, to, ts, {"msg_ref": msg_ref})


def error(sender: str, to: str, ts: int, code: ErrorCode | str, detail: str) -> Envelope:
    return _env(T.ERROR, sender, to, ts, {"code": ErrorCode(code).value if isinstance(code, ErrorCode) else code,
                                          "detail": detail})


def list_request(user_id: str, server_id: str, ts: int) -> Envelope:
    return _env(T.LIST_REQUEST, user_id, server_id, ts, {})


# A list answer stays well inside one frame however many users the mesh has: it
# holds the first users (in id order) that fit, and then says how many there are in
# all (issue #15 weakness 3; peers' clients read only one answer, so no paging).
LIST_ANSWER_BYTES = limits.MAX_FRAME_BYTES // 2


def _how_many_fit(ids: list[str], details: dict[str, dict[str, Any]], copies: int) -> int:
    """How many of the first ids (each written `copies` times, plus its details) fit."""
    used = 0
    for index, entry in enumerate(ids):
        if index >= limits.MAX_LIST_ITEMS:
            return index
        detail = details.get(entry)
        used += copies * (len(entry) + 3) + (len(dumps(detail)) + 1 if detail is not None else 0)
        if used > LIST_ANSWER_BYTES:
            return index
    return len(ids)


def _cut(payload: dict[str, Any], total: int, kept: int) -> dict[str, Any]:
    if kept < total:
        payload["total"] = total
        payload["truncated"] = True
    return payload


def list_response(server_id: str, user_id: str, ts: int, users: list[str],
                  details: list[dict[str, Any]] | None = None, total: int | None = None,
                  more: bool = False) -> Envelope:
    """Interop table: sorted ids under `users` and `online_users`, plus `details`;
    cut to what fits (then `total` and `truncated`). A page of a longer list (`users`
    a slice of `total`, `more` after it) also says `next`: the last id shown, which a
    LIST_REQUEST {"after": next} continues from."""
    ordered = sorted(users)
    by_user = {str(entry.get("user_id", "")): entry for entry in details or ()}
    kept = _how_many_fit(ordered, by_user, copies=2)
    payload: dict[str, Any] = {"users": ordered[:kept], "online_users": ordered[:kept]}
    if details is not None:
        payload["details"] = [by_user[entry] for entry in ordered[:kept] if entry in by_user]
    if total is None:
        return _env(T.LIST_RESPONSE, server_id, user_id, ts, _cut(payload, len(ordered), kept))
    if kept < len(ordered) or more:
        payload["total"] = total
        payload["truncated"] = True
        if kept:
            payload["next"] = ordered[kept - 1]
    return _env(T.LIST_RESPONSE, server_id, user_id, ts, payload)


def user_list(server_id: str, user_id: str, ts: int, users: list[str]) -> Envelope:
    """G45's list reply, for a client that asked with USER_LIST_REQ: sorted ids."""
    ordered = sorted(users)
    kept = _how_many_fit(ordered, {}, copies=1)
    return _env(T.USER_LIST, server_id, user_id, ts, _cut({"users": ordered[:kept]}, len(ordered), kept))


def who(server_id: str, user_id: str, ts: int, users: list[str]) -> Envelope:
    """G101's list reply, for a client that asked with WHO: sorted ids."""
    ordered = sorted(users)
    kept = _how_many_fit(ordered, {}, copies=1)
    return _env(T.WHO, server_id, user_id, ts, _cut({"users": ordered[:kept]}, len(ordered), kept))


def public_members_snapshot(server_id: str, user_id: str, ts: int, members: list[str], version: int) -> Envelope:
    """G17's question before a public post: who is in the channel, at which version."""
    return _env(T.PUBLIC_MEMBERS_SNAPSHOT, server_id, user_id, ts, {"members": sorted(members), "version": version})


def pubkey_request(user_id: str, server_id: str, ts: int, wanted: str) -> Envelope:
    return _env(T.PUBKEY_REQUEST, user_id, server_id, ts, {"user_id": wanted})


def pubkey_response(server_id: str, user_id: str, ts: int, wanted: str, pubkey: str | None) -> Envelope:
    """G17's key answer; an unknown user gets pubkey null."""
    return _env(T.PUBKEY_RESPONSE, server_id, user_id, ts, {"user_id": wanted, "pubkey": pubkey})


def user_db_get(user_id: str, server_id: str, ts: int, wanted: str) -> Envelope:
    return _env(T.USER_DB_GET, user_id, server_id, ts, {"user_id": wanted})


def db_register(server_id: str, master_id: str, ts: int, user_id: str, pubkey: str) -> Envelope:
    """G45, server to its master: put a user's key in the master's directory."""
    return _env(T.DB_REGISTER, server_id, master_id, ts, {"user_id": user_id, "pubkey": pubkey})


def db_get_user(server_id: str, master_id: str, ts: int, wanted: str, req_id: str) -> Envelope:
    """G45, server to its master: a user's key, please (answered DB_USER with req_id)."""
    return _env(T.DB_GET_USER, server_id, master_id, ts, {"user_id": wanted, "req_id": req_id})


def db_user(server_id: str, asker_id: str, ts: int, wanted: str, pubkey: str | None, req_id: str) -> Envelope:
    """G45, master to a server: the answer to its DB_GET_USER."""
    return _env(T.DB_USER, server_id, asker_id, ts,
                {"user_id": wanted, "found": pubkey is not None, "pubkey": pubkey or "", "req_id": req_id})


def user_db_user(server_id: str, user_id: str, ts: int, wanted: str, pubkey: str | None) -> Envelope:
    """G45's key answer: found false and an empty key for an unknown user."""
    return _env(T.USER_DB_USER, server_id, user_id, ts,
                {"user_id": wanted, "found": pubkey is not None, "pubkey": pubkey or ""})


def ctrl_close(sender: str, to: str, ts: int) -> Envelope:
    return _env(T.CTRL_CLOSE, sender, to, ts, {})


# --- project additions: directory and password login (docs/store-and-login.md) -------


def directory_get(user_id: str, server_id: str, ts: int, wanted: str) -> Envelope:
    """Ask the user's own server for `wanted`'s key (SOCP §10 get_pubkey)."""
    return _env(T.DIRECTORY_GET, user_id, server_id, ts, {"user_id": wanted})


def directory_entry(server_id: str, to: str, ts: int, user_id: str, pubkey: str, home_server: str,
                    remote: bool, version: int, revoked: bool) -> Envelope:
    """The answer; the node's transport signature over this payload is the directory's
    signature over the user id and its key (SOCP §10)."""
    return _env(T.DIRECTORY_ENTRY, server_id, to, ts,
                {"user_id": user_id, "pubkey": pubkey, "server_id": home_server, "remote": remote,
                 "version": version, "revoked": revoked})


def login_register(user_id: str, server_id: str, ts: int, privkey_store: str, pake_password: str) -> Envelope:
    """From a connected user, for its own id: keep my encrypted key and password verifier."""
    return _env(T.LOGIN_REGISTER, user_id, server_id, ts,
                {"privkey_store": privkey_store, "pake_password": pake_password})


def login_request(user_id: str, server_id: str | None, ts: int) -> Envelope:
    """The first frame of a connection that has no key yet."""
    return _env(T.LOGIN_REQUEST, user_id, server_id or BROADCAST, ts, {"user_id": user_id})


def login_challenge(server_id: str, user_id: str, ts: int, nonce: str, salt: str,
                    params: dict[str, Any]) -> Envelope:
    return _env(T.LOGIN_CHALLENGE, server_id, user_id, ts, {"nonce": nonce, "salt": salt, "params": params})


def login_proof(user_id: str, server_id: str, ts: int, proof: str) -> Envelope:
    return _env(T.LOGIN_PROOF, user_id, server_id, ts, {"user_id": user_id, "proof": proof})


def login_blob(server_id: str, user_id: str, ts: int, privkey_store: str, pubkey: str) -> Envelope:
    return _env(T.LOGIN_BLOB, server_id, user_id, ts,
                {"user_id": user_id, "privkey_store": privkey_store, "pubkey": pubkey})


def peer_register(user_id: str, server_id: str, ts: int, pubkey: str, privkey_store: str, pake_password: str,
                  frame_type: T = T.LOCAL_REGISTER) -> Envelope:
    """G17's registration, sent before any hello; pake_password is an argon2 hash."""
    return _env(frame_type, user_id, server_id, ts,
                {"pubkey": pubkey, "privkey_store": privkey_store, "pake_password": pake_password})


def password_login(user_id: str, server_id: str, ts: int, password: str) -> Envelope:
    """G17's LOGIN_REQUEST: the password itself (its server checks the argon2 hash)."""
    return _env(T.LOGIN_REQUEST, user_id, server_id, ts, {"password": password})


def login_success(server_id: str, user_id: str, ts: int, pubkey: str, privkey_store: str) -> Envelope:
    """G17's login answer: its client decrypts privkey_store with the password."""
    return _env(T.LOGIN_SUCCESS, server_id, user_id, ts, {"pubkey": pubkey, "privkey_store": privkey_store})


def login_fail(server_id: str, user_id: str, ts: int, code: ErrorCode | str, detail: str) -> Envelope:
    return _env(T.LOGIN_FAIL, server_id, user_id, ts,
                {"code": ErrorCode(code).value if isinstance(code, ErrorCode) else code, "detail": detail})


# --- reading peer variants (interop table) -------------------------------------------


def deliver_sender(envelope: Envelope, known_servers: frozenset[str] | set[str] = frozenset()) -> str | None:
    """Who sent a USER_DELIVER: payload.sender, else payload.from, else the envelope
    `from` when that is not a server id."""
    payload = envelope.payload
    for key in ("sender", "from"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    if envelope.from_ not in known_servers:
        return envelope.from_
    return None


def error_text(envelope: Envelope) -> tuple[str, str]:
    """(code, detail) of an ERROR frame in our `{code, detail}` or a peer's `{reason}`."""
    payload = envelope.payload
    code = payload.get("code") or "ERROR"
    detail = payload.get("detail") or payload.get("reason") or ""
    return str(code), str(detail)


def welcome_servers(envelope: Envelope) -> list[dict[str, Any]]:
    """Servers of a SERVER_WELCOME from either key (interop table), normalised."""
    entries = envelope.payload.get("servers") or envelope.payload.get("clients") or []
    servers = []
    for entry in entries:
        server_id = entry.get("server_id") or entry.get("user_id")
        # Port 0 (as in §6.1's example) names no listener we could dial.
        if server_id and entry["port"]:
            servers.append({"server_id": server_id, "host": entry["host"], "port": entry["port"],
                            "pubkey": entry["pubkey"]})
    return servers
