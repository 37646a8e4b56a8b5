"""The storage contract. Every backend (SQLite now, PostgreSQL later) implements exactly this.

Theory of operation
-------------------
* Accounts are named on the wire as "A<n>". Each account has a change counter (`modseq`). Every change
  to an object (created, updated, destroyed) takes the next number and is recorded in the change log
  under the object's type and wire id: one row per object, holding its latest change, the number at
  which it was created and whether it is destroyed.
* The state string of a type in an account (RFC 8620 §5.1) is the number of the latest change to an
  object of that type. /changes from state S lists the objects whose latest change is after S; since
  every change has its own number, the server can stop after any object and hand out an intermediate
  state "B-C" (RFC 8620 §5.2 maxChanges): the client knows the account as at B plus every object
  whose latest change is at or before C; later objects are still classified against B.
* Reads run in a snapshot (`Store.read`). Writes run in one transaction per method call
  (`Store.write`), serialised per account; each object of a /set runs in a savepoint so that a
  rejected object leaves nothing behind. A commit is durable when `write` returns; only then are the
  listeners told of the new states (push).
* Optimistic concurrency: ifInState is compared inside the write transaction, so no other writer can
  change the state between the check and the write.
* The outbound queue (`Outbound`, `OutboundQueue`) is written in two ways: an account's write
  transaction adds an entry together with whatever asked for it (a submission, a vacation reply) and
  records an attempt's outcome together with the submission's deliveryStatus; `Store.outbound_queue`
  leases due entries across accounts. A lease is taken with one atomic statement (UPDATE ... WHERE
  the lease is free or expired ... RETURNING), so no two workers, in one process or many, hold the
  same entry; recording an attempt releases it. A worker that dies loses its leases when they expire.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from ..jmap.methods import Changes
from .blobs import FileBlobStore

StateListener = Callable[[str, dict[str, str]], None]


class StoreError(Exception):
    """A storage problem the caller can report (not a bug)."""


class SchemaTooNew(StoreError):
    pass


def account_wire_id(account_pk: int) -> str:
    return f"A{account_pk}"


def account_pk(wire_id: str) -> int | None:
    if wire_id.startswith("A") and wire_id[1:].isascii() and wire_id[1:].isdigit() and len(wire_id) < 20:
        return int(wire_id[1:])
    return None


# -- credential ids ---------------------------------------------------------------------------------
# RFC 8620 §7.2 ties a push subscription to "the credentials used to authenticate the API request that
# created it". A credential id names one credential without holding its secret: a digest of what the
# directory stores for it (the password's argon2 hash, the bearer token's SHA-256), so it stops
# matching when that credential is changed or revoked, and cannot be used to authenticate.


def password_credential(user_id: int, password_hash: str) -> str:
    """The id of a user's current password (HTTP Basic); a new password, even the same one again,
    has a new salted hash and so a new id."""
    return f"password:{user_id}:{_short_digest(password_hash)}"


def token_credential(token_hash: str) -> str:
    """The id of a bearer token, from the digest the directory stores for it."""
    return f"token:{_short_digest(token_hash)}"


def _short_digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class User:
    id: int
    username: str
    address: str
    password_hash: str
    account_id: str


@dataclass(frozen=True)
class BlobInfo:
    blob_id: str
    type: str
    size: int


@dataclass
class MailboxRow:
    id: int
    name: str
    parent_id: int | None
    role: str | None
    sort_order: int
    is_subscribed: bool
    total_emails: int = 0
    unread_emails: int = 0
    total_threads: int = 0
    unread_threads: int = 0


@dataclass
class EmailRow:
    """One stored Email's fast columns. `summary`/`structure` are orjson documents from the mail layer."""

    id: int
    thread_id: int
    blob_id: str
    size: int
    received_at: int
    sent_at: int | None
    keywords: frozenset[str]
    has_attachment: bool
    subject_sort: str
    subject_key: str
    from_sort: str
    from_key: str
    to_sort: str
    to_key: str
    message_id: str | None
    summary: bytes
    structure: bytes | None = None
    mailbox_ids: frozenset[int] = frozenset()

    @property
    def unread(self) -> bool:
        # RFC 8621 §2: unread means neither $seen nor $draft.
        return "$seen" not in self.keywords and "$draft" not in self.keywords


