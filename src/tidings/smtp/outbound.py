"""The outbound queue worker: an asyncio task in the server process that sends what is due.

Theory of operation
-------------------
* Entries are claimed in batches with a lease (store/base.py `OutboundQueue.claim`), so several
  workers, in one process or many, never send the same entry at once. A clean stop releases the
  leases; after a crash they expire and another worker takes over (so a message may, rarely, be
  sent twice; never lost).
* One attempt, in a thread: recipients in the local domains are delivered through the ingest path
  (mail/delivery.py); the others are sent with SMTP, to the smarthost when one is configured, else to
  the MX hosts of each domain (RFC 5321 §5.1). The message is DKIM-signed first when a key is set.
* Each recipient's reply decides: 2xx done (delivered "yes" when stored here, "unknown" when relayed,
  RFC 8621 §7), 5xx failed, 4xx or no answer tried again after the next delay of the retry schedule.
  An entry still failing temporarily when its give-up time comes is failed.
* Failures of a message with a sender (and, when the recipient's NOTIFY asks for SUCCESS, local
  deliveries and relays to a next hop without DSN, RFC 3461 §5.2.2-3) produce one DSN (smtp/dsn.py)
  per attempt, delivered into the sender's mailbox and linked from the submission's dsnBlobIds;
  then the outcome is written with mail/outbox.py in the account's transaction (deliveryStatus,
  undoStatus, the change log: push and /changes see the progress).
* DSN parameters (RFC 3461) of the entry go to a next hop that offers DSN (§5.2.1); to one that
  does not, the message goes without them and this server reports what it can (see `_notices`).

Why smtplib in threads: aiosmtplib is not a dependency and aiosmtpd has no client. smtplib has
everything needed (ESMTP, SIZE, 8BITMIME, SMTPUTF8, STARTTLS, AUTH) and sends are few and
I/O-bound, so a small pool of threads keeps the event loop free at no real cost.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import smtplib
import ssl
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from ..mail import dsnparams
from ..mail.delivery import Delivery, Recipient, Resolver, split_address
from ..mail.outbox import FAILED, PENDING, SENT, RecipientResult, record_attempt
from ..store.base import QueueEntry, Store, User
from . import dsn
from .dkim import Signer

log = logging.getLogger("tidings.queue")

LOCAL_DELIVERED = "250 2.0.0 Delivered"
LOCAL_UNKNOWN = "550 5.1.1 No such user here"
LOCAL_FAILED = "451 4.3.0 Local delivery failed, will retry"
MESSAGE_LOST = "554 5.3.0 The message to send is missing"
NULL_MX = "556 5.1.10 Domain does not accept mail (null MX, RFC 7505)"
NO_DOMAIN = "550 5.1.2 Domain does not exist"
DNS_FAILED = "451 4.4.3 DNS lookup failed, will retry"


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    user: str = ""
    password: str = ""
    starttls: bool = False


MxResolver = Callable[[str], list[str]]


class PermanentDNSError(Exception):
    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def dns_mx(domain: str) -> list[str]:
    """The hosts to try for a domain (RFC 5321 §5.1): its MX hosts by preference, else the domain
    itself (the implicit MX). A null MX (RFC 7505) or a missing domain is permanent."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(domain, "MX")
    except dns.resolver.NXDOMAIN:
        raise PermanentDNSError(NO_DOMAIN) from None
    except dns.resolver.NoAnswer:
        return [domain]
    except dns.exception.DNSException:
        raise
    records = sorted(answer, key=lambda r: r.preference)
    hosts = [str(r.exchange).rstrip(".") for r in records]
    if hosts == [""]:
        raise PermanentDNSError(NULL_MX)
    return [h for h in hosts if h]


