"""The method table: each JMAP method as data (name, capability, handler, whether it writes).

The dispatcher reads this table to check `using`, resolve the account and choose whether the account
must be writable, so adding a data type touches only the module that registers its methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .context import CallContext

Handler = Callable[[CallContext, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Method:
    name: str
    capability: str
    handler: Handler
    writes: bool = False
    # Most methods act on one account named by `accountId`; a few (Core/echo, PushSubscription/*)
    # are not bound to an account.
    account_bound: bool = True
    # The capability the account must have, when it differs from the method's (e.g. Blob/copy).
    account_capability: str | None = None


class Registry:
    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}
        # Capabilities advertised in the Session (RFC 8620 §2), and per account (accountCapabilities).
        self.capabilities: dict[str, dict[str, Any]] = {}
        self.account_capabilities: dict[str, dict[str, Any]] = {}

    def add(self, method: Method) -> None:
        if method.name in self._methods:
            raise ValueError(f"method {method.name} registered twice")
        self._methods[method.name] = method

    def add_capability(
        self, name: str, value: dict[str, Any], account_value: dict[str, Any] | None = None
    ) -> None:
        self.capabilities[name] = value
        if account_value is not None:
            self.account_capabilities[name] = account_value

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def names(self) -> list[str]:
        return sorted(self._methods)
