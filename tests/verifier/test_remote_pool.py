"""Verifiers on other hosts, the pure parts: the bridge's table of remotes, the wire
between bridge and remote, and the CURVE key files (issue #18)."""

from __future__ import annotations

import os

import pytest

from socp.verifier import remote_pool as wire
from socp.verifier.curve import (
    ALLOWED_FILE,
    AllowedKeys,
    CurveKeyError,
    check_key,
    load_or_create_keypair,
    parse_allowed,
)
from socp.verifier.remote_pool import RemotePool

KEY_A = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
KEY_B = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"


def test_a_remote_takes_jobs_up_to_its_credit_and_gets_room_back_when_done() -> None:
    pool = RemotePool()
    assert pool.hello(b"a", KEY_A, now_ms=0)
    assert pool.room(b"a") == wire.CREDIT_PER_REMOTE
    for _ in range(wire.CREDIT_PER_REMOTE):
        pool.took(b"a")
    assert pool.room(b"a") == 0
    pool.done(b"a", 3, now_ms=10)
    assert pool.room(b"a") == 3
    pool.done(b"a", 100, now_ms=10)                 # never more room than its credit
    assert pool.room(b"a") == wire.CREDIT_PER_REMOTE
    assert pool.room(b"stranger") == 0


def test_a_silent_remote_is_forgotten_with_the_jobs_it_held() -> None:
    pool = RemotePool(silence_ms=4000)
    pool.hello(b"a", KEY_A, now_ms=0)
    pool.hello(b"b", KEY_B, now_ms=0)
    for _ in range(5):
        pool.took(b"a")
    pool.heard(b"b", now_ms=3000)
    assert pool.expire(now_ms=4000) == []               # not yet
    gone = pool.expire(now_ms=4001)
    assert [r.identity for r in gone] == [b"a"] and gone[0].held == 5
    assert (len(pool), pool.gone, pool.jobs_lost_with_remotes) == (1, 1, 5)
    assert pool.room(b"a") == 0                          # nothing more goes to it


def test_a_second_hello_starts_the_remote_afresh_and_counts_what_it_held() -> None:
    pool = RemotePool()
    pool.hello(b"a", KEY_A, now_ms=0)
    pool.took(b"a")
    pool.took(b"a")
    assert pool.hello(b"a", KEY_A, now_ms=5)
    assert pool.room(b"a") == wire.CREDIT_PER_REMOTE and pool.jobs_lost_with_remotes == 2


def test_the_table_of_remotes_is_bounded() -> None:
    pool = RemotePool()
    for n in range(wire.MAX_REMOTES):
        assert pool.hello(n.to_bytes(4, "big"), KEY_A, now_ms=0)
    assert not pool.hello(b"one too many", KEY_A, now_ms=0)
    assert pool.refused_hellos == 1 and len(pool) == wire.MAX_REMOTES


def test_done_and_welcome_messages_read_back() -> None:
    results = [(wire.TO_GATEWAY, b"deliver"), (wire.TO_ROUTER, b"signed")]
    assert wire.read_done(wire.done_message(1, results)) == (1, results)
    assert wire.read_welcome(wire.welcome_message(b"DER", 8)) == (b"DER", 8)


@pytest.mark.parametrize("parts", [
    [b"DONE"],                                  # no count
    [b"DONE", b"x"],                            # count not a number
    [b"DONE", b"1", b"g"],                      # a destination without its message
    [b"DONE", b"1", b"store", b"data"],         # nowhere we forward to
    [b"PING", b"1"],
])
def test_bad_done_messages_are_refused(parts) -> None:
    with pytest.raises(wire.BadMessage):
        wire.read_done(parts)


def test_a_welcome_of_another_version_is_refused() -> None:
    with pytest.raises(wire.BadMessage, match="speaks"):
        wire.read_welcome([wire.WELCOME, b"socp-remote-verifier/0", b"DER", b"8"])


def test_results_leave_grouped_by_destination_in_order() -> None:
    results = [(b"g", b"1"), (b"g", b"2"), (b"r", b"3"), (b"g", b"4")]
    assert wire.group_by_destination(results) == [(b"g", [b"1", b"2"]), (b"r", [b"3"]), (b"g", [b"4"])]


def test_allowed_keys_file_with_comments_and_a_bad_line() -> None:
    key_with_hash = "#" + KEY_B[1:]                                  # '#' is a Z85 character
    text = f"# verifiers\n{KEY_A}  # host a\n\n  {key_with_hash}\n#{KEY_B}\n"   # the last one commented out
    assert parse_allowed(text) == {KEY_A, key_with_hash}
    with pytest.raises(CurveKeyError, match="line 2"):
        parse_allowed(f"{KEY_A}\nnot-a-key\n")
    with pytest.raises(CurveKeyError):
        check_key(KEY_A[:-1])


def test_allowed_keys_are_read_again_when_the_file_changes(tmp_path) -> None:
    allowed = AllowedKeys(tmp_path / ALLOWED_FILE)
    assert not allowed.allows(KEY_A) and "does not exist" in allowed.problem
    (tmp_path / ALLOWED_FILE).write_text(KEY_A + "\n")
    assert allowed.allows(KEY_A) and not allowed.allows(KEY_B)
    (tmp_path / ALLOWED_FILE).write_text(KEY_B + "\n# and a comment to change the size\n")
    assert allowed.allows(KEY_B) and not allowed.allows(KEY_A)
    (tmp_path / ALLOWED_FILE).write_text("garbage\n")
    assert not allowed.allows(KEY_B) and "no verifier may join" in allowed.problem


def test_a_key_pair_is_made_once_with_a_private_secret(tmp_path) -> None:
    made, created = load_or_create_keypair(tmp_path / "v")
    again, created_again = load_or_create_keypair(tmp_path / "v")
    assert created and not created_again and made == again
    check_key(made.public)
    assert os.stat(tmp_path / "v" / "verifier_curve.key").st_mode & 0o077 == 0
