"""PushSubscription (RFC 8620 §7.2): /get and /set, not bound to an account, and push URL checks.

A subscription belongs to the credential that created it (the Principal's credential id): only
requests made with that same credential see, update or destroy it, and revoking the credential
destroys it (store/base.py `Directory`). /get never returns `url` or `keys`
(§7.2.1); /set creates, updates (only verificationCode, expires and types: deviceClientId, url and keys
are immutable, §7.2.2) and destroys. A new subscription is sent a PushVerification at once, and no
StateChange until the client has set the code it carried.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..jmap.context import CORE, CallContext
from ..jmap.errors import MethodError, SetError, invalid_properties
from ..jmap.methods import DataType, standard_get, standard_set
from ..jmap.properties import Prop, PropertyTable
from ..jmap.registry import Method, Registry
from ..jmap.types import is_string, is_utc_date, nullable, parse_date
from ..store.base import PushSubscriptionRow, PushSubscriptions, Store
from .webpush import valid_subscription_keys

# §7.2: with credentials that do not expire (Basic, bearer tokens) the server limits the expiry; the
# maximum "MUST be at least 48 hours in the future and SHOULD be at least 7 days".
MAX_EXPIRY = 7 * 24 * 3600
MAX_SUBSCRIPTIONS_PER_USER = 50
MAX_URL_LENGTH = 2048
MAX_DEVICE_CLIENT_ID = 255
PRIVATE_PROPERTIES = ("url", "keys")  # §7.2.1: never returned

Resolver = Callable[[str, int], Iterable[str]]
Verifier = Callable[[int, str], None]


def _keys(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"p256dh", "auth"}
        and all(isinstance(v, str) for v in value.values())
        and valid_subscription_keys(value["p256dh"], value["auth"])
    )


def _types(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(t, str) and 0 < len(t) <= 255 for t in value)


def _device_client_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_DEVICE_CLIENT_ID


PROPERTIES = PropertyTable(
    [
        Prop("id", server_set=True, immutable=True),
        Prop("deviceClientId", _device_client_id, immutable=True),
        Prop("url", is_string, immutable=True),
        Prop("keys", nullable(_keys), immutable=True, default=None),
        Prop("verificationCode", nullable(is_string), default=None),
        Prop("expires", nullable(is_utc_date), default=None),
        Prop("types", nullable(_types), default=None),
    ]
)


def utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # Loopback, private (RFC 1918, ULA), link-local, shared (RFC 6598), reserved: none is "global".
    return ip.is_global and not ip.is_multicast


def push_url_problem(url: str, *, allow_insecure: bool, server_hosts: frozenset[str], resolve: Resolver) -> str | None:
    """Why the server will not POST to this URL, or None when it will (RFC 8620 §7.2, §8.6)."""
    if len(url) > MAX_URL_LENGTH:
        return f"The URL is longer than {MAX_URL_LENGTH} characters."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "The URL does not parse."
    # §7.2: the URL "MUST begin with https://" (plain http only for tests and development).
    schemes = ("https", "http") if allow_insecure else ("https",)
    if parts.scheme not in schemes:
        return "The URL must begin with https://."
    host = parts.hostname
    if not host:
        return "The URL has no host."
    if parts.username is not None or parts.password is not None:
        return "The URL must not contain credentials."
    if allow_insecure:
        return None
    # §8.6: the server must not be turned against itself or the network it sits in.
    name = host.lower().rstrip(".")
    if name in server_hosts or name == "localhost" or name.endswith(".localhost"):
        return "The URL points at this server."
    try:
        addresses = list(resolve(host, port or 443))
    except (OSError, UnicodeError):
        return "The URL's host does not resolve."
    if not addresses:
        return "The URL's host does not resolve."
    if not all(address_is_public(a) for a in addresses):
        return "The URL points at a loopback, private or otherwise non-public address."
    return None


class PushSubscriptionType(DataType):
    name = "PushSubscription"
    capability = CORE
    properties = PROPERTIES
    default_get_properties = tuple(p for p in PROPERTIES.names() if p not in PRIVATE_PROPERTIES)
    account_bound = False

    def __init__(
        self,
        store: Store,
        *,
        allow_insecure: bool,
        server_hosts: Iterable[str],
        resolve: Resolver = default_resolver,
        max_expiry: int = MAX_EXPIRY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.allow_insecure = allow_insecure
        self.server_hosts = frozenset(h.lower().rstrip(".") for h in server_hosts if h) | {"localhost"}
        self.resolve = resolve
        self.max_expiry = max_expiry
        self.clock = clock
        # Called after a create commits (the Web Push sender POSTs the PushVerification).
        self.on_created: Verifier | None = None

    def storage(self, ctx: CallContext, *, write: bool) -> AbstractContextManager[PushSubscriptions]:
        return self.store.push(write=write)

    def _now(self) -> int:
        return int(self.clock())

    def _to_json(self, row: PushSubscriptionRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "deviceClientId": row.device_client_id,
            "url": row.url,
            "keys": {"p256dh": row.p256dh, "auth": row.auth} if row.p256dh and row.auth else None,
            # The code is the client's to set: until it has, the subscription shows none (§7.2.2).
            "verificationCode": row.verification_code if row.verified else None,
            "expires": utc_date(row.expires_at),
            "types": row.types,
        }

    def _own(self, ctx: CallContext, tx: Any, obj_id: str) -> PushSubscriptionRow | None:
        """The subscription if this request's credential created it. §7.2: "The push subscription is
        tied to the credentials used to authenticate the API request that created it": to any other
        credential, even the same user's, it does not exist (notFound)."""
        row: PushSubscriptionRow | None = tx.get(ctx.principal.user_id, obj_id, self._now())
        if row is None or not ctx.principal.credential or row.credential != ctx.principal.credential:
            return None
        return row

    # -- /get

    def load(
        self, ctx: CallContext, tx: Any, ids: Sequence[str] | None, properties: set[str]
    ) -> Iterable[dict[str, Any]]:
        # §7.2.1: "The server MUST only return push subscriptions that were created using the same
        # authentication credentials as for this PushSubscription/get request."
        credential = ctx.principal.credential
        rows: list[PushSubscriptionRow] = [
            r for r in tx.of_user(ctx.principal.user_id, self._now()) if credential and r.credential == credential
        ]
        if ids is not None:
            wanted = set(ids)
            rows = [r for r in rows if r.id in wanted]
        return [self._to_json(r) for r in rows]

    def load_for_update(self, ctx: CallContext, tx: Any, obj_id: str, touched: set[str]) -> dict[str, Any] | None:
        row = self._own(ctx, tx, obj_id)
        return self._to_json(row) if row else None

    # -- /set

    def _expiry(self, requested: str | None) -> int:
        """§7.2: the server sets an expiry when none is given and shortens one too far ahead."""
        now = self._now()
        latest = now + self.max_expiry
        if requested is None:
            return latest
        parsed = parse_date(requested)
        if parsed is None:
            raise invalid_properties("expires", description="Not a UTCDate.")
        wanted = int(parsed.timestamp())
        if wanted <= now:
            raise invalid_properties("expires", description="The expiry is in the past.")
        return min(wanted, latest)

    def create(self, ctx: CallContext, tx: Any, obj: dict[str, Any]) -> dict[str, Any]:
        missing = [p for p in ("deviceClientId", "url") if p not in obj]
        if missing:
            raise invalid_properties(*missing, description="Required properties are missing.")
        if obj.get("verificationCode") is not None:
            # §7.2: verificationCode "MUST be null (or omitted) when the subscription is created".
            raise invalid_properties("verificationCode", description="Must be null on create.")
        problem = push_url_problem(
            obj["url"], allow_insecure=self.allow_insecure, server_hosts=self.server_hosts, resolve=self.resolve
        )
        if problem:
            raise invalid_properties("url", description=problem)
        user_id = ctx.principal.user_id
        credential = ctx.principal.credential
        # A connection authenticated before its credential was revoked (a WebSocket) must not tie a
        # new subscription to it: revocation has already destroyed that credential's, and would never
        # come again for this one. Checked in this write, which revocation cannot interleave with.
        if not credential or not tx.credential_is_live(user_id, credential):
            raise SetError("forbidden", "The credentials of this request are no longer valid.")
        if tx.count(user_id) >= MAX_SUBSCRIPTIONS_PER_USER:
            raise SetError("overQuota", f"At most {MAX_SUBSCRIPTIONS_PER_USER} push subscriptions per user.")
        keys = obj.get("keys")
        row = PushSubscriptionRow(
            id="P" + secrets.token_urlsafe(18),
            user_id=user_id,
            credential=credential,
            device_client_id=obj["deviceClientId"],
            url=obj["url"],
            p256dh=keys["p256dh"] if keys else None,
            auth=keys["auth"] if keys else None,
            # §7.2.2: "sufficient entropy to avoid the client being able to guess the code".
            verification_code=secrets.token_hex(16),
            verified=False,
            expires_at=self._expiry(obj.get("expires")),
            types=obj.get("types"),
        )
        tx.insert(row, self._now())
        return {"id": row.id, "expires": utc_date(row.expires_at)}

    def update(
        self,
        ctx: CallContext,
        tx: Any,
        obj_id: str,
        current: dict[str, Any],
        new: dict[str, Any],
        changed: set[str],
    ) -> dict[str, Any] | None:
        row = self._own(ctx, tx, obj_id)
        if row is None:
            raise SetError("notFound", "No such push subscription.")
        fields: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        if "verificationCode" in changed:
            code = new.get("verificationCode")
            # §7.2.2: "an invalid verification code MUST be rejected ... with an invalidProperties SetError".
            if not isinstance(code, str) or not hmac.compare_digest(code.encode(), row.verification_code.encode()):
                raise invalid_properties("verificationCode", description="The verification code is not correct.")
            fields["verified"] = True
        if "expires" in changed:
            expires_at = self._expiry(new.get("expires"))
            fields["expires_at"] = expires_at
            if utc_date(expires_at) != new.get("expires"):
                extra["expires"] = utc_date(expires_at)  # §5.3: changed beyond what was asked
        if "types" in changed:
            fields["types"] = new.get("types")
        tx.update(obj_id, fields)
        return extra or None

    def destroy(self, ctx: CallContext, tx: Any, obj_id: str, args: dict[str, Any]) -> None:
        if self._own(ctx, tx, obj_id) is None:
            raise SetError("notFound", "No such push subscription.")
        tx.delete(obj_id)


def register(registry: Registry, subscriptions: PushSubscriptionType) -> None:
    def get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        requested = args.get("properties")
        if isinstance(requested, list) and any(p in PRIVATE_PROPERTIES for p in requested):
            # §7.2.1: asking for url or keys "MUST be rejected with a forbidden error".
            raise MethodError("forbidden", "The url and keys of a push subscription are never returned.")
        return standard_get(ctx, subscriptions, args)

    def set_(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        result = standard_set(ctx, subscriptions, args)
        # After the commit: the PushVerification goes out now (§7.2.2, "immediately").
        if result.get("created") and subscriptions.on_created is not None:
            for created in result["created"].values():
                subscriptions.on_created(ctx.principal.user_id, created["id"])
        return result

    registry.add(Method("PushSubscription/get", CORE, get, account_bound=False))
    registry.add(Method("PushSubscription/set", CORE, set_, writes=True, account_bound=False))