def format_reply(code: int, message: bytes | str) -> str:
    """One line, as RFC 8621 §7 smtpReply: multi-line replies joined with spaces."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} " + " ".join(part.strip() for part in text.splitlines() if part.strip())


def classify(code: int, reply: str, *, relayed: bool) -> RecipientResult:
    if 200 <= code < 300:
        return RecipientResult(SENT, reply, "unknown" if relayed else "yes")
    if 500 <= code < 600:
        return RecipientResult(FAILED, reply, "no")
    return RecipientResult(PENDING, reply, "queued")


class SmtpSender:
    """One SMTP transaction to one host for some recipients; a reply for each (RFC 5321 §3.3)."""

    def __init__(self, *, hostname: str, timeout: float = 60.0) -> None:
        self.hostname = hostname
        self.timeout = timeout

    def send(
        self,
        host: str,
        port: int,
        mail_from: str,
        recipients: list[str],
        message: bytes,
        *,
        starttls: str = "opportunistic",
        user: str = "",
        password: str = "",
        parameters: dict[str, Any] | None = None,
        without_dsn: set[str] | None = None,
    ) -> dict[str, RecipientResult]:
        """starttls: "required", "opportunistic" (unverified, RFC 3207 as MTAs do it) or "off".
        `parameters`: the DSN parameters of the queue entry (RFC 3461), sent when the host offers
        DSN; when it does not, the recipients accepted without them are added to `without_dsn`.
        Raises OSError/SMTPException when the host cannot be talked to (try another or later)."""
        results: dict[str, RecipientResult] = {}
        with smtplib.SMTP(host, port, local_hostname=self.hostname, timeout=self.timeout) as client:
            client.ehlo()
            if starttls == "required" or (starttls == "opportunistic" and client.has_extn("starttls")):
                context = ssl.create_default_context()
                if starttls == "opportunistic":
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                client.starttls(context=context)
                client.ehlo()
            if user:
                client.login(user, password)
            options = []
            if client.has_extn("size"):
                options.append(f"SIZE={len(message)}")
            if not message.isascii() and client.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            head = message.split(b"\r\n\r\n", 1)[0]
            needs_utf8 = not head.isascii() or not mail_from.isascii() or not all(r.isascii() for r in recipients)
            if needs_utf8 and client.has_extn("smtputf8"):
                options.append("SMTPUTF8")
            # RFC 3461 §5.2.1: a next hop that offers DSN gets the parameters as they were given.
            dsn = client.has_extn("dsn")
            mail_parameters = (parameters or {}).get("mail") or {}
            rcpt_parameters = (parameters or {}).get("rcpt") or {}
            if dsn:
                options += [dsnparams.encode(k, v) for k, v in mail_parameters.items()]
            code, text = client.mail(mail_from, options)
            if code != 250:
                reply = format_reply(code, text)
                client.rset()
                return {r: classify(code, reply, relayed=True) for r in recipients}
            accepted = []
            for recipient in recipients:
                rcpt_options = [dsnparams.encode(k, v) for k, v in rcpt_parameters.get(recipient, {}).items()]
                code, text = client.rcpt(recipient, rcpt_options if dsn else [])
                if code in (250, 251):
                    accepted.append(recipient)
                else:
                    results[recipient] = classify(code, format_reply(code, text), relayed=True)
            if not accepted:
                client.rset()
                return results
            data_reply: bytes | str
            try:
                code, data_reply = client.data(message)
            except smtplib.SMTPDataError as error:
                code, data_reply = error.smtp_code, error.smtp_error
            reply = format_reply(code, data_reply)
            for recipient in accepted:
                results[recipient] = classify(code, reply, relayed=True)
            if not dsn and without_dsn is not None and 200 <= code < 300:
                without_dsn.update(accepted)
        return results


class QueueWorker:
    def __init__(
        self,
        store: Store,
        delivery: Delivery,
        resolver: Resolver,
        *,
        hostname: str,
        retry: Iterable[float],
        relay: Relay | None = None,
        signer: Signer | None = None,
        mx_resolver: MxResolver = dns_mx,
        mx_port: int = 25,
        lease: float = 600.0,
        concurrency: int = 4,
        poll: float = 30.0,
        housekeeping_horizon: int = 30 * 86400,
    ) -> None:
        self.store = store
        self.delivery = delivery
        self.resolver = resolver
        self.hostname = hostname
        self.retry = [float(r) for r in retry] or [300.0]
        self.relay = relay
        self.signer = signer
        self.mx_resolver = mx_resolver
        self.mx_port = mx_port
        self.lease = lease
        self.concurrency = concurrency
        self.poll = poll
        self.horizon = housekeeping_horizon
        self.sender = SmtpSender(hostname=hostname)
        self.owner = f"{hostname}:{secrets.token_hex(6)}"
        self.executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tidings-queue")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_housekeeping = 0.0

    # -- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="tidings-queue")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self._release)
        self.executor.shutdown(wait=True)

    def _release(self) -> None:
        with self.store.outbound_queue() as queue:
            queue.release(self.owner)

    def wake(self) -> None:
        """Look at the queue now (callable from any thread)."""
        loop, event = self._loop, self._event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    # -- the loop

    async def _run(self) -> None:
        assert self._event is not None
        loop = asyncio.get_running_loop()
        while True:
            self._event.clear()
            try:
                claimed = await loop.run_in_executor(self.executor, self._claim)
                if claimed:
                    await asyncio.gather(*(loop.run_in_executor(self.executor, self.attempt, e) for e in claimed))
                    continue
                next_due = await loop.run_in_executor(self.executor, self._next_due)
                await loop.run_in_executor(self.executor, self._housekeeping)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.store.closed or getattr(self.executor, "_shutdown", False):
                    return  # the server is shutting down: its store or threads are gone, and our work
                log.exception("queue worker error")
                next_due = time.time() + 5
            delay = self.poll if next_due is None else min(self.poll, max(0.0, next_due - time.time()))
            try:
                await asyncio.wait_for(self._event.wait(), timeout=delay + 0.01)
            except TimeoutError:
                pass

    def _claim(self) -> list[QueueEntry]:
        now = time.time()
        with self.store.outbound_queue() as queue:
            return queue.claim(self.owner, now, now + self.lease, self.concurrency)

    def _next_due(self) -> float | None:
        with self.store.outbound_queue() as queue:
            return queue.next_due()

    def _housekeeping(self) -> None:
        """Forget old duplicate-delivery and vacation-reply records, once an hour."""
        now = time.time()
        if now - self._last_housekeeping < 3600:
            return
        self._last_housekeeping = now
        with self.store.directory() as directory:
            accounts = [u.account_id for u in directory.users()]
        for account_id in accounts:
            with self.store.write(account_id) as tx:
                tx.mailflow.forget_before(int(now) - self.horizon)

    # -- one attempt

    def attempt(self, entry: QueueEntry) -> None:
        try:
            self._attempt(entry)
        except Exception:
            log.exception("attempt to send queue entry %d failed", entry.id)

    def _attempt(self, entry: QueueEntry) -> None:
        started = time.time()
        raw = self.store.blobs.read(entry.blob_id)
        pending = [address for address, state, _ in entry.recipients if state == PENDING]
        results: dict[str, RecipientResult] = {}
        remote_mta: dict[str, str] = {}
        without_dsn: set[str] = set()
        if raw is None:
            results = {a: RecipientResult(FAILED, MESSAGE_LOST, "no") for a in pending}
        else:
            local = [a for a in pending if self.resolver.is_local(a)]
            remote = [a for a in pending if a not in local]
            for address in local:
                results[address] = self._deliver_locally(entry, raw, address)
            if remote:
                message = self.signer.sign(raw) if self.signer is not None else raw
                results.update(self._send_remote(entry, remote, message, remote_mta, without_dsn))
        now = time.time()
        still = [a for a, r in results.items() if r.state == PENDING]
        next_due: float | None = None
        if still:
            if now >= entry.expires_at:
                # Given up: the last temporary reply becomes final (RFC 3464 Action: failed).
                for address in still:
                    results[address] = RecipientResult(FAILED, results[address].reply, "no")
            else:
                delay = self.retry[min(entry.attempts, len(self.retry) - 1)]
                next_due = min(now + delay, entry.expires_at)
        notices = _notices(entry, results, remote_mta, without_dsn)
        dsn_blob = self._report(entry, raw or b"", notices, started) if notices and entry.mail_from else None
        error = next((r.reply for r in results.values() if r.state == PENDING), None)
        with self.store.write(entry.account_id) as tx:
            record_attempt(tx, entry, results, next_due=next_due, error=error, dsn_blob=dsn_blob)
        log.info(
            "queue entry %d: %s", entry.id, ", ".join(f"{a}: {r.reply}" for a, r in results.items()) or "nothing to do"
        )

    def _deliver_locally(self, entry: QueueEntry, raw: bytes, address: str) -> RecipientResult:
        recipient = self.resolver.resolve(address)
        if recipient is None:
            return RecipientResult(FAILED, LOCAL_UNKNOWN, "no")
        trace = f"Received: by {self.hostname} (Tidings) id Q{entry.id}\r\n\tfor <{address}>; {formatdate()}\r\n"
        try:
            self.delivery.deliver(raw, recipient, mail_from=entry.mail_from, trace=trace.encode())
        except Exception:
            log.exception("local delivery of queue entry %d to %s failed", entry.id, address)
            return RecipientResult(PENDING, LOCAL_FAILED, "queued")
        return RecipientResult(SENT, LOCAL_DELIVERED, "yes")

    def _send_remote(
        self, entry: QueueEntry, recipients: list[str], message: bytes, remote_mta: dict[str, str],
        without_dsn: set[str],
    ) -> dict[str, RecipientResult]:
        if self.relay is not None:
            relay = self.relay
            try:
                results = self.sender.send(
                    relay.host, relay.port, entry.mail_from, recipients, message,
                    starttls="required" if relay.starttls else "off", user=relay.user, password=relay.password,
                    parameters=entry.parameters, without_dsn=without_dsn,
                )
            except (OSError, smtplib.SMTPException) as error:
                reply = _connection_reply(relay.host, error)
                return {r: RecipientResult(PENDING, reply, "queued") for r in recipients}
            for r in recipients:
                remote_mta[r] = relay.host
            return results
        by_domain: dict[str, list[str]] = {}
        for address in recipients:
            parts = split_address(address)
            by_domain.setdefault(parts[1] if parts else "", []).append(address)
        results = {}
        for domain, addresses in by_domain.items():
            results.update(self._send_to_domain(domain, entry, addresses, message, remote_mta, without_dsn))
        return results

    def _send_to_domain(
        self, domain: str, entry: QueueEntry, recipients: list[str], message: bytes, remote_mta: dict[str, str],
        without_dsn: set[str],
    ) -> dict[str, RecipientResult]:
        try:
            hosts = self.mx_resolver(domain)
        except PermanentDNSError as error:
            return {r: RecipientResult(FAILED, error.reply, "no") for r in recipients}
        except Exception:
            return {r: RecipientResult(PENDING, DNS_FAILED, "queued") for r in recipients}
        reply = DNS_FAILED
        for host in hosts:
            try:
                results = self.sender.send(host, self.mx_port, entry.mail_from, recipients, message,
                                           parameters=entry.parameters, without_dsn=without_dsn)
            except (OSError, smtplib.SMTPException) as error:
                reply = _connection_reply(host, error)
                continue
            for r in recipients:
                remote_mta[r] = host
            return results
        return {r: RecipientResult(PENDING, reply, "queued") for r in recipients}

    def _report(self, entry: QueueEntry, original: bytes, notices: list[dsn.Notice], started: float) -> (
        tuple[str, int] | None
    ):
        """Deliver a DSN to the sender's mailbox; (blob id, size) for dsnBlobIds, or None."""
        recipient = self._sender_recipient(entry)
        if recipient is None:
            log.warning("no local mailbox for DSN to %s (queue entry %d)", entry.mail_from, entry.id)
            return None
        # The same report for the same attempt has the same Message-ID: see dsn.compose.
        message_id = f"dsn.{entry.id}.{entry.attempts}.{int(entry.created_at)}@{self.hostname}"
        mail_parameters = (entry.parameters or {}).get("mail") or {}
        # RFC 3464 §2.2.1: the sender's ENVID when given, else the envelope id the sender knows (the
        # submission's id).
        envelope_id = mail_parameters.get("ENVID")
        if envelope_id is None and entry.submission_id is not None:
            envelope_id = f"S{entry.submission_id}"
        report = dsn.compose(
            reporting_mta=self.hostname,
            sender=entry.mail_from,
            notices=notices,
            original=original,
            arrival=entry.created_at,
            attempted=started,
            message_id=message_id,
            envelope_id=envelope_id,
            return_full=mail_parameters.get("RET") == "FULL",
        )
        try:
            delivered = self.delivery.deliver(report, recipient, mail_from="", auto_reply=False,
                                               link_reports=False)
        except Exception:
            log.exception("could not deliver the DSN for queue entry %d", entry.id)
            return None
        if delivered.blob_id is None:
            return None
        return delivered.blob_id, delivered.size

    def _sender_recipient(self, entry: QueueEntry) -> Recipient | None:
        found = self.resolver.resolve(entry.mail_from, catch_all=False)
        if found is not None and found.user.account_id == entry.account_id:
            return found
        with self.store.directory() as directory:
            owner: User | None = next((u for u in directory.users() if u.account_id == entry.account_id), None)
        return Recipient(entry.mail_from, owner) if owner is not None else None