@dataclass(frozen=True)
class ThreadMember:
    id: int
    received_at: int
    keywords: frozenset[str]
    mailbox_ids: frozenset[int]


@dataclass(frozen=True)
class MailboxThread:
    mailbox_id: int
    thread_id: int
    newest_at: int
    newest_id: int
    oldest_at: int
    oldest_id: int
    unread: bool


@dataclass(frozen=True)
class SearchDocument:
    subject: str
    from_: str
    to: str
    cc: str
    bcc: str
    body: str
    attachments: str


# A normalised Email filter (built by mail/emailquery.py, compiled by each backend):
#   ("and" | "or" | "not", [filters])           ("none",) matches nothing
#   ("inMailbox", mailbox_pk)                   ("inMailboxOtherThan", [mailbox_pk, ...])
#   ("before" | "after", epoch seconds)         ("minSize" | "maxSize", octets)
#   ("hasKeyword" | "notKeyword" | "allInThreadHaveKeyword" | "someInThreadHaveKeyword"
#    | "noneInThreadHaveKeyword", keyword)      ("hasAttachment", bool)
#   ("text" | "from" | "to" | "cc" | "bcc" | "subject" | "body", [(is_phrase, text), ...])
#   ("header", name, text | None)
EmailFilter = tuple[Any, ...]


@dataclass(frozen=True)
class EmailSort:
    """One comparator: property is receivedAt, sentAt, size, from, to, subject, id, or a keyword sort."""

    property: str
    ascending: bool = True
    collation: str | None = None
    keyword: str | None = None


class Emails(ABC):
    """Emails of one account: rows, mailbox membership, threads, counts, full-text index, queries."""

    @abstractmethod
    def insert(self, row: EmailRow) -> int: ...

    @abstractmethod
    def rows(self, ids: list[int], *, structure: bool = False) -> dict[int, EmailRow]: ...

    @abstractmethod
    def all_ids(self) -> list[int]: ...

    @abstractmethod
    def set_keywords(self, email_id: int, keywords: frozenset[str]) -> None: ...

    @abstractmethod
    def set_mailboxes(self, email_id: int, add: set[int], remove: set[int], received_at: int) -> None: ...

    @abstractmethod
    def set_thread(self, email_ids: list[int], thread_id: int) -> None: ...

    @abstractmethod
    def delete(self, email_id: int) -> None: ...

    @abstractmethod
    def by_blob(self, blob_id: str) -> list[int]: ...

    @abstractmethod
    def by_message_id(self, message_id: str) -> list[int]: ...

    @abstractmethod
    def in_mailbox(self, mailbox_id: int) -> list[int]: ...

    # threads and the conversations index
    @abstractmethod
    def thread_members(self, thread_id: int) -> list[ThreadMember]: ...

    @abstractmethod
    def thread_email_ids(self, thread_ids: list[int]) -> dict[int, list[int]]: ...

    @abstractmethod
    def new_thread(self, base_subject: str) -> int: ...

    @abstractmethod
    def delete_thread(self, thread_id: int) -> None: ...

    @abstractmethod
    def threads_for_msgids(self, msgids: list[str]) -> list[tuple[str, int, str]]:
        """(msgid, thread id, thread base subject) for every thread that knows one of the msgids."""

    @abstractmethod
    def add_thread_refs(self, thread_id: int, msgids: list[str]) -> None: ...

    @abstractmethod
    def move_thread_refs(self, from_thread: int, to_thread: int) -> None: ...

    @abstractmethod
    def all_thread_ids(self) -> list[int]: ...

    @abstractmethod
    def thread_index(self, thread_ids: list[int]) -> dict[int, tuple[str, frozenset[str]]]:
        """(base subject, Message-IDs known) of each existing thread (for `mail/rebuild.py`)."""

    @abstractmethod
    def reset_thread(self, thread_id: int, base_subject: str, msgids: list[str]) -> None:
        """Set a thread's base subject and replace the Message-IDs it is known by."""

    # per-mailbox thread summaries and counts (RFC 8621 §2)
    @abstractmethod
    def mailbox_threads(self, thread_id: int) -> dict[int, MailboxThread]: ...

    @abstractmethod
    def put_mailbox_thread(self, row: MailboxThread) -> None: ...

    @abstractmethod
    def delete_mailbox_thread(self, mailbox_id: int, thread_id: int) -> None: ...

    @abstractmethod
    def adjust_counts(self, mailbox_id: int, emails: int, unread: int, threads: int, unread_threads: int) -> None: ...

    @abstractmethod
    def recount(self, mailbox_id: int) -> tuple[int, int, int, int]:
        """(emails, unread emails, threads, unread threads) of a mailbox counted from its rows (not the
        maintained counters), for `mail/rebuild.py` to check them."""

    # full-text index
    @abstractmethod
    def index_text(self, email_id: int, document: SearchDocument) -> None: ...

    @abstractmethod
    def unindex_text(self, email_id: int) -> None: ...

    @abstractmethod
    def snippets(self, email_ids: list[int], fts_query: EmailFilter) -> dict[int, tuple[str | None, str | None]]:
        """(subject, preview) with matches marked, for the emails matching the text conditions."""

    # queries
    @abstractmethod
    def query(
        self,
        filter: EmailFilter | None,
        sort: list[EmailSort],
        collapse_threads: bool,
        position: int,
        limit: int | None,
        anchor: int | None,
        anchor_offset: int,
        want_total: bool,
    ) -> tuple[list[int], int, int | None]:
        """(ids of the window, its position, total if asked). Raises LookupError if the anchor is absent."""


