"""The push feature as the composition root sees it: PushSubscription, Web Push, push tokens.

Also the two session capabilities push adds: `urn:ietf:params:jmap:websocket` (RFC 8887 §3; its URL
is filled in per request by the session) and `urn:ietf:params:jmap:webpush-vapid` (RFC 9749 §3).

VAPID key rotation (`tidings push rotate-vapid`, RFC 9749 §5): a push service ties each subscription
to the key the client gave it (RFC 8292 §4), so pushes signed with a new key would be refused for
every subscription made before. Rotation therefore replaces the stored key and erases every
PushSubscription in one transaction. Each server process re-reads the stored key at most every
`vapid_recheck` seconds (before pushing, and when serving the session or an API request) and, when
it has changed, signs with the new key and advertises it: the session, and so its state, changes,
which tells clients to fetch it again, find their subscription gone, and subscribe again with the
new key.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable

from ..jmap.registry import Registry
from ..store.base import Store
from . import subscription
from .bus import ChangeBus
from .delivery import Pusher
from .subscription import PushSubscriptionType, Resolver, default_resolver
from .webpush import Vapid

WEBSOCKET = "urn:ietf:params:jmap:websocket"
WEBPUSH_VAPID = "urn:ietf:params:jmap:webpush-vapid"
VAPID_KEY_NAME = "vapid-p256"
ACCESS_TOKEN_TTL = 60  # seconds a browser has to open the event source or WebSocket with a token
VAPID_RECHECK = 5.0  # seconds between looks at the stored VAPID key (another process may rotate it)


class PushFeature:
    def __init__(
        self,
        store: Store,
        bus: ChangeBus,
        *,
        allow_insecure: bool,
        server_hosts: Iterable[str],
        domain: str,
        resolve: Resolver = default_resolver,
    ) -> None:
        self.store = store
        server_hosts = tuple(server_hosts)
        # One VAPID key for the whole server, kept in the database so every process (and, with a
        # shared database, every machine) signs with the key clients were given (RFC 9749 §3).
        with store.push(write=True) as tx:
            pem = tx.server_key(VAPID_KEY_NAME) or tx.add_server_key(VAPID_KEY_NAME, Vapid.generate_pem())
        # RFC 8292 §2.1: "sub" is a contact for the push service's operator.
        self.subject = f"mailto:postmaster@{domain}"
        self.vapid = Vapid(pem, subject=self.subject)
        self._vapid_pem = pem
        self._vapid_checked = time.monotonic()
        self.vapid_recheck = VAPID_RECHECK
        # The capability object the session shows; updated in place when the key changes.
        self._vapid_capability = {"applicationServerKey": self.vapid.public_key}
        self.subscriptions = PushSubscriptionType(
            store, allow_insecure=allow_insecure, server_hosts=server_hosts, resolve=resolve
        )
        self.pusher = Pusher(
            store, self.vapid, allow_insecure=allow_insecure, resolve=resolve, server_hosts=server_hosts
        )
        self.subscriptions.on_created = self.pusher.verify
        self.pusher.refresh_key = self.refresh_vapid
        bus.subscribe(self.pusher.publish, local_only=True)

    def register(self, registry: Registry) -> None:
        registry.add_capability(WEBSOCKET, {"url": "", "supportsPush": True})
        # RFC 9749 §3: the server's VAPID public key, an uncompressed P-256 point in base64url.
        registry.add_capability(WEBPUSH_VAPID, self._vapid_capability)
        subscription.register(registry, self.subscriptions)

    # -- VAPID key rotation (see the module docstring)

    def refresh_vapid(self) -> None:
        """Take up the stored VAPID key if another process has rotated it (blocking: a thread's work)."""
        now = time.monotonic()
        if now - self._vapid_checked < self.vapid_recheck:
            return
        self._vapid_checked = now
        with self.store.push() as tx:
            pem = tx.server_key(VAPID_KEY_NAME)
        if pem is not None and pem != self._vapid_pem:
            self._use_vapid(pem)

    def rotate_vapid(self) -> int:
        """Replace the VAPID key and erase every push subscription (made for the old key); returns
        how many were erased."""
        pem = Vapid.generate_pem()
        with self.store.push(write=True) as tx:
            tx.replace_server_key(VAPID_KEY_NAME, pem)
            erased = tx.destroy_all()
        self._use_vapid(pem)
        return erased

    def _use_vapid(self, pem: bytes) -> None:
        vapid = Vapid(pem, subject=self.subject)
        self.vapid = self.pusher.vapid = vapid
        self._vapid_pem = pem
        self._vapid_capability["applicationServerKey"] = vapid.public_key

    # -- single-use tokens for the event source and WebSocket URLs (browsers cannot set headers there)

    def issue_access_token(self, user_id: int, credential: str) -> tuple[str, int]:
        """A token standing for `credential` (the one the issuing request used) for one connection;
        revoking that credential deletes the token too."""
        token = "tdp_" + secrets.token_urlsafe(32)
        expires = int(time.time()) + ACCESS_TOKEN_TTL
        with self.store.push(write=True) as tx:
            tx.add_access_token(_digest(token), user_id, credential, expires)
        return token, expires

    def redeem_access_token(self, token: str) -> tuple[int, str] | None:
        """The user id and credential id the token stands for, or None; the token is used up."""
        if not token or len(token) > 200:
            return None
        with self.store.push(write=True) as tx:
            return tx.redeem_access_token(_digest(token), int(time.time()))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
