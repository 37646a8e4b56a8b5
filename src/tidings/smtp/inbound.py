"""Delivery in: LMTP (RFC 2033) from a local MTA and SMTP (RFC 5321) from the internet.

Thin aiosmtpd hooks: RCPT resolves the address (mail/delivery.py `Resolver`), DATA checks the
bytes and hands them to `Delivery.deliver`, the one path into a mailbox, in a thread. The reply to
DATA is sent only after the message is durably stored (the blob fsynced, the transaction
committed with synchronous=FULL): a crash after a 250 loses nothing. LMTP answers DATA once per
accepted recipient (RFC 2033 §4.2); SMTP answers once, 250 only when every recipient has it.

The SMTP listener accepts mail for the local domains only, and has no AUTH: it is never a relay.

Both offer DSN (RFC 3461) as the final delivery agent: NOTIFY and ORCPT on RCPT, RET and ENVID on
MAIL are checked (501 when malformed) and taken off the command before aiosmtpd, which knows none
of them, sees it. A recipient whose NOTIFY has SUCCESS gets a "delivered" DSN (§5.2.3) sent to the
envelope sender through the outbound queue once the message is stored; failures are never
reported later, as every refusal is a reply to the client (which reports it, §5.2.6 being its
job), and delays cannot happen.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import Executor
from email.utils import formatdate
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from ..mail import dsnparams
from ..mail.delivery import Delivery, Recipient, Resolver
from ..mail.outbox import queue_message
from . import dsn, replies
from .data import DataState, read_data

log = logging.getLogger("tidings.smtp")

MAX_RECIPIENTS = 1000


def content_problem(raw: bytes, smtp_utf8: bool) -> str | None:
    """The reply for a message that must be refused, or None."""
    if b"\x00" in raw:
        return replies.NUL_BYTES
    # Every CR and LF must be part of a CRLF pair (RFC 5321 §2.3.8; RFC 5322 §2.3).
    pairs = raw.count(b"\r\n")
    if raw.count(b"\n") != pairs or raw.count(b"\r") != pairs:
        return replies.BARE_LINE_ENDING
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[: end + 2]
    if not head.strip() or b":" not in head.split(b"\r\n", 1)[0]:
        return replies.NO_HEADERS
    if not smtp_utf8 and not head.isascii():
        return replies.EIGHT_BIT_HEADERS
    return None


def _printable(text: str | None, limit: int = 255) -> str:
    cleaned = "".join(c if 32 < ord(c) < 127 else "?" for c in (text or "unknown"))
    return cleaned[:limit]


class Handler:
    """The aiosmtpd handler for both listeners; `lmtp` chooses the per-recipient replies."""

    def __init__(
        self,
        delivery: Delivery,
        resolver: Resolver,
        executor: Executor,
        *,
        hostname: str,
        lmtp: bool,
        give_up: float = 5 * 86400,
    ) -> None:
        self.delivery = delivery
        self.resolver = resolver
        self.executor = executor
        self.hostname = hostname
        self.lmtp = lmtp
        self.give_up = give_up  # for the "delivered" DSNs this listener queues

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        # RFC 3461: room for RET, an ENVID of 100 characters and an ORCPT of 500, xtext-encoded.
        server.command_size_limits["MAIL"] += DSN_MAIL_ROOM
        server.command_size_limits["RCPT"] += DSN_RCPT_ROOM
        # RFC 2033 §5 (LMTP) requires PIPELINING and ENHANCEDSTATUSCODES; both hold for SMTP too.
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-DSN", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        # aiosmtpd gives the null reverse-path (RFC 5321 §4.5.5) as "<>", and keeps it so: an empty
        # mail_from would make it refuse the RCPT that follows ("need MAIL"). It is "" after DATA.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        vars(envelope)["dsn"] = dict(getattr(server, "dsn_parameters", {}))
        return replies.SENDER_OK

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return replies.TOO_MANY_RECIPIENTS
        if rcpt_options:
            return replies.RCPT_PARAMETERS
        if "@" not in address or any(ord(c) < 33 for c in address):
            return replies.BAD_RECIPIENT
        loop = asyncio.get_running_loop()
        try:
            recipient = await loop.run_in_executor(self.executor, self.resolver.resolve, address)
        except Exception:
            log.exception("recipient lookup failed for %r", address)
            return replies.LOOKUP_FAILED
        if recipient is None:
            if not self.lmtp and not self.resolver.is_local(address):
                return replies.RELAY_DENIED
            return replies.UNKNOWN_USER
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        _recipients(envelope).append(recipient)
        _rcpt_parameters(envelope).append(dict(getattr(server, "dsn_parameters", {})))
        return replies.RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        recipients = _recipients(envelope)
        problem = content_problem(raw, envelope.smtp_utf8)
        if problem is not None:
            return self._reply([problem] * len(recipients))
        trace = self.received(session, envelope, recipients)
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(
            self.executor, self._deliver_all, raw, _reverse_path(envelope), recipients, trace
        )
        sender = _reverse_path(envelope)
        wanted = [
            (recipient, parameters)
            for recipient, parameters, result in zip(recipients, _rcpt_parameters(envelope), results, strict=True)
            if result == replies.DELIVERED and dsnparams.wants(parameters.get("NOTIFY"), "SUCCESS")
        ]
        if wanted and sender:
            mail_parameters: dict[str, str] = vars(envelope).get("dsn", {})
            await loop.run_in_executor(self.executor, self._report_success, raw, sender, wanted, mail_parameters)
        if self.lmtp:
            return self._reply(results)
        # SMTP has one reply: 250 only if every recipient has the message; otherwise the client
        # retries the whole message, and recipients who have it already drop the copy (duplicates).
        if all(r.startswith("2") for r in results):
            return replies.DELIVERED
        return next(r for r in results if not r.startswith("2"))

    def _reply(self, lines: list[str]) -> str:
        if self.lmtp:
            # RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
            return "\r\n".join(lines)
        return lines[0]

    def _deliver_all(self, raw: bytes, mail_from: str, recipients: list[Recipient], trace: bytes) -> list[str]:
        results = []
        for recipient in recipients:
            try:
                outcome = self.delivery.deliver(raw, recipient, mail_from=mail_from, trace=trace)
            except Exception:
                log.exception("delivery to %s failed", recipient.address)
                results.append(replies.STORE_FAILED)
                continue
            results.append(replies.DUPLICATE if outcome.duplicate else replies.DELIVERED)
        return results

    def _report_success(
        self, raw: bytes, sender: str, wanted: list[tuple[Recipient, dict[str, str]]], mail_parameters: dict[str, str]
    ) -> None:
        """RFC 3461 §5.2.3: a "delivered" DSN for the recipients whose NOTIFY has SUCCESS, to the
        envelope sender, with the null reverse-path (RFC 3461 §6.1), through the outbound queue of
        the first such recipient's account. The message is stored whatever happens here."""
        now = time.time()
        notices = [dsn.Notice(r.address, replies.DELIVERED, None, "delivered", p.get("ORCPT")) for r, p in wanted]
        report = dsn.compose(
            reporting_mta=self.hostname, sender=sender, notices=notices, original=raw, arrival=now, attempted=now,
            message_id=f"dsn.{secrets.token_hex(8)}@{self.hostname}", envelope_id=mail_parameters.get("ENVID"),
        )
        try:
            blob_id = self.delivery.store.blobs.put(report)
            with self.delivery.store.write(wanted[0][0].user.account_id) as tx:
                queue_message(tx, blob_id, len(report), "", [sender], now=now, send_at=now, give_up=self.give_up)
        except Exception:
            log.exception("could not queue the delivered DSN to %s", sender)
            return
        if self.delivery.on_enqueued is not None:
            self.delivery.on_enqueued()

    def received(self, session: Session, envelope: Envelope, recipients: list[Recipient]) -> bytes:
        """The Received field of this hop (RFC 5321 §4.4; protocol names of RFC 3848, RFC 6531 §3.7.3)."""
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")
        helo = _printable(session.host_name)
        if self.lmtp:
            protocol = "UTF8LMTP" if envelope.smtp_utf8 else "LMTP"
        elif envelope.smtp_utf8:
            protocol = "UTF8SMTP"
        else:
            protocol = "ESMTP" if session.extended_smtp else "SMTP"
        field = (
            f"Received: from {helo} ([{_printable(peer)}])\r\n"
            f"\tby {self.hostname} with {protocol} id {secrets.token_hex(8)}"
        )
        if len(recipients) == 1:
            field += f"\r\n\tfor <{recipients[0].address}>"
        field += f"; {formatdate(localtime=False)}\r\n"
        return field.encode("utf-8", "surrogateescape")

    async def handle_exception(self, error: Exception) -> str:
        log.exception("SMTP session error", exc_info=error)
        return replies.INTERNAL_ERROR


