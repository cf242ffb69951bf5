"""The users' keys we use, under trust on first use (trust.py pins the fingerprints).

A key seen for the first time is pinned and used; a different one later is kept
apart (`changed`), reported once, and never encrypted to until /trust accepts it.
"""

from __future__ import annotations

from collections.abc import Callable

from socp.protocol import crypto
from socp.protocol.errors import BadKey, UserNotFound

from .commands import CommandError
from .events import Event, KeyChanged
from .trust import PinStore


class TrustedKeys:
    def __init__(self, pins: PinStore, label: Callable[[str], str]) -> None:
        self.pins = pins
        self._label = label                      # a user's display name, for the lines we make
        self.trusted: dict[str, str] = {}        # user id -> key matching its pin (normalised)
        self.changed: dict[str, str] = {}        # user id -> a key that differs from the pin
        self._warned: dict[str, str] = {}        # user id -> new fingerprint already reported

    def check(self, user_id: str, key_text: str) -> tuple[bool, list[Event]]:
        """TOFU: pin a first-seen key; report a different one once; say if trusted."""
        fp = crypto.fingerprint(key_text)
        pinned = self.pins.get(user_id)
        if pinned is None:
            self.pins.pin(user_id, fp)
            pinned = fp
        if pinned == fp:
            self.trusted[user_id] = crypto.normalise_public_key(key_text)
            self.changed.pop(user_id, None)
            return True, []
        self.changed[user_id] = crypto.normalise_public_key(key_text)
        if self._warned.get(user_id) == fp:
            return False, []
        self._warned[user_id] = fp
        return False, [KeyChanged(user=user_id, label=self._label(user_id), old_fingerprint=pinned,
                                  new_fingerprint=fp)]

    def get(self, user_id: str) -> str | None:
        """The trusted key of a user, None if none."""
        return self.trusted.get(user_id)

    def knows(self, user_id: str) -> bool:
        """A key was seen for this user (trusted or changed)."""
        return user_id in self.trusted or user_id in self.changed

    def seen(self, user_id: str) -> str | None:
        """The key last seen for a user: a changed one first."""
        return self.changed.get(user_id) or self.trusted.get(user_id)

    def for_sending(self, user_id: str) -> crypto.PublicKey:
        """The key to encrypt to: only a trusted one."""
        if user_id in self.changed:
            raise CommandError(
                f"the key of {self._label(user_id)} changed (now {crypto.fingerprint(self.changed[user_id])}); "
                f"check it with /whois and accept it with /trust {user_id}"
            )
        key = self.trusted.get(user_id)
        if key is None:
            raise UserNotFound(f"no key known for {user_id}; is the user online? (/list)")
        return crypto.decode_public_key(key)

    def accept_changed(self, user_id: str) -> str | None:
        """/trust: pin the changed key of a user; its fingerprint, None if it had none."""
        new_key = self.changed.pop(user_id, None)
        if new_key is None:
            return None
        fp = crypto.fingerprint(new_key)
        self.pins.pin(user_id, fp)
        self.trusted[user_id] = new_key
        self._warned.pop(user_id, None)
        return fp

    def owner_of_fingerprint(self, fingerprint: str) -> str:
        """The user whose trusted key has this fingerprint, "" if none."""
        return next((uid for uid, key in self.trusted.items() if crypto.fingerprint(key) == fingerprint), "")

    def owner_of_key(self, key_text: object, me: tuple[str, str]) -> str:
        """The user (we included: `me` is our id and fingerprint) whose key this is,
        "" if none we know."""
        if not isinstance(key_text, str):
            return ""
        try:
            fp = crypto.fingerprint(key_text)
        except BadKey:
            return ""
        if fp == me[1]:
            return me[0]
        return self.owner_of_fingerprint(fp)