def _notices(
    entry: QueueEntry, results: dict[str, RecipientResult], remote_mta: dict[str, str], without_dsn: set[str]
) -> list[dsn.Notice]:
    """What the sender is told of this attempt, per RFC 3461 and each recipient's NOTIFY:
    - a failure, unless NOTIFY leaves FAILURE out (NEVER, or SUCCESS/DELAY only) (§4.1);
    - a local delivery when NOTIFY has SUCCESS: Action "delivered" (§5.2.3, final delivery);
    - a relay to a next hop without DSN when NOTIFY has SUCCESS: Action "relayed" (§5.2.2), as the
      parameters could not be passed on. A next hop with DSN got them, and reports itself.
    Delays are not reported (DELAY is a request an MTA may decline, §4.1)."""
    rcpt_parameters = (entry.parameters or {}).get("rcpt") or {}
    notices = []
    for address, result in results.items():
        parameters = rcpt_parameters.get(address) or {}
        notify = parameters.get("NOTIFY")
        if result.state == FAILED and dsnparams.wants(notify, "FAILURE"):
            action = "failed"
        elif result.state == SENT and dsnparams.wants(notify, "SUCCESS") and result.delivered == "yes":
            action = "delivered"
        elif result.state == SENT and dsnparams.wants(notify, "SUCCESS") and address in without_dsn:
            action = "relayed"
        else:
            continue
        notices.append(dsn.Notice(address, result.reply, remote_mta.get(address), action, parameters.get("ORCPT")))
    return notices


def _connection_reply(host: str, error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return format_reply(error.smtp_code, error.smtp_error)
    return f"451 4.4.1 Cannot talk to {host}: {error.__class__.__name__}: {error}".strip()
