"""Mail flow as the composition root sees it: Identity, EmailSubmission and VacationResponse, and
the local delivery service the SMTP/LMTP listeners and the outbound queue call.

Capabilities (RFC 8621 §1.3.2, §1.3.3): `urn:ietf:params:jmap:submission` (empty in the session;
maxDelayedSend and submissionExtensions per account) and `urn:ietf:params:jmap:vacationresponse`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..jmap.registry import Registry
from ..store.base import Store
from . import identity, submission, vacation
from .delivery import Delivery, Resolver
from .email import EmailType
from .identity import SUBMISSION_CAPABILITY, IdentityType
from .submission import SubmissionType
from .vacation import VACATION, Responder, VacationResponseType


class MailFlowFeature:
    def __init__(
        self,
        store: Store,
        emails: EmailType,
        *,
        hostname: str,
        local_domains: Iterable[str],
        aliases: dict[str, str],
        catch_all: dict[str, str],
        max_message_size: int,
        max_delayed_send: int,
        give_up: float,
        duplicate_window: int,
        vacation_days: int,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_delayed_send = max_delayed_send
        self._wake: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.resolver = Resolver(store, local_domains=local_domains, aliases=aliases, catch_all=catch_all)
        self.responder = Responder(store, self.resolver, days=vacation_days, give_up=give_up, hostname=hostname)
        self.delivery = Delivery(
            store, self.resolver, duplicate_window=duplicate_window, vacation=self.responder,
            on_enqueued=self.enqueued,
        )
        self.identities = IdentityType(store, self.resolver)
        self.submissions = SubmissionType(
            store, self.resolver, self.identities, emails, max_size=max_message_size,
            max_delayed_send=max_delayed_send, give_up=give_up, on_enqueued=self.enqueued,
        )
        self.vacation = VacationResponseType()

    def on_enqueued(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread) whenever a message was added to the outbound queue."""
        with self._lock:
            self._wake.append(callback)

    def enqueued(self) -> None:
        with self._lock:
            callbacks = list(self._wake)
        for callback in callbacks:
            callback()

    def register(self, registry: Registry) -> None:
        extensions: dict[str, Any] = {"SIZE": [str(self.max_message_size)]}
        if self.max_delayed_send > 0:
            # RFC 4865 §3: FUTURERELEASE's first argument is the longest hold, in seconds.
            extensions["FUTURERELEASE"] = [str(self.max_delayed_send)]
        # RFC 3461: NOTIFY/ORCPT on rcptTo, RET/ENVID on mailFrom (mail/dsnparams.py, smtp/outbound.py).
        extensions["DSN"] = []
        registry.add_capability(
            SUBMISSION_CAPABILITY,
            {},
            {"maxDelayedSend": self.max_delayed_send, "submissionExtensions": extensions},
        )
        registry.add_capability(VACATION, {}, {})
        identity.register(registry, self.identities)
        submission.register(registry, self.submissions)
        vacation.register(registry, self.vacation)
