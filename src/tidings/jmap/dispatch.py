"""Processing a Request (RFC 8620 §3.3–3.7): method calls in order, each with its own errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .context import CORE, CallContext, CoreLimits, Principal
from .errors import MethodError, RequestError
from .references import resolve_references
from .registry import Registry
from .request import Request

log = logging.getLogger("tidings.jmap")


@dataclass
class Outcome:
    """The Response object plus what the transport logs about it."""

    response: dict[str, Any]
    methods: list[str] = field(default_factory=list)


def check_request(request: Request, registry: Registry, limits: CoreLimits) -> None:
    """Request-level checks made before any method runs (RFC 8620 §3.6.1)."""
    for capability in request.using:
        if capability not in registry.capabilities:
            raise RequestError(
                "unknownCapability",
                f"The request used capability '{capability}', which is not supported by this server.",
            )
    if len(request.method_calls) > limits.max_calls_in_request:
        raise RequestError(
            "limit",
            f"The request has {len(request.method_calls)} method calls; the limit is "
            f"{limits.max_calls_in_request}.",
            limit="maxCallsInRequest",
        )


def process_request(
    request: Request,
    principal: Principal,
    registry: Registry,
    limits: CoreLimits,
    services: Any,
    session_state: Callable[[], str],
) -> Outcome:
    check_request(request, registry, limits)
    using = frozenset(request.using)
    created_ids = dict(request.created_ids or {})
    responses: list[tuple[str, dict[str, Any], str]] = []
    methods: list[str] = []
    for call in request.method_calls:
        methods.append(call.name)
        context = CallContext(
            principal=principal,
            using=using,
            created_ids=created_ids,
            limits=limits,
            services=services,
            call_id=call.call_id,
            method=call.name,
        )
        try:
            result = run_call(context, registry, call.name, call.arguments, responses)
        except MethodError as error:
            responses.append(("error", error.to_json(), call.call_id))
            continue
        responses.append((call.name, result, call.call_id))
        for name, arguments in context.extra_responses:
            responses.append((name, arguments, call.call_id))
    response: dict[str, Any] = {
        "methodResponses": [[name, args, call_id] for name, args, call_id in responses],
        "sessionState": session_state(),
    }
    if request.created_ids is not None:
        response["createdIds"] = created_ids
    return Outcome(response, methods)


def run_call(
    context: CallContext,
    registry: Registry,
    name: str,
    arguments: dict[str, Any],
    responses: list[tuple[str, dict[str, Any], str]],
) -> dict[str, Any]:
    method = registry.get(name)
    # RFC 8620 §3.3: a method of a capability not listed in `using` is not known to this request.
    if method is None or method.capability not in context.using:
        raise MethodError("unknownMethod", f"Unknown method '{name}'.")
    try:
        # Reference resolution is inside the guard too: whatever a client sends, a failure here is a
        # method error, never an HTTP 500 (RFC 8620 §3.6.2).
        arguments = resolve_references(arguments, responses)
        if method.account_bound:
            if "accountId" not in arguments:
                raise MethodError("invalidArguments", "'accountId' is required.")
            context.account = context.lookup_account(
                arguments["accountId"], method.account_capability or method.capability, writing=method.writes
            )
        return method.handler(context, arguments)
    except MethodError:
        raise
    except RecursionError:
        raise MethodError("invalidArguments", "The arguments are nested too deeply.") from None
    except Exception:
        # RFC 8620 §3.6.2 serverFail: nothing changed (writes roll back on the way out); the details
        # go to the log, never to the client.
        log.exception("method %s failed", name)
        raise MethodError("serverFail", "An unexpected error occurred; it has been logged.") from None


__all__ = ["CORE", "Outcome", "check_request", "process_request", "run_call"]
