"""The composition root: config -> store -> features -> transports. Nothing else wires things."""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import blob
from .accounts import Accounts
from .blob import Blobs
from .config import Config, parse_hostport
from .jmap import core
from .jmap.context import CORE, Account, CoreLimits, Principal
from .jmap.dispatch import Outcome, process_request
from .jmap.registry import Registry
from .jmap.request import Request
from .jmap.session import session_object
from .mail import MAIL, MailFeature
from .mail.mailbox import provision
from .mail.mailflow import MailFlowFeature
from .push.bus import ChangeBus, LocalBus
from .push.feature import WEBSOCKET, PushFeature
from .store.base import Store, StoreError, User
from .store.sqlite import SqliteStore

if TYPE_CHECKING:
    from .smtp.service import MailTransports

log = logging.getLogger("tidings")


@dataclass
class Services:
    """What method handlers reach through `ctx.services`."""

    backend: Store
    blobs: Blobs
    mail: MailFeature


def open_store(config: Config, *, upgrade: bool = False) -> Store:
    """The store the configuration names: embedded SQLite under `data`, or PostgreSQL by URL.

    PostgreSQL schemas are created on an empty database; an older one is upgraded only with `upgrade`
    (`tidings db migrate`), a newer one is refused (SchemaTooNew) in both backends.
    """
    url = config.store
    blob_dir = Path(config.blob_dir).expanduser() if config.blob_dir else config.data_dir / "blobs"
    if url.startswith(("postgresql://", "postgres://")):
        from .store.postgres import PgStore

        return PgStore(url, blob_dir, pool_size=config.store_pool_size, upgrade=upgrade)
    if url not in ("", "sqlite"):
        raise StoreError(f"unknown store {url!r}: expected postgresql://... (or nothing for SQLite)")
    return SqliteStore(config.data_dir, synchronous=config.sqlite_synchronous)


def change_bus(store: Store) -> ChangeBus:
    """How news of commits reaches push consumers: processes sharing a PostgreSQL store hear each
    other's commits (LISTEN/NOTIFY); the embedded store has one process, and a local bus."""
    url = getattr(store, "url", None)
    if isinstance(url, str) and url.startswith(("postgresql://", "postgres://")):
        from .push.pgbus import PostgresBus

        return PostgresBus(url, origin=store.origin)  # type: ignore[attr-defined]
    return LocalBus()


def core_limits(config: Config) -> CoreLimits:
    return CoreLimits(
        max_size_upload=config.max_size_upload,
        max_concurrent_upload=config.max_concurrent_upload,
        max_size_request=config.max_size_request,
        max_concurrent_requests=config.max_concurrent_requests,
        max_calls_in_request=config.max_calls_in_request,
        max_objects_in_get=config.max_objects_in_get,
        max_objects_in_set=config.max_objects_in_set,
    )