class Directory(ABC):
    """Users, their accounts and bearer tokens (administration and authentication)."""

    @abstractmethod
    def add_user(self, username: str, address: str, password_hash: str) -> User: ...

    @abstractmethod
    def user(self, username: str) -> User | None: ...

    @abstractmethod
    def user_by_id(self, user_id: int) -> User | None: ...

    @abstractmethod
    def users(self) -> list[User]: ...

    @abstractmethod
    def set_password(self, username: str, password_hash: str) -> bool:
        """Replace the password; the push subscriptions and push tokens the old one created are
        destroyed in the same transaction (RFC 8620 §7.2: its credentials were revoked)."""

    @abstractmethod
    def remove_user(self, username: str) -> bool:
        """Remove the user, erasing their push subscriptions first (RFC 8620 §7.2)."""

    @abstractmethod
    def add_token(self, user_id: int, token_hash: str, label: str) -> None: ...

    @abstractmethod
    def revoke_token(self, user_id: int, label: str) -> int:
        """Remove the token; the push subscriptions and push tokens it created are destroyed in the
        same transaction (RFC 8620 §7.2)."""

    @abstractmethod
    def tokens(self, user_id: int) -> list[tuple[str, int]]: ...

    @abstractmethod
    def user_for_token(self, token_hash: str) -> User | None: ...

    @abstractmethod
    def user_by_address(self, address: str) -> User | None:
        """The user whose address this is, compared case-insensitively."""


class Mailboxes(ABC):
    @abstractmethod
    def all(self) -> list[MailboxRow]: ...

    @abstractmethod
    def get(self, mailbox_id: int) -> MailboxRow | None: ...

    @abstractmethod
    def insert(self, row: MailboxRow) -> int: ...

    @abstractmethod
    def update(self, mailbox_id: int, fields: dict[str, Any]) -> None: ...

    @abstractmethod
    def delete(self, mailbox_id: int) -> None: ...

    @abstractmethod
    def has_children(self, mailbox_id: int) -> bool: ...


@dataclass
class PushSubscriptionRow:
    """A PushSubscription (RFC 8620 §7.2) as stored; `types` None means every type."""

    id: str
    user_id: int
    # The credential id (`password_credential`, `token_credential`) of the request that created it.
    credential: str
    device_client_id: str
    url: str
    p256dh: str | None
    auth: str | None
    verification_code: str
    verified: bool
    expires_at: int
    types: list[str] | None


