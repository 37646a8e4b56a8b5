"""Running requests through the engine in memory (no HTTP, no SQLite)."""

from __future__ import annotations

from typing import Any

from tidings.jmap.context import CORE, CoreLimits
from tidings.jmap.dispatch import process_request
from tidings.jmap.request import parse_request, request_from_json

from .memory import TODO, Services, principal, registry_with_todo

USING = [CORE, TODO]


class Engine:
    def __init__(self, limits: CoreLimits | None = None) -> None:
        self.registry = registry_with_todo()
        self.services = Services()
        self.limits = limits or CoreLimits()
        self.principal = principal()

    def request(self, calls: list[list[Any]], using: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        request = request_from_json({"using": USING if using is None else using, "methodCalls": calls, **extra})
        outcome = process_request(request, self.principal, self.registry, self.limits, self.services, lambda: "s0")
        return outcome.response

    def raw(self, body: bytes) -> dict[str, Any]:
        outcome = process_request(
            parse_request(body), self.principal, self.registry, self.limits, self.services, lambda: "s0"
        )
        return outcome.response

    def call(self, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        out = self.request([[name, {"accountId": "a1", **args}, "c"]])["methodResponses"]
        assert len(out) == 1
        return out[0][0], out[0][1]

    def ok(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        out_name, out = self.call(name, args)
        assert out_name == name, out
        return out

    def error(self, name: str, args: dict[str, Any]) -> str:
        out_name, out = self.call(name, args)
        assert out_name == "error", out
        return str(out["type"])

    def create(self, **todo: Any) -> str:
        out = self.ok("Todo/set", {"create": {"k": todo}})
        assert out["created"], out
        return str(out["created"]["k"]["id"])
