"""Who is calling, with what, on which account: the context every method handler receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import MethodError

CORE = "urn:ietf:params:jmap:core"


@dataclass(frozen=True)
class CoreLimits:
    """The limits of the core capability (RFC 8620 §2); the server enforces each one it advertises."""

    max_size_upload: int = 50_000_000
    max_concurrent_upload: int = 4
    max_size_request: int = 10_000_000
    max_concurrent_requests: int = 8
    max_calls_in_request: int = 64
    max_objects_in_get: int = 1000
    max_objects_in_set: int = 1000
    collation_algorithms: tuple[str, ...] = ("i;ascii-casemap", "i;ascii-numeric", "i;unicode-casemap")

    def to_capability(self) -> dict[str, Any]:
        return {
            "maxSizeUpload": self.max_size_upload,
            "maxConcurrentUpload": self.max_concurrent_upload,
            "maxSizeRequest": self.max_size_request,
            "maxConcurrentRequests": self.max_concurrent_requests,
            "maxCallsInRequest": self.max_calls_in_request,
            "maxObjectsInGet": self.max_objects_in_get,
            "maxObjectsInSet": self.max_objects_in_set,
            "collationAlgorithms": list(self.collation_algorithms),
        }


@dataclass(frozen=True)
class Account:
    """An account as the session describes it (RFC 8620 §2 Account object)."""

    id: str
    name: str
    is_personal: bool
    is_read_only: bool
    capabilities: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Principal:
    """The authenticated user, the accounts they may use, and which credential they authenticated with.

    `credential` names the credential without holding it (e.g. "token:<digest>"); RFC 8620 §7.2 ties
    push subscriptions to it. Empty when the caller did not authenticate with a credential of the
    directory (then nothing can be tied to it).
    """

    user_id: int
    username: str
    accounts: dict[str, Account]
    primary_accounts: dict[str, str]
    credential: str = ""


@dataclass
class CallContext:
    """One method call being processed. `services` is the composition root's bag of features."""

    principal: Principal
    using: frozenset[str]
    created_ids: dict[str, str]
    limits: CoreLimits
    services: Any
    call_id: str = ""
    method: str = ""
    account: Account | None = None
    # Further responses a method makes (e.g. the implicit /set of /copy's onSuccessDestroyOriginal).
    extra_responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def account_id(self) -> str:
        if self.account is None:
            raise MethodError("serverFail", "This method is not bound to an account.")
        return self.account.id

    def lookup_account(self, account_id: Any, capability: str, *, writing: bool = False) -> Account:
        """RFC 8620 §3.6.2 accountNotFound / accountNotSupportedByMethod / accountReadOnly."""
        if not isinstance(account_id, str):
            raise MethodError("invalidArguments", "'accountId' must be a string.")
        account = self.principal.accounts.get(account_id)
        if account is None:
            raise MethodError("accountNotFound", f"No account '{account_id}' is available to you.")
        # The core capability is never listed in accountCapabilities (RFC 8620 §2: it holds the
        # capabilities "for the methods supported in this account" beyond core), yet every account
        # supports the core methods such as Blob/copy.
        if capability != CORE and capability not in account.capabilities:
            raise MethodError("accountNotSupportedByMethod", f"Account '{account_id}' does not support {capability}.")
        if writing and account.is_read_only:
            raise MethodError("accountReadOnly", f"Account '{account_id}' is read-only.")
        return account

    def resolve_creation_id(self, value: str) -> str | None:
        """`#creationId` to the real id created earlier in this request (RFC 8620 §5.3), else the id."""
        if value.startswith("#"):
            return self.created_ids.get(value[1:])
        return value
