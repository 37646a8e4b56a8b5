"""Core/echo (RFC 8620 §4) and the core capability object."""

from __future__ import annotations

from typing import Any

from .context import CORE, CallContext, CoreLimits
from .registry import Method, Registry


def echo(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    # RFC 8620 §4: "returns exactly the same arguments as it is given".
    return args


def register(registry: Registry, limits: CoreLimits) -> None:
    registry.add_capability(CORE, limits.to_capability())
    registry.add(Method("Core/echo", CORE, echo, account_bound=False))
