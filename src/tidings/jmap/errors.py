"""The three error tiers of RFC 8620 §3.6: request-level, method-level and per-record SetErrors.

Each tier is one exception type carrying its own fields; the transports map them to the wire in one
place (request errors to `application/problem+json`, method errors to an `error` invocation, set
errors into notCreated/notUpdated/notDestroyed).
"""

from __future__ import annotations

from typing import Any

PROBLEM_PREFIX = "urn:ietf:params:jmap:error:"


class RequestError(Exception):
    """RFC 8620 §3.6.1: the request as a whole is rejected with an HTTP error and a problem document."""

    def __init__(self, kind: str, detail: str, *, status: int = 400, limit: str | None = None) -> None:
        super().__init__(detail)
        self.kind = kind  # unknownCapability, notJSON, notRequest, limit
        self.detail = detail
        self.status = status
        self.limit = limit

    def to_problem(self) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": PROBLEM_PREFIX + self.kind,
            "status": self.status,
            "detail": self.detail,
        }
        if self.limit is not None:
            problem["limit"] = self.limit
        return problem


class MethodError(Exception):
    """RFC 8620 §3.6.2: one method call fails; the request goes on with the next call."""

    def __init__(self, kind: str, description: str | None = None, **extra: Any) -> None:
        super().__init__(description or kind)
        self.kind = kind
        self.description = description
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        if self.description:
            out["description"] = self.description
        out.update(self.extra)
        return out


def invalid_arguments(description: str) -> MethodError:
    return MethodError("invalidArguments", description)


class SetError(Exception):
    """RFC 8620 §5.3: one create/update/destroy of a /set (or /copy, /import) is rejected."""

    def __init__(
        self,
        kind: str,
        description: str | None = None,
        *,
        properties: list[str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(description or kind)
        self.kind = kind
        self.description = description
        self.properties = properties
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        if self.description:
            out["description"] = self.description
        if self.properties is not None:
            out["properties"] = sorted(set(self.properties))
        out.update(self.extra)
        return out


def invalid_properties(*properties: str, description: str | None = None) -> SetError:
    return SetError("invalidProperties", description, properties=list(properties))
