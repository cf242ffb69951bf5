"""The plan of a batch of remote bindings (socp/store/remote_bindings.py): pure."""

from __future__ import annotations

import json

from socp.store.records import BindResult, RemoteBinding
from socp.store.remote_bindings import Insert, Rotate, UpdateMeta, plan


def _with_text(*bindings: RemoteBinding) -> list[tuple[RemoteBinding, str]]:
    return [(binding, json.dumps(binding.meta)) for binding in bindings]


def test_new_users_are_inserted_in_order() -> None:
    decided = plan({}, _with_text(RemoteBinding("u1", "k1", "s", {}), RemoteBinding("u2", "k2", "s", {"a": 1})))
    assert decided.results == [BindResult.BOUND, BindResult.BOUND]
    assert decided.steps == [Insert("u1", "k1", "{}", "s"), Insert("u2", "k2", '{"a": 1}', "s")]


def test_a_user_registered_here_is_never_written() -> None:
    stored = {"local": ("k", "{}", None)}
    decided = plan(stored, _with_text(RemoteBinding("local", "k", "s", {"x": 1}),
                                      RemoteBinding("local", "evil", "s", {})))
    assert decided.results == [BindResult.SAME, BindResult.CONFLICT]
    assert decided.steps == []


def test_a_later_binding_sees_what_an_earlier_one_decided() -> None:
    decided = plan({}, _with_text(RemoteBinding("u", "k1", "s", {}),
                                  RemoteBinding("u", "k1", "s", {}),       # the same again: nothing to write
                                  RemoteBinding("u", "k2", "s", {}),       # the home server rotated the key
                                  RemoteBinding("u", "k2", "t", {"n": 1})))  # moved, new meta
    assert decided.results == [BindResult.BOUND, BindResult.SAME, BindResult.ROTATED, BindResult.SAME]
    assert decided.steps == [Insert("u", "k1", "{}", "s"), Rotate("u", "k2", "{}", "s"),
                             UpdateMeta("u", '{"n": 1}', "t")]


def test_unchanged_meta_is_compared_as_json_not_as_text() -> None:
    stored = {"u": ("k", '{"b":2,"a":1}', "s")}
    decided = plan(stored, _with_text(RemoteBinding("u", "k", "s", {"a": 1, "b": 2})))
    assert decided.results == [BindResult.SAME]
    assert decided.steps == []


def test_the_stored_rows_are_left_as_they_were() -> None:
    stored = {"u": ("k", "{}", "s")}
    plan(stored, _with_text(RemoteBinding("u", "k2", "s", {})))
    assert stored == {"u": ("k", "{}", "s")}
