"""Sending Web Push messages to PushSubscription URLs (RFC 8620 §7.2, RFC 8030, RFC 8291, RFC 8292).

Theory of operation
-------------------
* The sender listens to the change bus for the changes this process committed (`local_only`), so
  across processes each change is pushed once. It runs on the server's event loop; storage reads run
  in a worker thread.
* A change to an account is matched with the verified, unexpired subscriptions of its users (read
  fresh each time, so an update of `types` or `expires` counts at once). Each subscription has at most
  one POST in flight; changes arriving meanwhile are merged into the next StateChange (§7.1 allows
  coalescing), so a slow or failing endpoint costs one pending object, not a queue.
* A POST carries TTL and Urgency (RFC 8030 §5.2–5.3), a VAPID Authorization (RFC 8292 §3), and, when
  the client gave keys, a body encrypted per RFC 8291. A network error or 5xx is retried with
  exponential backoff; 429 slows the subscription down (§7.2: "MUST cause the JMAP server to reduce the
  frequency of pushes"); 404 and 410 mean the subscription is gone at the push service, so it is
  destroyed here too. Expired subscriptions are never sent to, and are purged periodically.
* The PushVerification (§7.2.2) is sent the same way, right after the subscription is created.
* Before every POST (first try or retry) the subscription is looked up again: one destroyed meanwhile,
  by its client or because its credential was revoked (§7.2), is sent nothing more.
* Unless insecure push is allowed, connections go through `transport.VettedTransport`: the host is
  resolved once when connecting, and refused if any address is loopback, private, link-local or this
  server's own (§8.6), so a name re-pointed inside after /set (DNS rebinding) gets nothing. A refused
  message is dropped, not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from ..store.base import PushSubscriptionRow, Store
from .subscription import Resolver, address_is_public, default_resolver
from .transport import RefusedAddress, VettedBackend, VettedTransport
from .webpush import Vapid, encrypt

log = logging.getLogger("tidings.push")

STATE_TTL = 86400  # seconds a push service may hold a StateChange for an offline device
VERIFICATION_TTL = 86400
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
MAX_INTERVAL = 600.0  # the slowest a 429 can make a subscription (one push per ten minutes)
PURGE_EVERY = 600.0
GONE = (404, 410)
REFUSED = -1  # not a status: the push URL's host resolves to an address pushes must not reach


@dataclass(eq=False)
class _Target:
    """One subscription with changes waiting to be sent (only while it has some)."""

    row: PushSubscriptionRow
    changed: dict[str, dict[str, str]] = field(default_factory=dict)
    interval: float = 0.0  # minimum seconds between pushes, raised by 429
    not_before: float = 0.0
    task: asyncio.Task[None] | None = None


class Pusher:
    def __init__(
        self,
        store: Store,
        vapid: Vapid,
        *,
        allow_insecure: bool = False,
        resolve: Resolver = default_resolver,
        server_hosts: Iterable[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.vapid = vapid
        self.allow_insecure = allow_insecure
        self.resolve = resolve
        self.server_hosts = tuple(server_hosts)
        self.clock = clock
        self._transport = transport
        self._own_addresses: frozenset[str] = frozenset()
        # Called (in a worker thread) before subscriptions are read for sending: takes up a rotated
        # VAPID key (push/feature.py).
        self.refresh_key: Callable[[], None] = lambda: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._pending: dict[str, dict[str, str]] = {}
        self._dispatching = False
        self._targets: dict[str, _Target] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._purger: asyncio.Task[None] | None = None
        self.sent = 0  # messages accepted by push services (for tests and metrics)

    # -- lifecycle (on the event loop)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        transport = self._transport
        if transport is None and not self.allow_insecure:
            self._own_addresses = frozenset(await self._loop.run_in_executor(None, self._resolve_own))
            transport = VettedTransport(VettedBackend(self.resolve, self.address_allowed), limits)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
            limits=limits,
        )
        self._purger = asyncio.create_task(self._purge_forever())

    async def stop(self) -> None:
        self._loop = None
        tasks = [t for t in self._tasks if not t.done()]
        if self._purger is not None:
            tasks.append(self._purger)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- entry points (any thread)

    def publish(self, account_id: str, states: dict[str, str]) -> None:
        """Change-bus listener: a commit of this process changed these states."""
        self._call_soon(self._enqueue, account_id, states)

    def verify(self, user_id: int, subscription_id: str) -> None:
        """Send the PushVerification of a subscription just created (its transaction has committed)."""
        self._call_soon(self._spawn, self._send_verification(user_id, subscription_id))

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            if args and asyncio.iscoroutine(args[0]):
                args[0].close()
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is shutting down
            if args and asyncio.iscoroutine(args[0]):
                args[0].close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- StateChange fan-out (on the event loop)

    def _enqueue(self, account_id: str, states: dict[str, str]) -> None:
        self._pending.setdefault(account_id, {}).update(states)
        if not self._dispatching:
            self._dispatching = True
            self._spawn(self._dispatch())

    async def _dispatch(self) -> None:
        try:
            while self._pending:
                pending, self._pending = self._pending, {}
                now = int(self.clock())
                loop = asyncio.get_running_loop()
                rows = await loop.run_in_executor(None, self._subscriptions_for, list(pending), now)
                for account_id, subs in rows.items():
                    for row in subs:
                        self._add(row, account_id, pending[account_id])
        except Exception:
            log.exception("push dispatch failed")
        finally:
            self._dispatching = False

    def _subscriptions_for(self, accounts: list[str], now: int) -> dict[str, list[PushSubscriptionRow]]:
        self.refresh_key()
        with self.store.push() as tx:
            return {a: tx.for_account(a, now) for a in accounts}

    def _add(self, row: PushSubscriptionRow, account_id: str, states: dict[str, str]) -> None:
        # §7.2: "Other types are omitted from the TypeState object"; nothing left, nothing sent.
        wanted = states if row.types is None else {t: s for t, s in states.items() if t in row.types}
        if not wanted:
            return
        target = self._targets.get(row.id)
        if target is None:
            target = self._targets[row.id] = _Target(row)
        target.row = row
        target.changed.setdefault(account_id, {}).update(wanted)
        if target.task is None:
            target.task = asyncio.ensure_future(self._drain(target))
            self._tasks.add(target.task)
            target.task.add_done_callback(self._tasks.discard)

    async def _drain(self, target: _Target) -> None:
        try:
            while target.changed:
                wait = target.not_before - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                changed, target.changed = target.changed, {}
                if target.row.expires_at <= self.clock():
                    break
                message = {"@type": "StateChange", "changed": changed}
                outcome = await self._post(target.row, message, STATE_TTL, target)
                if outcome == "gone":
                    break
                if outcome == "retry-later":  # keep what was not delivered for the next try
                    for account_id, states in changed.items():
                        merged = {**states, **target.changed.get(account_id, {})}
                        target.changed[account_id] = merged
                target.not_before = time.monotonic() + max(target.interval, 0.0)
        finally:
            target.task = None
            if self._targets.get(target.row.id) is target and not target.changed:
                del self._targets[target.row.id]

    # -- PushVerification

    async def _send_verification(self, user_id: int, subscription_id: str) -> None:
        loop = asyncio.get_running_loop()
        now = int(self.clock())

        def load() -> PushSubscriptionRow | None:
            self.refresh_key()
            with self.store.push() as tx:
                return tx.get(user_id, subscription_id, now)

        row = await loop.run_in_executor(None, load)
        if row is None:
            return
        message = {
            "@type": "PushVerification",
            "pushSubscriptionId": row.id,
            "verificationCode": row.verification_code,
        }
        await self._post(row, message, VERIFICATION_TTL, None)

    # -- one POST, with retries

    async def _post(self, row: PushSubscriptionRow, message: dict[str, Any], ttl: int, target: _Target | None) -> str:
        """Deliver one message: "ok", "gone" (subscription removed), "dropped" or "retry-later"."""
        body = orjson.dumps(message)
        headers = {
            "Content-Type": "application/json",
            "TTL": str(ttl),  # RFC 8030 §5.2
            "Urgency": "normal",  # RFC 8030 §5.3
            "Authorization": self.vapid.authorization(row.url),  # RFC 8292 §3, RFC 9749 §4
        }
        if row.p256dh and row.auth:
            # RFC 8620 §7.2: with keys, the server "MUST use them as specified in [RFC8291]".
            body = encrypt(body, row.p256dh, row.auth)
            headers["Content-Encoding"] = "aes128gcm"
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            # A subscription destroyed meanwhile (by its client, or with its revoked credential, RFC
            # 8620 §7.2) gets nothing more: not a retry, not changes merged while a POST was in flight.
            if not await self._exists(row):
                log.info("push subscription %s no longer exists: not sending", row.id)
                return "gone"
            status = await self._send_once(row, body, headers)
            if status == REFUSED:
                return "dropped"
            if status is not None and 200 <= status < 300:
                self.sent += 1
                if target is not None:
                    target.interval = max(0.0, target.interval / 2)
                return "ok"
            if status in GONE:
                log.info("push subscription %s is gone at its push service (%d): removing it", row.id, status)
                await asyncio.get_running_loop().run_in_executor(None, self._remove, row.id)
                return "gone"
            if status == 429 and target is not None:
                target.interval = min(MAX_INTERVAL, max(1.0, target.interval * 2))
                return "retry-later"
            if status is not None and 400 <= status < 500 and status not in (408, 425, 429):
                log.warning("push to subscription %s refused with %d: message dropped", row.id, status)
                return "dropped"
            if delay is None:
                break
            log.info("push to subscription %s failed (%s), attempt %d: retrying", row.id, status, attempt + 1)
            await asyncio.sleep(delay)
        log.warning("push to subscription %s failed after %d attempts: message dropped", row.id, len(RETRY_DELAYS) + 1)
        return "dropped"

    async def _send_once(self, row: PushSubscriptionRow, body: bytes, headers: dict[str, str]) -> int | None:
        client = self._client
        if client is None:
            return None
        try:
            async with client.stream("POST", row.url, content=body, headers=headers) as response:
                return response.status_code  # the body is not read: nothing in it is of use
        except RefusedAddress as exc:
            # RFC 8620 §8.6: never turned against the network the server sits in. Not retried: the
            # answer would be the same (a message is dropped like one a push service refuses).
            log.warning("push subscription %s not sent: %s", row.id, exc)
            return REFUSED
        except httpx.HTTPError as exc:
            log.debug("push to %s failed: %s", row.id, exc)
            return None

    def address_allowed(self, address: str) -> bool:
        """Whether a push may connect to this address: public, and not one of this server's."""
        return address_is_public(address) and address.split("%", 1)[0] not in self._own_addresses

    def _resolve_own(self) -> set[str]:
        """The addresses of the names this server answers to (a public one is still ours)."""
        own: set[str] = set()
        for host in self.server_hosts:
            try:
                own.update(self.resolve(host, 443))
            except (OSError, UnicodeError):
                continue
        return own

    async def _exists(self, row: PushSubscriptionRow) -> bool:
        now = int(self.clock())

        def load() -> bool:
            with self.store.push() as tx:
                return tx.get(row.user_id, row.id, now) is not None

        return await asyncio.get_running_loop().run_in_executor(None, load)

    def _remove(self, subscription_id: str) -> None:
        with self.store.push(write=True) as tx:
            tx.delete(subscription_id)

    # -- expiry

    async def _purge_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await loop.run_in_executor(None, self.purge)
            except Exception:
                log.exception("purging expired push subscriptions failed")
            await asyncio.sleep(PURGE_EVERY)

    def purge(self) -> int:
        with self.store.push(write=True) as tx:
            return tx.purge_expired(int(self.clock()))