class Tidings:
    """One server instance: its store, method registry and services."""

    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.config = config
        self.store = store or open_store(config)
        # Every commit goes onto the change bus; push consumers listen there (docs/architecture.md).
        self.bus: ChangeBus = change_bus(self.store)
        self.store.subscribe(self.bus.publish)
        self.limits = core_limits(config)
        self.registry = Registry()
        core.register(self.registry, self.limits)
        self.blobs = Blobs(self.store, config.upload_ttl)
        blob.register(self.registry, self.blobs)
        self.mail = MailFeature(max_size_attachments=config.max_size_upload, domain=config.domain, blobs=self.blobs)
        self.mail.register(self.registry)
        self.hostname = config.hostname or socket.getfqdn()
        self.mailflow = MailFlowFeature(
            self.store,
            self.mail.emails,
            hostname=self.hostname,
            local_domains=config.local_domains or [config.domain],
            aliases=config.aliases,
            catch_all=config.catch_all,
            max_message_size=config.max_message_size,
            max_delayed_send=config.max_delayed_send,
            give_up=config.queue_give_up,
            duplicate_window=config.duplicate_window,
            vacation_days=config.vacation_days,
        )
        self.mailflow.register(self.registry)
        self.push = PushFeature(
            self.store,
            self.bus,
            allow_insecure=config.allow_insecure_push,
            server_hosts=server_hosts(config),
            domain=config.domain,
        )
        self.push.register(self.registry)
        self.services = Services(self.store, self.blobs, self.mail)
        self.accounts = Accounts(self.store, config.domain, [provision])
        # Per-request work that depends only on who the user is: the Principal and the session state
        # (a digest of the session). Keyed by everything they are built from, so a renamed user or a
        # changed address gets a new entry; the registry is fixed once the server is built.
        self._principals: dict[tuple[int, str, str, str, str], Principal] = {}
        self._session_states: dict[tuple[Any, ...], str] = {}
        self._lock = threading.Lock()

    def principal(self, user: User, credential: str = "") -> Principal:
        """The session's view of a user: their own account with every account capability, and the
        credential id they authenticated with (see `Principal`)."""
        key = (user.id, user.username, user.address, user.account_id, credential)
        found = self._principals.get(key)
        if found is not None:
            return found
        account = Account(
            id=user.account_id,
            name=user.address,
            is_personal=True,
            is_read_only=False,
            capabilities=self.registry.account_capabilities,
        )
        primary = {name: user.account_id for name in self.registry.account_capabilities}
        primary[CORE] = user.account_id
        principal = Principal(user.id, user.username, {account.id: account}, primary, credential)
        with self._lock:
            if len(self._principals) > 10_000:
                self._principals.clear()
            self._principals[key] = principal
        return principal

    def api(self, principal: Principal, request: Request) -> Outcome:
        self.push.refresh_vapid()  # a rotated VAPID key changes the session state (push/feature.py)
        return process_request(
            request, principal, self.registry, self.limits, self.services, lambda: self.session_state(principal)
        )

    def session_state(self, principal: Principal) -> str:
        key = (
            principal.user_id,
            principal.username,
            tuple((a.id, a.name, a.is_personal, a.is_read_only) for a in principal.accounts.values()),
            tuple(principal.primary_accounts.items()),
            self.push.vapid.public_key,  # in the session, which a key rotation changes
        )
        state = self._session_states.get(key)
        if state is None:
            state = str(self.session(principal, "")["state"])
            with self._lock:
                if len(self._session_states) > 10_000:
                    self._session_states.clear()
                self._session_states[key] = state
        return state

    def session(self, principal: Principal, base_url: str) -> dict[str, Any]:
        self.push.refresh_vapid()
        # The state must not depend on the URL a client used to reach us, so it is computed on a
        # URL-independent view; see jmap.session.session_state.
        session = session_object(
            principal,
            self.registry.capabilities,
            api_url=f"{base_url}/jmap/api/",
            download_url=f"{base_url}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?type={{type}}",
            upload_url=f"{base_url}/jmap/upload/{{accountId}}/",
            event_source_url=f"{base_url}/jmap/eventsource/?types={{types}}&closeafter={{closeafter}}&ping={{ping}}",
        )
        # RFC 8887 §3: the WebSocket URL; set after the state is computed, which must not depend on it.
        if WEBSOCKET in session["capabilities"]:
            ws_base = "ws" + base_url[4:] if base_url.startswith("http") else base_url
            session["capabilities"] = {
                **session["capabilities"],
                WEBSOCKET: {**session["capabilities"][WEBSOCKET], "url": f"{ws_base}/jmap/ws"},
            }
        return session

    def mail_transports(self, **worker_options: Any) -> MailTransports:
        """The LMTP/SMTP listeners and the outbound queue worker, as configured (docs/mailflow.md);
        started on the server's event loop by serve.py. `worker_options` are for tests."""
        from .smtp.dkim import Signer
        from .smtp.outbound import QueueWorker, Relay
        from .smtp.service import Listen, MailTransports

        config, mailflow = self.config, self.mailflow
        relay = None
        if config.smtp_relay:
            host, port = parse_hostport(config.smtp_relay)
            relay = Relay(host, port, config.smtp_relay_user, config.smtp_relay_password, config.smtp_relay_starttls)
        signer = None
        if config.dkim_selector and config.dkim_key_file:
            key = Path(config.dkim_key_file).expanduser().read_bytes()
            signer = Signer(config.dkim_selector, key, mailflow.resolver.local_domains)
        worker = QueueWorker(
            self.store,
            mailflow.delivery,
            mailflow.resolver,
            hostname=self.hostname,
            retry=[float(r) for r in config.queue_retry],
            relay=relay,
            signer=signer,
            housekeeping_horizon=max(config.duplicate_window, config.vacation_days * 86400),
            **worker_options,
        )
        lmtp = Listen(*parse_hostport(config.lmtp)) if config.lmtp else None
        smtp = Listen(*parse_hostport(config.smtp)) if config.smtp else None
        return MailTransports(self.store, mailflow, worker, hostname=self.hostname, lmtp=lmtp, smtp=smtp)

    def close(self) -> None:
        self.bus.close()
        self.store.close()


def server_hosts(config: Config) -> list[str]:
    """Names this server answers to: push subscriptions may not point at them (RFC 8620 §8.6)."""
    hosts = [urlsplit(config.public_url).hostname or "" if config.public_url else ""]
    host = config.http.rpartition(":")[0].strip("[]")
    if host not in ("", "0.0.0.0", "::"):
        hosts.append(host)
    return [h for h in hosts if h]


__all__ = ["MAIL", "Tidings"]
