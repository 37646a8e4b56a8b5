"""JMAP Mail (RFC 8621): the data types and their handlers."""

from __future__ import annotations

from ..blob import Blobs
from ..jmap.registry import Registry
from . import email, mailbox, parts, search, thread
from .email import EmailType, recount_trash_threads, remove_from_mailbox
from .mailbox import MAIL, MAX_MAILBOX_DEPTH, MAX_SIZE_MAILBOX_NAME, MailboxType
from .thread import ThreadType

# RFC 8621 §4.4.2: the Email sorts this server supports (advertised as emailQuerySortOptions).
EMAIL_SORT_OPTIONS = [
    "receivedAt",
    "sentAt",
    "size",
    "from",
    "to",
    "subject",
    "hasKeyword",
    "allInThreadHaveKeyword",
    "someInThreadHaveKeyword",
]


class MailFeature:
    def __init__(self, *, max_size_attachments: int, domain: str, blobs: Blobs) -> None:
        self.mailboxes = MailboxType()
        self.emails = EmailType(domain, max_size_attachments)
        self.threads = ThreadType()
        self.max_size_attachments = max_size_attachments
        self.mailboxes.remove_emails = remove_from_mailbox
        self.mailboxes.trash_changed = recount_trash_threads
        parts.install(blobs)

    def register(self, registry: Registry) -> None:
        # RFC 8621 §1.3.1: the session capability is empty; the account capability has the limits.
        registry.add_capability(
            MAIL,
            {},
            {
                "maxMailboxesPerEmail": None,
                "maxMailboxDepth": MAX_MAILBOX_DEPTH,
                "maxSizeMailboxName": MAX_SIZE_MAILBOX_NAME,
                "maxSizeAttachmentsPerEmail": self.max_size_attachments,
                "emailQuerySortOptions": EMAIL_SORT_OPTIONS,
                "mayCreateTopLevelMailbox": True,
            },
        )
        mailbox.register(registry, self.mailboxes)
        email.register(registry, self.emails)
        thread.register(registry, self.threads)
        search.register(registry)


__all__ = ["MAIL", "MailFeature"]