def _reverse_path(envelope: Envelope) -> str:
    """The envelope sender, "" for the null reverse-path (RFC 5321 §4.5.5: DSNs, MDNs, auto-replies)."""
    address = envelope.mail_from or ""
    return "" if address == "<>" else address


def _recipients(envelope: Envelope) -> list[Recipient]:
    found: list[Recipient] = vars(envelope).setdefault("resolved", [])
    return found


def _rcpt_parameters(envelope: Envelope) -> list[dict[str, str]]:
    """The DSN parameters of each accepted recipient, in the order of `_recipients`."""
    found: list[dict[str, str]] = vars(envelope).setdefault("dsn_rcpt", [])
    return found


# A plain path: "<" dot-atom "@" domain name ">" (RFC 5321 §4.1.2 Path, without source routes,
# quoted local parts, address literals or UTF-8), which is nearly every MAIL FROM and RCPT TO.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>[ \t]*")


class FastData:
    """DATA read in large pieces (smtp/data.py) rather than aiosmtpd's line at a time, and plain
    addresses in MAIL and RCPT parsed with one regular expression rather than the e-mail header
    parser aiosmtpd uses (a tenth of a millisecond for each)."""

    def _getaddr(self: Any, arg: str) -> tuple[str | None, str | None]:
        match = _PLAIN_PATH.match(arg)
        if match is not None:
            address, rest = match.group(1), arg[match.end() :]
            local_limit = self.local_part_limit
            # A comment after the path, or a local part over the limit: aiosmtpd's parser decides.
            if not rest.startswith("(") and not (local_limit and len(address.rpartition("@")[0]) > local_limit):
                return address, rest
        result: tuple[str | None, str | None] = SMTP._getaddr(self, arg)
        return result

    @syntax("DATA")
    async def smtp_DATA(self: Any, arg: str) -> None:
        # The checks and replies of aiosmtpd's own smtp_DATA, in the same order.
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content, state = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        if state is DataState.TOO_LONG:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            self._set_post_data_state()
            return
        if state is DataState.TOO_MUCH:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)


