"""The closed set of SOCP frame types and who may send which (SOCP §6, §7)."""

from __future__ import annotations

from enum import Enum


class FrameType(str, Enum):
    # server <-> server (§6)
    SERVER_HELLO_JOIN = "SERVER_HELLO_JOIN"
    SERVER_WELCOME = "SERVER_WELCOME"
    SERVER_HELLO_LINK = "SERVER_HELLO_LINK"
    SERVER_ANNOUNCE = "SERVER_ANNOUNCE"
    USER_ADVERTISE = "USER_ADVERTISE"
    USER_REMOVE = "USER_REMOVE"
    SERVER_DELIVER = "SERVER_DELIVER"
    HEARTBEAT = "HEARTBEAT"
    # user <-> server (§7)
    USER_HELLO = "USER_HELLO"
    MSG_DIRECT = "MSG_DIRECT"
    USER_DELIVER = "USER_DELIVER"
    PUBLIC_CHANNEL_ADD = "PUBLIC_CHANNEL_ADD"
    PUBLIC_CHANNEL_UPDATED = "PUBLIC_CHANNEL_UPDATED"
    PUBLIC_CHANNEL_KEY_SHARE = "PUBLIC_CHANNEL_KEY_SHARE"
    MSG_PUBLIC_CHANNEL = "MSG_PUBLIC_CHANNEL"
    FILE_START = "FILE_START"
    FILE_CHUNK = "FILE_CHUNK"
    FILE_END = "FILE_END"
    ACK = "ACK"
    ERROR = "ERROR"
    CTRL_CLOSE = "CTRL_CLOSE"
    # /list (interop table): what we send, and what peers send for the same request
    LIST_REQUEST = "LIST_REQUEST"
    USER_LIST_REQ = "USER_LIST_REQ"
    LIST = "LIST"
    CMD_LIST = "CMD_LIST"
    WHO = "WHO"
    LIST_RESPONSE = "LIST_RESPONSE"
    USER_LIST = "USER_LIST"  # G45's (and G2's) list reply: {users}
    # Key lookups other teams' clients send (interop table; issue #14)
    PUBKEY_REQUEST = "PUBKEY_REQUEST"  # G17: {user_id}
    PUBKEY_RESPONSE = "PUBKEY_RESPONSE"  # G17: {user_id, pubkey or null}
    USER_DB_GET = "USER_DB_GET"  # G45: {user_id}
    USER_DB_USER = "USER_DB_USER"  # G45: {user_id, found, pubkey or ""}
    # G45's user directory between servers: a local server registers its users' keys
    # with the master and asks it for keys (issue #14, server links)
    DB_REGISTER = "DB_REGISTER"  # G45: {user_id, pubkey}
    DB_GET_USER = "DB_GET_USER"  # G45: {user_id, req_id}
    DB_USER = "DB_USER"  # G45: {user_id, found, pubkey or "", req_id}
    # G17's client: register and log in with the password itself (docs/store-and-login.md)
    LOCAL_REGISTER = "LOCAL_REGISTER"  # G17: {pubkey, privkey_store, pake_password (argon2)}
    REGISTER = "REGISTER"  # the same, under the name G17's server also accepts
    LOGIN_SUCCESS = "LOGIN_SUCCESS"  # G17: {pubkey, privkey_store}
    LOGIN_FAIL = "LOGIN_FAIL"  # G17: {code, detail}
    PUBLIC_MEMBERS_SNAPSHOT = "PUBLIC_MEMBERS_SNAPSHOT"  # G17 asks {}, reads {members, version}
    # Project additions (peers ignore them): the directory and password login
    # (SOCP §10 "directory functions" and "recommended login"; docs/store-and-login.md).
    DIRECTORY_GET = "DIRECTORY_GET"
    DIRECTORY_ENTRY = "DIRECTORY_ENTRY"
    LOGIN_REGISTER = "LOGIN_REGISTER"
    LOGIN_REQUEST = "LOGIN_REQUEST"
    LOGIN_CHALLENGE = "LOGIN_CHALLENGE"
    LOGIN_PROOF = "LOGIN_PROOF"
    LOGIN_BLOB = "LOGIN_BLOB"


KNOWN_TYPES = frozenset(t.value for t in FrameType)

LIST_REQUEST_TYPES = frozenset(
    {FrameType.LIST_REQUEST, FrameType.USER_LIST_REQ, FrameType.LIST, FrameType.CMD_LIST, FrameType.WHO}
)

# The first frame of a connection decides its role (§4).
SERVER_OPENING_TYPES = frozenset(
    {FrameType.SERVER_HELLO_JOIN, FrameType.SERVER_HELLO_LINK, FrameType.SERVER_ANNOUNCE}
)
USER_OPENING_TYPES = frozenset({FrameType.USER_HELLO})
# A connection with no key yet logs in with these, then closes (the gateway sees an
# unknown role; the router answers them while the link awaits a hello).
LOGIN_TYPES = frozenset({FrameType.LOGIN_REQUEST, FrameType.LOGIN_PROOF})
# G17's client registers (then logs in) on a connection before its hello, and says
# its hello on the same connection afterwards (router/peer_login.py).
PEER_REGISTER_TYPES = frozenset({FrameType.LOCAL_REGISTER, FrameType.REGISTER})
PASSWORD_OPENING_TYPES = LOGIN_TYPES | PEER_REGISTER_TYPES

# A user's question about another user's key, in each dialect we answer.
KEY_LOOKUP_TYPES = frozenset({FrameType.PUBKEY_REQUEST, FrameType.USER_DB_GET})

# Frames that carry end-to-end user content and so are relayed, never decrypted.
USER_CONTENT_TYPES = frozenset(
    {
        FrameType.MSG_DIRECT,
        FrameType.MSG_PUBLIC_CHANNEL,
        FrameType.PUBLIC_CHANNEL_KEY_SHARE,
        FrameType.FILE_START,
        FrameType.FILE_CHUNK,
        FrameType.FILE_END,
    }
)

# Frames a user connection may send after its hello.
USER_SENDABLE = USER_CONTENT_TYPES | frozenset(
    {
        FrameType.HEARTBEAT,
        FrameType.ACK,
        FrameType.ERROR,
        FrameType.CTRL_CLOSE,
        FrameType.DIRECTORY_GET,
        FrameType.LOGIN_REGISTER,
        FrameType.PUBLIC_MEMBERS_SNAPSHOT,
    }
    | LIST_REQUEST_TYPES
    | KEY_LOOKUP_TYPES
)
