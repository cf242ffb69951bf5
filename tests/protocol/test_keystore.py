"""Password-protected private key files (keystore.py). Keys go to tmp_path only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from socp.protocol import crypto, keystore
from socp.protocol.errors import BadKey, ErrorCode


def _same_key(a: crypto.PrivateKey, b: crypto.PrivateKey) -> bool:
    return a.private_numbers() == b.private_numbers()


def test_encrypted_pem_round_trip(keys) -> None:
    pem = keystore.private_key_to_pem(keys[0], "correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in pem
    # The clear key must not be in the file.
    assert crypto.private_key_der(keys[0])[-64:] not in pem
    assert _same_key(keystore.private_key_from_pem(pem, "correct horse"), keys[0])


def test_unencrypted_pem_round_trip(keys) -> None:
    pem = keystore.private_key_to_pem(keys[0], None)
    assert b"ENCRYPTED" not in pem
    assert _same_key(keystore.private_key_from_pem(pem, None), keys[0])


def test_wrong_password_is_wrong_password(keys) -> None:
    pem = keystore.private_key_to_pem(keys[0], "correct horse")
    with pytest.raises(keystore.WrongPassword) as info:
        keystore.private_key_from_pem(pem, "battery staple")
    assert info.value.code is ErrorCode.BAD_KEY


def test_missing_password_is_wrong_password(keys) -> None:
    pem = keystore.private_key_to_pem(keys[0], "correct horse")
    with pytest.raises(keystore.WrongPassword):
        keystore.private_key_from_pem(pem, None)


def test_non_ascii_password(keys) -> None:
    pem = keystore.private_key_to_pem(keys[0], "pässwörd 中")
    assert _same_key(keystore.private_key_from_pem(pem, "pässwörd 中"), keys[0])
    with pytest.raises(keystore.WrongPassword):
        keystore.private_key_from_pem(pem, "passwörd 中")


def test_garbage_file_is_bad_key_not_wrong_password() -> None:
    with pytest.raises(BadKey) as info:
        label = b"PRIVATE " + b"KEY"  # spelled apart: a broken PEM, no key in this file
        keystore.private_key_from_pem(b"-----BEGIN " + label + b"-----\nAAAA\n-----END " + label + b"-----\n", None)
    assert not isinstance(info.value, keystore.WrongPassword)


def test_write_private_key_creates_mode_0600(keys, tmp_path: Path) -> None:
    path = tmp_path / "nested" / "user.pem"
    keystore.write_private_key(path, keys[0], "pw")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _same_key(keystore.read_private_key(path, "pw"), keys[0])
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_write_private_key_overwrites_with_mode_0600(keys, tmp_path: Path) -> None:
    path = tmp_path / "user.pem"
    path.write_text("old")
    path.chmod(0o644)
    keystore.write_private_key(path, keys[1], None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _same_key(keystore.read_private_key(path, None), keys[1])


def test_write_private_key_never_writes_into_a_stale_tmp_file(keys, tmp_path: Path) -> None:
    # A stale, world-readable tmp file with a second name: writing into it would leave
    # the key readable under that other name.
    path = tmp_path / "user.pem"
    witness = tmp_path / "witness.txt"
    witness.write_text("left over from a crash")
    witness.chmod(0o644)
    os.link(witness, tmp_path / "user.pem.tmp")
    keystore.write_private_key(path, keys[0], "pw")
    assert witness.read_text() == "left over from a crash"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _same_key(keystore.read_private_key(path, "pw"), keys[0])


def test_write_private_key_does_not_follow_a_planted_symlink(keys, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "user.pem"
    os.symlink(victim, tmp_path / "user.pem.tmp")
    keystore.write_private_key(path, keys[0], "pw")
    assert victim.read_text() == "precious"
    assert not path.is_symlink()
    assert _same_key(keystore.read_private_key(path, "pw"), keys[0])
