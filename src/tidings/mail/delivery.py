"""Local delivery: who an address is, and putting a message into their mailbox.

Every message arriving for a local user (LMTP, SMTP, a submission to a local recipient, a DSN, a
vacation reply to a local sender) comes through `Delivery.deliver`, which calls the one ingest
path (mail/ingest.py). Recipient resolution, in order:

1. the domain must be one of the server's local domains (never an open relay);
2. an alias from the configuration (`aliases`: address -> user) for the whole address;
3. the user whose address it is;
4. plus-addressing: `alice+lists@example.com` is alice, and the message goes to her mailbox named
   "lists" when there is one (else her Inbox); aliases work with a detail too;
5. the domain's catch-all user (`catch_all`: domain -> user), if any.

A message whose Message-ID was delivered to the same mailbox within the duplicate window is dropped
(the delivery still succeeds), as Cyrus's duplicate delivery database does: an MTA that retries
after a lost reply does not make two copies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from ..mime import ParsedMessage
from ..store.base import MailboxRow, Store, Transaction, User
from ..store.blobs import INLINE_MAX, blob_id_for
from . import reports
from .ids import EMAIL, to_wire
from .ingest import ingest, prepare_stored

log = logging.getLogger("tidings.delivery")


@dataclass(frozen=True)
class Recipient:
    """A local recipient: the address as given, its user, and the plus-address detail if any."""

    address: str
    user: User
    detail: str | None = None


@dataclass(frozen=True)
class Delivered:
    """The email made (None for a dropped duplicate) and the stored message's blob and size."""

    email_id: str | None
    blob_id: str | None = None
    size: int = 0
    duplicate: bool = False