class PushSubscriptions(ABC):
    """Push subscriptions (per user, not per account), the server's keys and single-use push tokens.

    Push subscriptions have no state string and no change log (RFC 8620 §7.2: no /changes); a write
    runs in one transaction with savepoints, like an account's. Each subscription and push token
    carries the credential id that created it; revoking that credential destroys them (see
    `Directory.set_password`, `Directory.revoke_token`). Directory and push writes are serialised
    with each other, so a check of `credential_is_live` in a push write cannot race a revocation.
    """

    @abstractmethod
    def of_user(self, user_id: int, now: int) -> list[PushSubscriptionRow]:
        """The user's subscriptions that have not expired."""

    @abstractmethod
    def get(self, user_id: int, subscription_id: str, now: int) -> PushSubscriptionRow | None: ...

    @abstractmethod
    def count(self, user_id: int) -> int: ...

    @abstractmethod
    def insert(self, row: PushSubscriptionRow, now: int) -> None: ...

    @abstractmethod
    def update(self, subscription_id: str, fields: dict[str, Any]) -> None:
        """Set columns (verified, expires_at, types) of one subscription."""

    @abstractmethod
    def delete(self, subscription_id: str) -> bool:
        """Remove a subscription, overwriting its URL and keys first (RFC 8620 §7.2: erase them)."""

    @abstractmethod
    def for_account(self, account_id: str, now: int) -> list[PushSubscriptionRow]:
        """Verified, unexpired subscriptions of every user who can read the account."""

    @abstractmethod
    def destroy_for_credential(self, credential: str) -> int:
        """Erase every subscription (as `delete` does) and push token created with this credential."""

    @abstractmethod
    def credential_is_live(self, user_id: int, credential: str) -> bool:
        """Whether the credential id still names the user's current password or one of their tokens."""

    @abstractmethod
    def purge_expired(self, now: int) -> int: ...

    @abstractmethod
    def savepoint(self) -> AbstractContextManager[None]: ...

    # The server's own keys (e.g. the VAPID key pair, shared by every process of the server).
    @abstractmethod
    def server_key(self, name: str) -> bytes | None: ...

    @abstractmethod
    def add_server_key(self, name: str, value: bytes) -> bytes:
        """Store a key unless one of that name exists; return the one stored (first writer wins)."""

    @abstractmethod
    def replace_server_key(self, name: str, value: bytes) -> None:
        """Store a key in place of the one of that name (key rotation)."""

    @abstractmethod
    def destroy_all(self) -> int:
        """Erase every subscription of every user (as `delete` does); returns how many."""

    # Single-use access tokens for the event source and WebSocket URLs.
    @abstractmethod
    def add_access_token(self, token_hash: str, user_id: int, credential: str, expires_at: int) -> None:
        """Record a token issued to a request made with `credential` (it stands for that credential)."""

    @abstractmethod
    def redeem_access_token(self, token_hash: str, now: int) -> tuple[int, str] | None:
        """The user id and credential id of an unexpired token, removing the token so it cannot be
        used again."""


# -- Mail flow (RFC 8621 §6–8): identities, submissions, the outbound queue, delivery bookkeeping --


@dataclass
class IdentityRow:
    """An Identity (RFC 8621 §6); reply_to and bcc are EmailAddress[] values or None."""

    id: int
    name: str
    email: str
    reply_to: list[dict[str, Any]] | None
    bcc: list[dict[str, Any]] | None
    text_signature: str
    html_signature: str
    may_delete: bool


class Identities(ABC):
    """The identities of one account."""

    @abstractmethod
    def all(self) -> list[IdentityRow]: ...

    @abstractmethod
    def insert(self, row: IdentityRow) -> int: ...

    @abstractmethod
    def update(self, identity_id: int, fields: dict[str, Any]) -> None:
        """Set fields by their IdentityRow names (name, reply_to, bcc, text_signature, html_signature)."""

    @abstractmethod
    def delete(self, identity_id: int) -> None: ...


