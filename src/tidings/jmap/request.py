"""Parsing the Request object of RFC 8620 §3.3 from the bytes of an HTTP (or WebSocket) body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import RequestError

# I-JSON (RFC 7493 §2.2): integers beyond this cannot be represented exactly by every peer.
MAX_SAFE_INTEGER = 2**53 - 1
# RFC 8259 §9 lets a parser limit the depth of nesting. Ours must be well below the depth the
# response encoder can write back (an echoed argument is as deep in the response as in the request).
MAX_DEPTH = 128


@dataclass(frozen=True)
class Invocation:
    """RFC 8620 §3.2: [name, arguments, method call id]."""

    name: str
    arguments: dict[str, Any]
    call_id: str


@dataclass
class Request:
    using: list[str]
    method_calls: list[Invocation]
    created_ids: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def decode_json(body: bytes) -> Any:
    """Decode an I-JSON document; anything else is notJSON (RFC 8620 §3.6.1)."""
    try:
        value = orjson.loads(body)
    except (orjson.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestError("notJSON", f"The request did not parse as I-JSON: {exc}") from None
    # Counting brackets is cheap and bounds the depth, so the walk runs only on unusual bodies.
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and nesting_depth(value) > MAX_DEPTH:
        raise RequestError("notJSON", f"The request nests more than {MAX_DEPTH} levels deep.")
    return value


def nesting_depth(value: Any) -> int:
    """How many arrays and objects deep a decoded JSON value goes (iteratively: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def parse_request(body: bytes) -> Request:
    return request_from_json(decode_json(body))


def request_from_json(data: Any) -> Request:
    """Check the type signature of a Request object (RFC 8620 §3.3); a mismatch is notRequest."""
    if not isinstance(data, dict):
        raise RequestError("notRequest", "The request must be a JSON object.")
    using = data.get("using")
    if not isinstance(using, list) or not all(isinstance(c, str) for c in using):
        raise RequestError("notRequest", "'using' must be an array of capability strings.")
    calls = data.get("methodCalls")
    if not isinstance(calls, list):
        raise RequestError("notRequest", "'methodCalls' must be an array of invocations.")
    invocations: list[Invocation] = []
    for index, call in enumerate(calls):
        if (
            not isinstance(call, list)
            or len(call) != 3
            or not isinstance(call[0], str)
            or not isinstance(call[1], dict)
            or not isinstance(call[2], str)
        ):
            raise RequestError(
                "notRequest",
                f"methodCalls[{index}] must be [String name, Object arguments, String callId].",
            )
        invocations.append(Invocation(call[0], call[1], call[2]))
    created_ids = data.get("createdIds")
    if created_ids is not None:
        if not isinstance(created_ids, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in created_ids.items()
        ):
            raise RequestError("notRequest", "'createdIds' must map creation ids to ids.")
        created_ids = dict(created_ids)
    # RFC 8620 §3.3: unknown properties of the Request object are ignored.
    return Request(using=list(using), method_calls=invocations, created_ids=created_ids)
