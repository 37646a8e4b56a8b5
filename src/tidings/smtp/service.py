"""The mail transports of one server process: the LMTP and SMTP listeners and the queue worker,
started and stopped together on the server's event loop (serve.py, tests/helpers.py)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..mail.mailflow import MailFlowFeature
from ..store.base import Store
from .inbound import Handler, start_listener
from .outbound import QueueWorker

log = logging.getLogger("tidings.smtp")


@dataclass(frozen=True)
class Listen:
    host: str
    port: int


class MailTransports:
    def __init__(
        self,
        store: Store,
        mailflow: MailFlowFeature,
        worker: QueueWorker | None,
        *,
        hostname: str,
        lmtp: Listen | None = None,
        smtp: Listen | None = None,
        threads: int = 4,
    ) -> None:
        self.store = store
        self.mailflow = mailflow
        self.worker = worker
        self.hostname = hostname
        self.lmtp = lmtp
        self.smtp = smtp
        self.threads = threads
        self.executor: ThreadPoolExecutor | None = None
        self.servers: list[asyncio.base_events.Server] = []
        self.lmtp_port: int | None = None
        self.smtp_port: int | None = None

    async def start(self) -> None:
        # aiosmtpd logs every command line at INFO; keep that for debugging only.
        protocol_log = logging.getLogger("mail.log")
        if protocol_log.level == logging.NOTSET and not log.isEnabledFor(logging.DEBUG):
            protocol_log.setLevel(logging.WARNING)
        self.executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="tidings-delivery")
        size = self.mailflow.max_message_size
        resolver, delivery = self.mailflow.resolver, self.mailflow.delivery
        give_up = self.mailflow.responder.give_up  # `queue_give_up`, for the DSNs the listeners queue
        if self.lmtp is not None:
            handler = Handler(delivery, resolver, self.executor, hostname=self.hostname, lmtp=True, give_up=give_up)
            server = await start_listener(handler, self.lmtp.host, self.lmtp.port, hostname=self.hostname,
                                          max_size=size, lmtp=True)
            self.servers.append(server)
            self.lmtp_port = server.sockets[0].getsockname()[1]
            log.info("LMTP listening on %s:%d", self.lmtp.host, self.lmtp_port)
        if self.smtp is not None:
            handler = Handler(delivery, resolver, self.executor, hostname=self.hostname, lmtp=False, give_up=give_up)
            server = await start_listener(handler, self.smtp.host, self.smtp.port, hostname=self.hostname,
                                          max_size=size, lmtp=False)
            self.servers.append(server)
            self.smtp_port = server.sockets[0].getsockname()[1]
            log.info("SMTP listening on %s:%d", self.smtp.host, self.smtp_port)
        if self.worker is not None:
            self.mailflow.on_enqueued(self.worker.wake)
            await self.worker.start()

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), timeout=5)
            except TimeoutError:
                pass
        self.servers.clear()
        if self.worker is not None:
            await self.worker.stop()
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None