@dataclass
class SubmissionRow:
    """An EmailSubmission (RFC 8621 §7) as stored.

    identity_id, email_id and thread_id are wire ids; envelope the JSON Envelope; delivery_status
    maps each recipient to its DeliveryStatus object; send_at and created_at are epoch seconds.
    message_id is the Message-ID (without angle brackets) of the message sent, which reports about
    it (MDNs, DSNs) name.
    """

    id: int
    identity_id: str
    email_id: str
    thread_id: str
    envelope: dict[str, Any]
    send_at: int
    undo_status: str
    delivery_status: dict[str, dict[str, str]]
    dsn_blob_ids: list[str]
    mdn_blob_ids: list[str]
    created_at: int
    message_id: str | None = None


class Submissions(ABC):
    """The email submissions of one account."""

    @abstractmethod
    def rows(self, ids: list[int] | None) -> list[SubmissionRow]:
        """The submissions with these ids (every one when None), ordered by id."""

    @abstractmethod
    def with_message_id(self, message_id: str) -> list[SubmissionRow]:
        """The submissions that sent the message with this Message-ID (indexed), ordered by id."""

    @abstractmethod
    def insert(self, row: SubmissionRow) -> int: ...

    @abstractmethod
    def update(self, submission_id: int, fields: dict[str, Any]) -> None:
        """Set fields by their SubmissionRow names (undo_status, delivery_status, dsn_blob_ids, mdn_blob_ids)."""

    @abstractmethod
    def delete(self, submission_id: int) -> None:
        """Remove the record only: a queued delivery of it goes on (RFC 8621 §7.5), unlinked."""


@dataclass
class QueueEntry:
    """One message in the outbound queue.

    `recipients` holds [address, state, last reply] with state "pending", "sent" or "failed".
    `mail_from` is "" for the null reverse-path. Times are epoch seconds (float). `parameters` holds
    the DSN parameters to send (RFC 3461 §4), {"mail": {name: value}, "rcpt": {address: {name:
    value}}} with xtext-decoded values, or None.
    """

    id: int
    account_id: str
    submission_id: int | None
    blob_id: str
    mail_from: str
    recipients: list[list[str]]
    created_at: float
    due_at: float
    expires_at: float
    attempts: int = 0
    last_error: str | None = None
    parameters: dict[str, Any] | None = None


class Outbound(ABC):
    """The outbound queue entries of one account, written in the account's transaction (so a
    submission and its queue entry commit together, and so does an attempt's outcome with the
    submission's deliveryStatus)."""

    @abstractmethod
    def enqueue(self, entry: QueueEntry) -> int: ...

    @abstractmethod
    def get(self, entry_id: int) -> QueueEntry | None: ...

    @abstractmethod
    def reschedule(
        self, entry_id: int, recipients: list[list[str]], due_at: float, attempts: int, last_error: str | None
    ) -> None:
        """Record an attempt that left recipients pending, and release the lease."""

    @abstractmethod
    def delete(self, entry_id: int) -> None:
        """The entry is done (every recipient sent or failed)."""

    @abstractmethod
    def cancel(self, submission_id: int, now: float) -> bool:
        """Delete the submission's entry if no attempt has begun (not tried, not leased); True if so."""


class OutboundQueue(ABC):
    """The queue across accounts, for the workers that send it."""

    @abstractmethod
    def claim(self, owner: str, now: float, lease_until: float, limit: int) -> list[QueueEntry]:
        """Atomically lease up to `limit` due entries (due_at <= now) whose lease is free or expired
        (lease_until < now). Two claimers never get the same entry while its lease runs."""

    @abstractmethod
    def release(self, owner: str) -> int:
        """Free every lease `owner` holds (a clean shutdown), so others may send at once."""

    @abstractmethod
    def next_due(self) -> float | None:
        """The earliest time an entry may be claimed (its due_at, or its lease's end), if any."""


@dataclass
class VacationRow:
    """A VacationResponse (RFC 8621 §8); dates are epoch seconds or None."""

    is_enabled: bool = False
    from_date: int | None = None
    to_date: int | None = None
    subject: str | None = None
    text_body: str | None = None
    html_body: str | None = None


