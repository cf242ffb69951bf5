"""The client's home directory (`--home`, default ~/.config/socp).

    identity.json            user id (UUID v4), display name, last server
    user_key.pem             the user's RSA-4096 key, PKCS#8, password-protected, 0600
    channel_key.pem          the public channel sending key (§7.3), made on first use, same password
    peer_channel_keys.json   peers' sending keys, as received: wrapped for our user key
    pins.json                TOFU: user id -> key fingerprint
    logins.json              servers that keep our login (encrypted key + password
                             verifier, LOGIN_REGISTER): login_record_key -> {server, stored_at}
    downloads/               received files (0700); partial files are hidden and 0600
    config.toml              optional settings, written by you (see `settings`):
                                 [files]
                                 auto_accept = "16 MiB"   # saved without asking up to this size
                                 max_size = "4 GiB"       # larger files are refused
                                 [ui]
                                 theme = "dark"           # or "light", for a light terminal

Everything is private to the user (files 0600, directories 0700).
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from socp.protocol import crypto, keystore
from socp.protocol.errors import SocpError
from socp.protocol.ids import is_uuid4, new_id

from ._files import private_dir, read_json, write_private_json
from .channel_keys import ChannelKeyRing
from .incoming_files import DEFAULT_AUTO_ACCEPT_BYTES, DEFAULT_MAX_FILE_BYTES
from .session import ClientSession
from .trust import PinStore

IDENTITY_FILE = "identity.json"
USER_KEY_FILE = "user_key.pem"
CHANNEL_KEY_FILE = "channel_key.pem"
PEER_CHANNEL_KEYS_FILE = "peer_channel_keys.json"
PINS_FILE = "pins.json"
LOGINS_FILE = "logins.json"
DOWNLOADS_DIR = "downloads"
CONFIG_FILE = "config.toml"
THEMES = ("dark", "light")
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def login_record_key(server_id: str, server: str) -> str:
    """Which server keeps a login, as logins.json names it: the server's id, or its id
    and URL when the id need not be unique. Every standalone G17 server calls itself
    "auto" (issue #14, note a7): keyed by id alone, a login stored at one G17 server was
    taken as stored at every other, which then had no key for our user."""
    return server_id if is_uuid4(server_id) else f"{server_id} at {server}"


class HomeError(SocpError):
    """The client home is missing, unreadable, or the password does not open it."""


class WrongPassword(HomeError):
    """The password does not open the home's key store."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The home's config.toml, with the defaults for what it does not say."""

    auto_accept_bytes: int = DEFAULT_AUTO_ACCEPT_BYTES
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    theme: str = "dark"                 # the app's colours: one of THEMES


def _refuse_unknown(path: Path, table: str, values: dict[str, object], known: set[str]) -> None:
    unknown = set(values) - known
    if unknown:
        raise HomeError(f"{path}: unknown setting(s) in [{table}]: {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(sorted(known))})")


def parse_size(value: object) -> int:
    """A size as bytes: 1048576, "1 MiB", "500 KB", "2GiB"; ValueError if not one."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value) if isinstance(value, str) else None
    if match is None or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size (e.g. 16 MiB, 500 KB, 1048576)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    display_name: str
    last_server: str = ""


class ClientHome:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    @property
    def downloads_dir(self) -> Path:
        return self.root / DOWNLOADS_DIR

    def exists(self) -> bool:
        return (self.root / IDENTITY_FILE).exists()

    def create(self, display_name: str, password: str, *, user_key: crypto.PrivateKey | None = None,
               channel_key: crypto.PrivateKey | None = None, user_id: str | None = None) -> Identity:
        """A new identity. Keys may be injected (tests); otherwise one is generated."""
        if not password:
            raise HomeError("a password is required to protect the key store")
        if self.exists() or (self.root / USER_KEY_FILE).exists():
            raise HomeError(f"{self.root} already holds an identity")
        identity = Identity(user_id or new_id(), display_name)
        if not is_uuid4(identity.user_id):
            raise HomeError("a user id must be a UUID v4")
        private_dir(self.root)
        keystore.write_private_key(self.root / USER_KEY_FILE, user_key or crypto.generate_private_key(), password)
        if channel_key is not None:
            keystore.write_private_key(self.root / CHANNEL_KEY_FILE, channel_key, password)
        private_dir(self.downloads_dir)
        self.save_identity(identity)
        return identity

    def load_identity(self) -> Identity:
        record = read_json(self.root / IDENTITY_FILE, None)
        if not isinstance(record, dict) or not is_uuid4(record.get("user_id")):
            raise HomeError(f"{self.root / IDENTITY_FILE} does not hold a usable identity")
        return Identity(record["user_id"], str(record.get("display_name") or ""), str(record.get("last_server") or ""))

    def save_identity(self, identity: Identity) -> None:
        write_private_json(self.root / IDENTITY_FILE, {
            "user_id": identity.user_id, "display_name": identity.display_name, "last_server": identity.last_server,
        })

    def update_identity(self, **changes: str) -> Identity:
        identity = replace(self.load_identity(), **changes)
        self.save_identity(identity)
        return identity

    def load_user_key(self, password: str) -> crypto.PrivateKey:
        try:
            return keystore.read_private_key(self.root / USER_KEY_FILE, password)
        except keystore.WrongPassword as exc:
            raise WrongPassword(f"cannot open {self.root / USER_KEY_FILE}: {exc.detail}") from exc
        except OSError as exc:
            raise HomeError(f"cannot read {self.root / USER_KEY_FILE}: {exc.strerror}") from exc

    def login_stored(self, server_id: str, server: str) -> bool:
        """Does the server `server_id` at URL `server` keep our login (we registered
        there, or logged in from it)?"""
        record = read_json(self.root / LOGINS_FILE, {})
        return isinstance(record, dict) and login_record_key(server_id, server) in record

    def remember_login(self, server_id: str, server: str, *, now: Callable[[], float] = time.time) -> None:
        record = read_json(self.root / LOGINS_FILE, {})
        if not isinstance(record, dict):
            record = {}
        record[login_record_key(server_id, server)] = {"server": server, "stored_at": int(now() * 1000)}
        write_private_json(self.root / LOGINS_FILE, record)

    def channel_key_factory(self, password: str) -> Callable[[], crypto.PrivateKey]:
        """Load the channel sending key, or make and save it on first use (§7.3)."""
        path = self.root / CHANNEL_KEY_FILE

        def load_or_create() -> crypto.PrivateKey:
            if path.exists():
                return keystore.read_private_key(path, password)
            key = crypto.generate_private_key()
            keystore.write_private_key(path, key, password)
            return key

        return load_or_create

    def settings(self) -> Settings:
        """config.toml, checked: a mistake in it is one clear HomeError."""
        path = self.root / CONFIG_FILE
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Settings()
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise HomeError(f"cannot read {path}: {exc}") from exc
        files, ui = data.get("files", {}), data.get("ui", {})
        for table, value in (("files", files), ("ui", ui)):
            if not isinstance(value, dict):
                raise HomeError(f"{path}: [{table}] must be a table")
        _refuse_unknown(path, "files", files, {"auto_accept", "max_size"})
        _refuse_unknown(path, "ui", ui, {"theme"})
        theme = ui.get("theme", "dark")
        if theme not in THEMES:
            raise HomeError(f"{path}: [ui] theme must be one of {', '.join(THEMES)}, not {theme!r}")
        try:
            settings = Settings(parse_size(files.get("auto_accept", DEFAULT_AUTO_ACCEPT_BYTES)),
                                parse_size(files.get("max_size", DEFAULT_MAX_FILE_BYTES)), theme)
        except ValueError as exc:
            raise HomeError(f"{path}: {exc}") from exc
        return settings

    def session(self, user_key: crypto.PrivateKey, password: str, *, server_key: crypto.PublicKey | None = None,
                clock: Callable[[], float] = time.time, sign_file_chunks: bool = True,
                chunk_blocks: int = 1) -> ClientSession:
        identity = self.load_identity()
        settings = self.settings()
        return ClientSession(
            identity.user_id, user_key, display_name=identity.display_name,
            pins=PinStore(self.root / PINS_FILE),
            channel_keys=ChannelKeyRing(self.channel_key_factory(password), path=self.root / PEER_CHANNEL_KEYS_FILE,
                                        user_key=user_key, own_stored=(self.root / CHANNEL_KEY_FILE).exists),
            downloads_dir=private_dir(self.downloads_dir), clock=clock, server_key=server_key,
            sign_file_chunks=sign_file_chunks, chunk_blocks=chunk_blocks,
            auto_accept_bytes=settings.auto_accept_bytes, max_file_bytes=settings.max_file_bytes,
        )
