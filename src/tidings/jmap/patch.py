"""PatchObject application (RFC 8620 §5.3, the `update` argument of /set)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .errors import SetError


def _tokens(path: str) -> list[str]:
    # Keys are JSON Pointers with an implicit leading "/" (RFC 6901 escaping applies).
    return [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")]


def apply_patch(
    current: dict[str, Any], patch: dict[str, Any], default_of: Callable[[str], Any]
) -> tuple[dict[str, Any], set[str]]:
    """Return the patched object and the top-level properties the patch touched.

    `default_of(prop)` gives a top-level property's default, or raises KeyError if it has none; a
    `null` value resets to that default or removes the member.
    """
    # §5.3: no pointer may be a prefix of another (e.g. "alerts" and "alerts/1/offset"). Compared
    # token by token: sorting the strings misses "a" vs "a/b" when "a!x" sorts between them.
    pointers = {tuple(_tokens(path)): path for path in patch}
    for pointer, path in pointers.items():
        for end in range(1, len(pointer)):
            prefix = pointers.get(pointer[:end])
            if prefix is not None:
                raise SetError("invalidPatch", f"Patch paths '{prefix}' and '{path}' overlap.")
    patched = copy.deepcopy(current)
    touched: set[str] = set()
    for path, value in patch.items():
        tokens = _tokens(path)
        if tokens[0] == "":
            raise SetError("invalidPatch", f"Patch path '{path}' is empty.")
        touched.add(tokens[0])
        parent: Any = patched
        for depth, token in enumerate(tokens[:-1]):
            if isinstance(parent, list):
                raise SetError("invalidPatch", f"Patch path '{path}' points inside an array.")
            if not isinstance(parent, dict) or token not in parent or parent[token] is None:
                # §5.3: all parts prior to the last must already exist on the object being patched.
                raise SetError("invalidPatch", f"'{'/'.join(tokens[: depth + 1])}' does not exist.")
            parent = parent[token]
        last = tokens[-1]
        if isinstance(parent, list):
            raise SetError("invalidPatch", f"Patch path '{path}' points inside an array.")
        if not isinstance(parent, dict):
            raise SetError("invalidPatch", f"Patch path '{path}' does not name a member of an object.")
        if value is None:
            if len(tokens) == 1:
                try:
                    parent[last] = copy.deepcopy(default_of(last))
                    continue
                except KeyError:
                    pass
            parent.pop(last, None)
        else:
            parent[last] = value
    return patched, touched