# RFC 3461 §4: how much longer MAIL and RCPT lines may be with DSN parameters (an xtext character
# takes up to three).
DSN_MAIL_ROOM = len(" RET=HDRS ENVID=") + 3 * dsnparams.MAX_ENVID
DSN_RCPT_ROOM = len(" NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=utf-8;") + 3 * dsnparams.MAX_ORCPT
_DSN_PREFIXES = ("NOTIFY=", "ORCPT=", "RET=", "ENVID=")


class DsnParameters:
    """The DSN parameters (RFC 3461 §4) of MAIL and RCPT, checked and taken off the command line
    before aiosmtpd parses it (it refuses parameters it does not know). The decoded values are left
    in `dsn_parameters` for the handler's MAIL/RCPT hook, which runs only if the command is
    otherwise accepted; every MAIL and RCPT sets them afresh."""

    dsn_parameters: dict[str, str]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # aiosmtpd keeps the line limits in one dictionary shared by every connection, which each
        # EHLO makes longer; each connection has its own here.
        limits: collections.defaultdict[str, int] = collections.defaultdict(lambda: self.command_size_limit)
        setattr(self, "command_size_limits", limits)  # noqa: B010 (an instance attribute over the class one)
        self.dsn_parameters = {}

    async def _take_dsn(self: Any, arg: str | None, allowed: frozenset[str]) -> str | None:
        """`arg` without its DSN parameters; None after answering 501 for a bad one."""
        self.dsn_parameters = {}
        if arg is None or self.session is None or not self.session.extended_smtp:
            return arg
        words = arg.split(" ")
        kept: list[str] = []
        for index, word in enumerate(words):
            name, equals, value = word.partition("=")
            if index == 0 or not equals or name.upper() not in allowed:
                kept.append(word)
                continue
            if name.upper() in self.dsn_parameters:
                await self.push(f"501 5.5.4 {name.upper()} given twice")
                return None
            try:
                self.dsn_parameters[name.upper()] = dsnparams.check_encoded(name, value)
            except dsnparams.ParameterError as error:
                await self.push(f"501 5.5.4 Invalid {name.upper()}: {error}")
                return None
        return " ".join(kept)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self: Any, arg: str | None) -> None:
        rest = await self._take_dsn(arg, dsnparams.MAIL_PARAMETERS)
        if rest is not None or arg is None:
            await SMTP.smtp_MAIL(self, rest)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self: Any, arg: str | None) -> None:
        rest = await self._take_dsn(arg, dsnparams.RCPT_PARAMETERS)
        if rest is not None or arg is None:
            await SMTP.smtp_RCPT(self, rest)


class SMTPServer(DsnParameters, FastData, SMTP):
    pass


class LMTPServer(DsnParameters, FastData, LMTP):
    """aiosmtpd's LMTP with RFC 2033 §4.2 kept for aiosmtpd's own refusals after DATA too (line too
    long, message too big): those replies are repeated once per accepted recipient."""

    _in_data = False

    async def push(self, status: Any) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
        if text.startswith("354"):
            self._in_data = True
            await super().push(status)
            return
        if self._in_data:
            self._in_data = False
            count = len(self.envelope.rcpt_tos) if self.envelope is not None else 1
            if "\r\n" not in text and count > 1:
                await super().push("\r\n".join([text] * count))
                return
        await super().push(status)


def listener_factory(handler: Handler, *, hostname: str, max_size: int, lmtp: bool) -> Callable[[], SMTP]:
    loop = asyncio.get_running_loop()
    cls = LMTPServer if lmtp else SMTPServer

    def factory() -> SMTP:
        return cls(
            handler,
            data_size_limit=max_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="Tidings",
            loop=loop,
        )

    return factory


async def start_listener(
    handler: Handler, host: str, port: int, *, hostname: str, max_size: int, lmtp: bool
) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    factory = listener_factory(handler, hostname=hostname, max_size=max_size, lmtp=lmtp)
    # With `tidings serve --workers N` every process listens on the same port (the kernel spreads
    # connections over them): SO_REUSEPORT where the platform has it.
    reuse_port = port != 0 and hasattr(socket, "SO_REUSEPORT")
    server = await loop.create_server(factory, host=host or None, port=port, family=socket.AF_UNSPEC,
                                      reuse_address=True, reuse_port=reuse_port)
    return server