class MailFlowLog(ABC):
    """Per account: the vacation response, whom it replied to, and which messages were delivered
    (duplicate suppression)."""

    @abstractmethod
    def vacation(self) -> VacationRow: ...

    @abstractmethod
    def set_vacation(self, row: VacationRow) -> None: ...

    @abstractmethod
    def vacation_replied_since(self, sender: str, since: int) -> bool:
        """Whether the vacation response replied to this sender (lower-cased address) at or after `since`."""

    @abstractmethod
    def log_vacation_reply(self, sender: str, at: int) -> None: ...

    @abstractmethod
    def delivered_since(self, message_id: str, target: str, since: int) -> bool:
        """Whether this message id was delivered to this target at or after `since`."""

    @abstractmethod
    def log_delivery(self, message_id: str, target: str, at: int) -> None: ...

    @abstractmethod
    def forget_before(self, before: int) -> None:
        """Drop delivery and vacation-reply records older than `before`."""


class Transaction(ABC):
    """A snapshot of one account (read) or a write transaction on it."""

    account_id: str
    mailboxes: Mailboxes
    emails: Emails
    identities: Identities
    submissions: Submissions
    outbound: Outbound
    mailflow: MailFlowLog

    @abstractmethod
    def state(self, type_name: str) -> str: ...

    @abstractmethod
    def all_states(self) -> dict[str, str]:
        """The state of every type that has ever changed in the account."""

    @abstractmethod
    def changes(self, type_name: str, since: str, max_changes: int) -> Changes | None: ...

    @abstractmethod
    def changed_since(self, type_name: str, since: str) -> set[str] | None: ...

    @abstractmethod
    def record(self, type_name: str, object_id: str, kind: str, *, counts_only: bool = False) -> None:
        """Log a change: kind is 'created', 'updated' or 'destroyed' (write transactions only)."""

    @abstractmethod
    def savepoint(self) -> AbstractContextManager[None]: ...

    # Blobs this account may read (RFC 8620 §6).
    @abstractmethod
    def blob(self, blob_id: str) -> BlobInfo | None: ...

    @abstractmethod
    def add_upload(self, blob_id: str, media_type: str, size: int, expires_at: int) -> None: ...

    @abstractmethod
    def ref_blob(self, blob_id: str, media_type: str, size: int, delta: int) -> None: ...

    @abstractmethod
    def put_inline_blob(self, blob_id: str, data: bytes) -> None:
        """Keep a small blob (store/blobs.py INLINE_MAX) in the database, durable with this
        transaction's commit and readable through `Store.blobs` from then on; nothing when it is
        there already. The caller computes the content-addressed id (`blob_id_for`)."""


class Store(ABC):
    blobs: FileBlobStore

    @abstractmethod
    def read(self, account_id: str) -> AbstractContextManager[Transaction]: ...

    @abstractmethod
    def write(self, account_id: str) -> AbstractContextManager[Transaction]: ...

    @abstractmethod
    def directory(self, *, write: bool = False) -> AbstractContextManager[Directory]:
        """Users and tokens. A read (write=False) may be opened inside a running account transaction
        of the same thread (mail delivery and submission look users up while writing)."""

    @abstractmethod
    def push(self, *, write: bool = False) -> AbstractContextManager[PushSubscriptions]:
        """Push subscriptions and push tokens, in one transaction (see `PushSubscriptions`)."""

    @abstractmethod
    def outbound_queue(self) -> AbstractContextManager[OutboundQueue]:
        """The outbound queue across accounts, in one write transaction (see `OutboundQueue`)."""

    @abstractmethod
    def account_exists(self, account_id: str) -> bool: ...

    @abstractmethod
    def collect_garbage(self, now: int) -> int:
        """Forget expired uploads nothing refers to and delete the blobs (files, and rows kept in
        the database) no account can read."""

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    def __init__(self) -> None:
        self._listeners: list[StateListener] = []
        # Set by close(): background workers that outlive the server stop instead of failing.
        self.closed = False

    def _account(self, account_id: str) -> int:
        """The row number of a wire account id; a malformed one is a StoreError."""
        pk = account_pk(account_id)
        if pk is None:
            raise StoreError(f"bad account id {account_id!r}")
        return pk

    def subscribe(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def _notify(self, account_id: str, states: dict[str, str]) -> None:
        for listener in list(self._listeners):
            listener(account_id, states)

    def iter_listeners(self) -> Iterator[StateListener]:
        return iter(self._listeners)
