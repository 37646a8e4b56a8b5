"""Result references (RFC 8620 §3.7): `#arg` arguments resolved against earlier responses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import MethodError, invalid_arguments


class _PointerError(Exception):
    pass


def _unescape(token: str) -> str:
    # RFC 6901 §4: ~1 before ~0, so that "~01" becomes "~1".
    return token.replace("~1", "/").replace("~0", "~")


def evaluate_pointer(document: Any, path: str) -> Any:
    """JSON Pointer (RFC 6901) plus the `*` array wildcard of RFC 8620 §3.7."""
    if path == "":
        return document
    if not path.startswith("/"):
        raise _PointerError("path must start with '/'")
    return _walk(document, [_unescape(t) for t in path[1:].split("/")])


def _walk(value: Any, tokens: Sequence[str]) -> Any:
    for position, token in enumerate(tokens):
        if isinstance(value, list):
            if token == "*":
                rest = tokens[position + 1 :]
                out: list[Any] = []
                for item in value:
                    result = _walk(item, rest)
                    # RFC 8620 §3.7: arrays produced by the rest of the path are flattened.
                    if isinstance(result, list):
                        out.extend(result)
                    else:
                        out.append(result)
                return out
            if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
                raise _PointerError(f"'{token}' is not an array index")
            index = int(token)
            if index >= len(value):
                raise _PointerError(f"index {index} is out of range")
            value = value[index]
        elif isinstance(value, dict):
            if token not in value:
                raise _PointerError(f"'{token}' does not exist")
            value = value[token]
        else:
            raise _PointerError(f"cannot descend into a {type(value).__name__} with '{token}'")
    return value


def resolve_references(
    arguments: dict[str, Any], responses: Sequence[tuple[str, dict[str, Any], str]]
) -> dict[str, Any]:
    """Return the arguments with every `#name` replaced by the value it refers to."""
    if not any(key.startswith("#") for key in arguments):
        return arguments
    resolved: dict[str, Any] = {}
    for key, value in arguments.items():
        if not key.startswith("#"):
            resolved[key] = value
            continue
        name = key[1:]
        if name in arguments:
            raise invalid_arguments(f"'{name}' is given both directly and as a result reference.")
        resolved[name] = _resolve_one(value, responses)
    return resolved


def _resolve_one(reference: Any, responses: Sequence[tuple[str, dict[str, Any], str]]) -> Any:
    if (
        not isinstance(reference, dict)
        or not isinstance(reference.get("resultOf"), str)
        or not isinstance(reference.get("name"), str)
        or not isinstance(reference.get("path"), str)
    ):
        raise MethodError("invalidResultReference", "A ResultReference needs resultOf, name and path strings.")
    for response_name, response_args, call_id in responses:
        if call_id != reference["resultOf"]:
            continue
        # Only the first response with that call id counts (step 1), and its name must match (step 2).
        if response_name != reference["name"]:
            raise MethodError(
                "invalidResultReference",
                f"The response to '{call_id}' is '{response_name}', not '{reference['name']}'.",
            )
        try:
            return evaluate_pointer(response_args, reference["path"])
        except _PointerError as exc:
            raise MethodError("invalidResultReference", f"Path '{reference['path']}': {exc}.") from None
    raise MethodError("invalidResultReference", f"No earlier response has call id '{reference['resultOf']}'.")
