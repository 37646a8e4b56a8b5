"""JSON Pointer evaluation for result references (RFC 6901, with the `*` of RFC 8620 §3.7)."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.jmap.references import _PointerError, evaluate_pointer

DOC = {
    "list": [{"id": "a", "tags": ["x", "y"]}, {"id": "b", "tags": ["z"]}, {"id": "c", "tags": []}],
    "a/b": 1,
    "m~n": 2,
    "~1": 3,
    "": 4,
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", DOC),
        ("/list/0/id", "a"),
        ("/list/*/id", ["a", "b", "c"]),
        # Arrays produced by the rest of the path are flattened into one.
        ("/list/*/tags", ["x", "y", "z"]),
        ("/list/*/tags/*", ["x", "y", "z"]),
        ("/a~1b", 1),
        ("/m~0n", 2),
        ("/~01", 3),  # "~01" is "~1", not "/" (RFC 6901 §4: ~1 first, then ~0)
        ("/", 4),
    ],
)
def test_pointer_evaluation(path: str, expected: Any) -> None:
    assert evaluate_pointer(DOC, path) == expected


@pytest.mark.parametrize("path", ["list", "/list/3", "/list/01", "/list/-", "/list/x", "/missing", "/list/0/id/x",
                                  "/list/*/missing"])
def test_pointers_that_do_not_resolve_raise(path: str) -> None:
    with pytest.raises(_PointerError):
        evaluate_pointer(DOC, path)


def test_star_on_an_object_is_an_ordinary_key() -> None:
    assert evaluate_pointer({"*": 1}, "/*") == 1
