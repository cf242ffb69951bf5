"""The actor message codec (socp/ipc/codec.py): a field added later has a default, and
a message without it, from an actor of the previous release, still unpacks."""

from __future__ import annotations

import msgpack
import pytest

from socp.ipc import messages as m
from socp.ipc.codec import WIRE_VERSION


def test_link_opened_without_an_address_is_a_dialled_link() -> None:
    old = msgpack.packb([WIRE_VERSION, m.LinkOpened.KIND, 7, 0])
    assert m.unpack(old) == m.LinkOpened(7, 0, "")
    assert m.unpack(m.pack(m.LinkOpened(7, 0, "192.0.2.1"))) == m.LinkOpened(7, 0, "192.0.2.1")


def test_required_fields_are_still_required_and_typed() -> None:
    with pytest.raises(m.MalformedFrame, match="has 1 fields, expected 2 to 3"):
        m.unpack(msgpack.packb([WIRE_VERSION, m.LinkOpened.KIND, 7]))
    with pytest.raises(m.MalformedFrame, match="has 4 fields, expected 2 to 3"):
        m.unpack(msgpack.packb([WIRE_VERSION, m.LinkOpened.KIND, 7, 0, "a", "extra"]))
    with pytest.raises(m.MalformedFrame, match="address has type int"):
        m.unpack(msgpack.packb([WIRE_VERSION, m.LinkOpened.KIND, 7, 0, 5]))


def test_the_new_messages_round_trip() -> None:
    for message in (m.DirectoryQuery(-3, "u"), m.DirectoryMiss(-3, "no key known for user u"),
                    m.StoreStatus("unavailable", "refused", 1_700_000_000_000, 2)):
        assert m.unpack(m.pack(message)) == message
    assert m.is_query(-1) and not m.is_query(1)


def test_frames_written_round_trips_and_is_typed() -> None:
    report = m.FramesWritten([[2**40 + 7, 4096], [3, 0]])
    assert m.unpack(m.pack(report)) == report
    with pytest.raises(m.MalformedFrame, match="counts has type dict"):
        m.unpack(msgpack.packb([WIRE_VERSION, m.FramesWritten.KIND, {"a": 1}]))


def test_checks_failed_round_trips_and_is_typed() -> None:
    report = m.ChecksFailed([[7, 3], [2**39, 1]])
    assert m.unpack(m.pack(report)) == report
    with pytest.raises(m.MalformedFrame, match="counts has type str"):
        m.unpack(msgpack.packb([WIRE_VERSION, m.ChecksFailed.KIND, "7"]))
