"""Logging in on a new machine (`socp chat --login`): the client side, pure (STYLE §1).

The node keeps each registered user's private key encrypted under a key derived from
the password (docs/store-and-login.md, `socp.protocol.login`). A machine that has only
the user id and the password gets it back in one exchange on its own connection:

    client                                    node
    LOGIN_REQUEST {user_id}              -->
                                         <--  LOGIN_CHALLENGE {nonce, salt, params}
    LOGIN_PROOF {user_id, proof}         -->                      (scrypt on our side)
                                         <--  LOGIN_BLOB {user_id, privkey_store, pubkey}
                                              or ERROR FORBIDDEN / RATE_LIMITED / TIMEOUT

`RoamingLogin` builds the frames and checks the answers: every answer must carry the
pinned server key's transport signature when a key is pinned (SOCP §5), the blob must
open with the password, and the key in it must be the one the node has bound to the
user id. The driver (`connection.log_in`) moves the frames; `answer` runs scrypt, so
the driver calls it in a thread.

What does not roam: the public channel sending key (SOCP §7.3, made again on the
first /all; peers get the new one in a key share), TOFU pins and downloads.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from socp.protocol import crypto, frames, signing
from socp.protocol import login as login_values
from socp.protocol.envelope import Envelope, parse
from socp.protocol.errors import ErrorCode, InvalidSignature, SocpError
from socp.protocol.frame_types import FrameType as T
from socp.protocol.ids import is_uuid4
from socp.ratelimit import hinted_retry_ms


class LoginFailed(SocpError):
    """The login did not give us our key; the detail is meant for the user."""

    def __init__(self, detail: str, wire_code: str = "LOGIN_FAILED", retry_after_ms: int | None = None) -> None:
        super().__init__(detail)
        self.wire_code = wire_code
        self.retry_after_ms = retry_after_ms


def refusal(code: str, detail: str, user_id: str) -> LoginFailed:
    """The node's ERROR, in words a user can act on."""
    if code == ErrorCode.FORBIDDEN.value:
        return LoginFailed(f"login refused: wrong user id or password for {user_id} "
                           "(or that user has not stored a login on this server)", code)
    if code == ErrorCode.RATE_LIMITED.value:
        millis = hinted_retry_ms(detail)
        if millis is not None:
            return LoginFailed(f"too many failed logins for {user_id}: try again in {_seconds(millis)}",
                               code, retry_after_ms=millis)
        return LoginFailed(f"the server is limiting logins: {detail}", code)
    if code == ErrorCode.TIMEOUT.value:
        return LoginFailed("the login took too long and the server's challenge expired; try again", code)
    return LoginFailed(f"the server refused the login: {code} {detail}".rstrip(), code)


def _seconds(millis: int) -> str:
    seconds = max(1, -(-millis // 1000))
    return f"{seconds} s" if seconds < 120 else f"{-(-seconds // 60)} min"


class RoamingLogin:
    """One login exchange. Call `request`, then `answer` on the first answer, then
    `open_blob` on the second; each raises LoginFailed with a user-facing detail."""

    def __init__(self, user_id: str, password: str, *, server_key: crypto.PublicKey | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not is_uuid4(user_id):
            raise LoginFailed(f"{user_id!r} is not a user id (a UUID v4, shown by /whois on your usual machine)",
                              "USAGE")
        if not password:
            raise LoginFailed("a password is required", "USAGE")
        self.user_id = user_id
        self.server_key = server_key
        self.server_id = ""          # learned from the challenge (its `from`)
        self._password = password
        self._keys: login_values.LoginKeys | None = None
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def request(self) -> Envelope:
        return frames.login_request(self.user_id, None, self._now_ms())

    def _expect(self, data: str | bytes, wanted: str) -> Envelope:
        try:
            envelope = parse(data)
        except SocpError as exc:
            raise LoginFailed(f"the server sent an unreadable answer: {exc.detail}", exc.code.value) from exc
        if self.server_key is not None:
            try:
                signing.verify_transport(self.server_key, envelope)
            except InvalidSignature as exc:
                raise LoginFailed(f"the {envelope.type} is not signed by the pinned server key (--server-key): "
                                  f"{exc.detail}", ErrorCode.INVALID_SIG.value) from exc
        if envelope.type == T.ERROR:
            code, detail = frames.error_text(envelope)
            raise refusal(code, detail, self.user_id)
        if envelope.type != wanted:
            raise LoginFailed(f"the server answered {envelope.type} where {wanted} was expected "
                              "(does it support password login?)", ErrorCode.MALFORMED.value)
        if envelope.payload.get("user_id", self.user_id) != self.user_id:
            raise LoginFailed(f"the {wanted} is for another user id", ErrorCode.MALFORMED.value)
        return envelope

    def answer(self, data: str | bytes) -> Envelope:
        """LOGIN_CHALLENGE -> LOGIN_PROOF. Runs scrypt with the challenge's params
        (bounded by `ScryptParams.check`, so a hostile server cannot make it huge)."""
        challenge = self._expect(data, T.LOGIN_CHALLENGE)
        self.server_id = challenge.from_
        try:
            proof, self._keys = login_values.answer_challenge(self._password, self.user_id, self.server_id,
                                                              challenge.payload)
        except login_values.LoginError as exc:
            raise LoginFailed(f"unusable login challenge: {exc.detail}", ErrorCode.MALFORMED.value) from exc
        return frames.login_proof(self.user_id, self.server_id, self._now_ms(), proof)

    def open_blob(self, data: str | bytes) -> crypto.PrivateKey:
        """LOGIN_BLOB -> our private key, after checking it is the key bound to our id."""
        blob = self._expect(data, T.LOGIN_BLOB)
        assert self._keys is not None, "open_blob before answer"
        try:
            key = login_values.decrypt_private_key(blob.payload["privkey_store"], self._keys.enc_key)
        except login_values.LoginError as exc:
            raise LoginFailed(f"the key the server sent does not open with this password: {exc.detail}",
                              ErrorCode.FORBIDDEN.value) from exc
        if crypto.encode_public_key(key) != crypto.normalise_public_key(blob.payload["pubkey"]):
            raise LoginFailed("the key the server sent is not the key it has bound to this user id",
                              ErrorCode.BAD_KEY.value)
        return key


__all__ = ["LoginFailed", "RoamingLogin", "refusal"]