def split_address(address: str) -> tuple[str, str] | None:
    """(local part, lower-cased domain) of an addr-spec, or None when it has no domain."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        return None
    return local, domain.lower().rstrip(".")


class Resolver:
    """Maps addresses to local users (see the module docstring for the order)."""

    def __init__(
        self,
        store: Store,
        *,
        local_domains: Iterable[str],
        aliases: dict[str, str] | None = None,
        catch_all: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.local_domains = frozenset(d.lower().rstrip(".") for d in local_domains)
        self.aliases = {k.lower(): v for k, v in (aliases or {}).items()}
        self.catch_all = {k.lower(): v for k, v in (catch_all or {}).items()}

    def is_local(self, address: str) -> bool:
        parts = split_address(address)
        return parts is not None and parts[1] in self.local_domains

    def _user(self, name: str) -> User | None:
        with self.store.directory() as directory:
            return directory.user(name) or directory.user_by_address(name)

    def resolve(self, address: str, *, catch_all: bool = True) -> Recipient | None:
        parts = split_address(address)
        if parts is None or parts[1] not in self.local_domains:
            return None
        local, domain = parts
        whole = f"{local}@{domain}"
        candidates: list[tuple[str, str | None]] = [(whole, None)]
        base, plus, detail = local.partition("+")
        if plus and base:
            candidates.append((f"{base}@{domain}", detail or None))
        for candidate, detail_part in candidates:
            target = self.aliases.get(candidate.lower())
            user = self._user(target) if target else None
            if user is None:
                with self.store.directory() as directory:
                    user = directory.user_by_address(candidate)
            if user is not None:
                return Recipient(address, user, detail_part)
        if catch_all and domain in self.catch_all:
            user = self._user(self.catch_all[domain])
            if user is not None:
                return Recipient(address, user, None)
        return None

    def owns(self, user: User, address: str) -> bool:
        """May `user` use this address as theirs (From, envelope sender, Identity)? Their own
        address, aliases to them and plus-addresses of either; never via a catch-all."""
        if address.lower() == user.address.lower():
            return True
        found = self.resolve(address, catch_all=False)
        return found is not None and found.user.id == user.id


class VacationHook(Protocol):
    def __call__(
        self, tx: Transaction, recipient: Recipient, mail_from: str | None, parsed: ParsedMessage, now: int
    ) -> bool: ...


class Delivery:
    """Stores messages for local recipients: one account write transaction per recipient, durable
    (committed with the blob fsynced) when `deliver` returns."""

    def __init__(
        self,
        store: Store,
        resolver: Resolver,
        *,
        duplicate_window: int,
        vacation: VacationHook | None = None,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.duplicate_window = duplicate_window
        self.vacation = vacation
        self.on_enqueued = on_enqueued
        self._blob_writer = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tidings-blobs")

    def deliver(
        self,
        raw: bytes,
        recipient: Recipient,
        *,
        mail_from: str | None,
        trace: bytes = b"",
        now: int | None = None,
        auto_reply: bool = True,
        link_reports: bool = True,
    ) -> Delivered:
        """Add the message for one recipient. `mail_from` is the envelope sender ("" for the null
        sender, None when there is no envelope); `trace` holds Received fields to prepend.
        `link_reports`: an MDN or DSN about a submission of the account is linked to it
        (mail/reports.py); off for the reports the outbound queue makes and links itself."""
        now = int(time.time()) if now is None else now
        head = b""
        if mail_from is not None:
            # RFC 5321 §4.4: the final delivery adds Return-Path with the envelope's reverse-path.
            head += b"Return-Path: <" + mail_from.encode("utf-8", "surrogateescape") + b">\r\n"
        head += b"Delivered-To: " + recipient.address.encode("utf-8", "surrogateescape") + b"\r\n"
        message = head + trace + raw
        # A small message (most mail) is kept in the database, written by the transaction that
        # ingests it: its commit makes row and message durable with one fsync (store/blobs.py).
        # A larger one is a file, written and fsynced in another thread while this one parses and
        # prepares the transaction (fsync waits, parsing computes); the commit waits for it, so no
        # committed row ever names a blob that is not on disk.
        inline = len(message) <= INLINE_MAX
        stored: Future[str] | None = None
        if not inline:
            stored = self._blob_writer.submit(self.store.blobs.put, message)
        try:
            prepared = prepare_stored(blob_id_for(message), message)
        except BaseException:
            if stored is not None:
                stored.result()
            raise
        parsed = prepared.parsed
        message_id = parsed.message_id[0] if parsed.message_id else None
        replied = False
        with self.store.write(recipient.user.account_id) as tx:
            rows = tx.mailboxes.all()
            mailbox = target_mailbox(tx, recipient.detail, rows)
            if mailbox is None:
                raise LookupError(f"account {tx.account_id} has no Inbox")
            target = str(mailbox)
            if message_id and tx.mailflow.delivered_since(message_id, target, now - self.duplicate_window):
                if stored is not None:
                    stored.result()
                    # Not referenced by any email: let the garbage collector take the blob file.
                    tx.add_upload(prepared.blob_id, "message/rfc822", parsed.size, now)
                log.info("duplicate delivery of <%s> to %s dropped", message_id, recipient.address)
                return Delivered(None, duplicate=True)
            if inline:
                tx.put_inline_blob(prepared.blob_id, message)
            trash = next((r.id for r in rows if r.role == "trash"), None)
            row = ingest(tx, prepared, {mailbox}, frozenset(), now, trash=trash)
            if link_reports:
                reports.link(tx, parsed, message, prepared.blob_id)
            if message_id:
                tx.mailflow.log_delivery(message_id, target, now)
            if auto_reply and self.vacation is not None:
                replied = self.vacation(tx, recipient, mail_from, parsed, now)
            # The blob must be durable before the commit that refers to it (raises if it failed).
            if stored is not None:
                stored.result()
        if replied and self.on_enqueued is not None:
            self.on_enqueued()
        return Delivered(to_wire(EMAIL, row.id), prepared.blob_id, parsed.size)


def target_mailbox(tx: Transaction, detail: str | None, rows: list[MailboxRow] | None = None) -> int | None:
    """The mailbox named like the plus-address detail (case-insensitively), else the Inbox.
    `rows`: the account's mailboxes, when the caller has read them already."""
    rows = tx.mailboxes.all() if rows is None else rows
    if detail:
        wanted = detail.casefold()
        named = [r for r in rows if r.name.casefold() == wanted]
        if named:
            # A top-level mailbox wins over a nested one of the same name.
            named.sort(key=lambda r: (r.parent_id is not None, r.id))
            return named[0].id
    for row in rows:
        if row.role == "inbox":
            return row.id
    return None
