"""A node's identity in its data directory: server UUID v4 and RSA-4096 key.

Made on first start, reused after. The key file is PKCS#8 PEM, mode 0600, without
a password (the node starts unattended, like an SSH host key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from socp.protocol import crypto, keystore
from socp.protocol.errors import BadKey
from socp.protocol.ids import is_uuid4, new_id

IDENTITY_FILE = "identity.json"
KEY_FILE = "server_key.pem"


class IdentityError(Exception):
    """The data directory holds an identity we cannot use."""


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    server_id: str
    private_key: crypto.PrivateKey

    @property
    def public_key_text(self) -> str:
        return crypto.encode_public_key(self.private_key)


def load_identity(data_dir: Path) -> NodeIdentity:
    data_dir = Path(data_dir)
    try:
        record = json.loads((data_dir / IDENTITY_FILE).read_text())
        server_id = record["server_id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IdentityError(f"cannot read {data_dir / IDENTITY_FILE}: {exc}") from exc
    if not is_uuid4(server_id):
        raise IdentityError(f"{data_dir / IDENTITY_FILE} holds a server id that is not a UUID v4")
    try:
        key = keystore.read_private_key(data_dir / KEY_FILE, None)
    except OSError as exc:
        raise IdentityError(f"cannot read {data_dir / KEY_FILE}: {exc.strerror}") from exc
    except BadKey as exc:
        raise IdentityError(f"{data_dir / KEY_FILE} is not a usable key: {exc.detail}") from exc
    return NodeIdentity(server_id=server_id, private_key=key)


def load_or_create_identity(data_dir: Path) -> tuple[NodeIdentity, bool]:
    """Return (identity, created)."""
    data_dir = Path(data_dir)
    if (data_dir / IDENTITY_FILE).exists() or (data_dir / KEY_FILE).exists():
        return load_identity(data_dir), False
    data_dir.mkdir(parents=True, exist_ok=True)
    identity = NodeIdentity(server_id=new_id(), private_key=crypto.generate_private_key())
    keystore.write_private_key(data_dir / KEY_FILE, identity.private_key, None)
    (data_dir / IDENTITY_FILE).write_text(json.dumps({"server_id": identity.server_id}) + "\n")
    return identity, True


def adopt_server_id(data_dir: Path, server_id: str) -> None:
    """SOCP §6.1: a joining server adopts the introducer's assigned_id permanently."""
    if not is_uuid4(server_id):
        raise IdentityError("assigned id is not a UUID v4")
    (Path(data_dir) / IDENTITY_FILE).write_text(json.dumps({"server_id": server_id}) + "\n")
