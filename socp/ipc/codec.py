"""The msgpack wire form shared by every closed set of actor messages.

A message is a frozen dataclass with a class-level `KIND`; on the wire it is the
array `[WIRE_VERSION, KIND, field1, field2, ...]` in field order. Unpacking refuses
oversized input, unknown versions and kinds, a wrong field count and any field whose
outer type does not match its annotation. No pickle, `strict_map_key` on.

A field added to a message later goes at the end, with a default: a message from an
actor of the previous release, which lacks it, unpacks with the default (so actors
restarted one by one keep understanding each other). Fields are never reordered.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, fields
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import msgpack

from socp.protocol.errors import MalformedFrame

WIRE_VERSION = 1


def _accepted_types(annotation: Any) -> tuple[type, ...]:
    """The Python types msgpack may decode into for a field annotation (outer type only)."""
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        return tuple(t for arg in typing.get_args(annotation) for t in _accepted_types(arg))
    if annotation is type(None):
        return (type(None),)
    if annotation is Any:
        return (object,)
    if origin is tuple:
        return (list, tuple)   # msgpack arrays come back as lists
    return (origin or annotation,)


def _type_ok(value: Any, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in accepted:
        return False   # msgpack's true is not an int here
    return isinstance(value, accepted)


class WireMessage(Protocol):
    """A frozen dataclass with a class-level KIND."""
    KIND: ClassVar[int]
    __dataclass_fields__: ClassVar[dict[str, Any]]


M = TypeVar("M", bound=WireMessage)


class Codec(Generic[M]):
    """pack/unpack for one closed set of message classes (M: the union of them)."""

    def __init__(self, name: str, classes: tuple[type[M], ...], max_bytes: int, namespace: dict[str, Any]) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.by_kind: dict[int, type[M]] = {cls.KIND: cls for cls in classes}
        if len(self.by_kind) != len(classes):
            raise ValueError(f"{name}: two message classes share a KIND")
        self.field_names = {cls: tuple(f.name for f in fields(cls)) for cls in classes}
        # How many leading fields a sender must give; the rest have defaults.
        self.required: dict[type[M], int] = {
            cls: sum(1 for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING)
            for cls in classes
        }
        self.field_types = {
            cls: tuple(_accepted_types(typing.get_type_hints(cls, namespace)[n]) for n in self.field_names[cls])
            for cls in classes
        }

    def pack(self, message: M) -> bytes:
        values = [getattr(message, name) for name in self.field_names[type(message)]]
        packed: bytes = msgpack.packb([WIRE_VERSION, message.KIND, *values], use_bin_type=True)
        return packed

    def unpack(self, data: bytes, max_bytes: int | None = None) -> M:
        limit = self.max_bytes if max_bytes is None else max_bytes
        if len(data) > limit:  # unpackb also bounds every string, array and map by len(data)
            raise MalformedFrame(f"{self.name} message too large ({len(data)} bytes)")
        try:
            items = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
        except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise MalformedFrame(f"{self.name} message is not msgpack") from exc
        if not isinstance(items, list) or len(items) < 2 or items[0] != WIRE_VERSION:
            raise MalformedFrame(f"{self.name} message has an unknown version")
        cls = self.by_kind.get(items[1]) if type(items[1]) is int else None
        if cls is None:
            raise MalformedFrame(f"unknown {self.name} message kind {items[1]!r}")
        values = items[2:]
        names = self.field_names[cls]
        required = self.required[cls]
        if not required <= len(values) <= len(names):
            expected = f"{len(names)}" if required == len(names) else f"{required} to {len(names)}"
            raise MalformedFrame(f"{cls.__name__} has {len(values)} fields, expected {expected}")
        for name, value, accepted in zip(names, values, self.field_types[cls], strict=False):
            if not _type_ok(value, accepted):
                raise MalformedFrame(f"{cls.__name__}.{name} has type {type(value).__name__}")
        return cls(*values)
