"""A real SMTP server on a loopback port that records what it receives: the smarthost (or MX host)
of the outbound tests. `replies` scripts the answer to each DATA (default 250). With `dsn=True` it
offers the DSN extension (RFC 3461) and records the parameters of MAIL FROM and RCPT TO as sent."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

DSN_PARAMETERS = ("RET=", "ENVID=", "NOTIFY=", "ORCPT=")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str] = field(default_factory=list)
    # The parameters of MAIL FROM and of each RCPT TO as they were on the wire (case kept).
    mail_parameters: list[str] = field(default_factory=list)
    rcpt_parameters: dict[str, list[str]] = field(default_factory=dict)


class SinkHandler:
    def __init__(self, *, dsn: bool = False) -> None:
        self.dsn = dsn
        self.messages: list[Received] = []
        self.data_replies: list[str] = []
        self.rcpt_replies: dict[str, str] = {}
        self.attempts = 0

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.dsn:
            return [*responses[:-1], "250-DSN", responses[-1]]
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        reply = self.data_replies.pop(0) if self.data_replies else "250 2.0.0 Ok: queued"
        if reply.startswith("2"):
            wire = vars(envelope).get("wire", {})
            self.messages.append(
                Received(envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"",
                         list(envelope.mail_options), wire.get("mail", []), wire.get("rcpt", {}))
            )
        return reply


def _split(arg: str) -> tuple[str, list[str], list[str]]:
    """(address part, DSN parameters as sent, the other parameters) of a MAIL/RCPT argument."""
    address, _, rest = arg.partition(">")
    words = rest.split()
    dsn = [w for w in words if w.upper().startswith(DSN_PARAMETERS)]
    return address + ">", dsn, [w for w in words if w not in dsn]


class DsnSMTP(SMTP):
    """aiosmtpd refuses every RCPT parameter and unknown MAIL ones; this one takes the DSN ones off
    the line (recording them as sent) before aiosmtpd sees it."""

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if arg is None or not self.event_handler.dsn:
            await super().smtp_MAIL(arg)
            return
        address, dsn, other = _split(arg)
        await super().smtp_MAIL(" ".join([address, *other]))
        if self.envelope is not None and self.envelope.mail_from:
            vars(self.envelope).setdefault("wire", {"mail": [], "rcpt": {}})["mail"] = dsn

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg is None or not self.event_handler.dsn:
            await super().smtp_RCPT(arg)
            return
        address, dsn, other = _split(arg)
        await super().smtp_RCPT(" ".join([address, *other]))
        if self.envelope is not None:
            recipient = address.split("<", 1)[-1].rstrip(">")
            vars(self.envelope).setdefault("wire", {"mail": [], "rcpt": {}})["rcpt"][recipient] = dsn


class Sink:
    def __init__(self, port: int = 0, *, dsn: bool = False) -> None:
        self.handler = SinkHandler(dsn=dsn)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: Any = None
        self.port = port

    def start(self) -> Sink:
        self.thread.start()

        async def serve() -> Any:
            loop = asyncio.get_running_loop()
            return await loop.create_server(
                lambda: DsnSMTP(self.handler, enable_SMTPUTF8=True, hostname="sink.test", loop=loop),
                host="127.0.0.1", port=self.port, family=socket.AF_INET, reuse_address=True,
            )

        self.server = asyncio.run_coroutine_threadsafe(serve(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.handler.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the sink received {len(self.handler.messages)} messages, not {count}")
            time.sleep(0.02)
        return self.handler.messages
