"""jmaplib (PyPI, imported as `jmap`): a complete, capability-driven client, typed throughout.

Journeys: session discovery (Basic and Bearer), mailboxes, search with snippets, reading a thread,
flagging and moving, uploading an attachment and downloading it back, keeping a copy in sync with
Email/changes and Email/queryChanges, push over the event source, sending through EmailSubmission to
a test SMTP sink, and requests and push over a WebSocket.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from jmap.auth import BasicAuth, BearerAuth
from jmap.client import JMAPClient
from jmap.core.ids import CreationRef
from jmap.core.patch import keyword_patch, mailbox_patch
from jmap.models.push import StateChange
from jmap.push import EventSourceClient, Ping, WebSocketClient
from jmap.sync import ChangeStream
from jmap.sync.query import QuerySpec, QueryView

from ..smtp.sink import Sink
from .conftest import Demo, wait_for

NEWEST_FIRST = [{"property": "receivedAt", "isAscending": False}]


@pytest.fixture
def client(demo: Demo) -> Iterator[JMAPClient]:
    with JMAPClient.connect(demo.session_url, auth=BasicAuth(demo.username, demo.password)) as client:
        yield client


def _mailboxes(client: JMAPClient) -> dict[str, Any]:
    with client.batch() as batch:
        mailboxes = batch.mail.mailbox.get(ids=None)
    return {m.role: m for m in mailboxes.result.items if m.role}


def test_session_discovery(demo: Demo) -> None:
    for auth in (BasicAuth(demo.username, demo.password), BearerAuth(demo.token("jmaplib"))):
        with JMAPClient.connect(demo.session_url, auth=auth) as client:
            session = client.session
            assert session.username == "demo"
            assert session.api_url == f"{demo.url}/jmap/api/"
            assert client.default_account == demo.account_id
            # Every capability the server advertises resolves; none is left unmodelled.
            assert client.capabilities.supports("Email/query")
            assert client.capabilities.supports("Thread/get")
            assert client.echo(hello="world") == {"hello": "world"}


def test_search_read_flag_move(client: JMAPClient) -> None:
    boxes = _mailboxes(client)
    inbox, archive = boxes["inbox"], boxes["archive"]
    assert inbox.name == "Inbox" and inbox.total_emails > inbox.total_threads > 0

    # Search, fetch the hits and their snippets in one request.
    search = {"text": "offsite"}
    with client.batch() as batch:
        found = batch.mail.email.query(filter=search, sort=NEWEST_FIRST, calculate_total=True)
        emails = batch.mail.email.get(ids=found.ref_ids(), properties=["subject", "from", "threadId", "preview"])
        snippets = batch.mail.search_snippet.get(filter=search, email_ids=found.ref_ids())
    assert found.result.total == len(found.result.ids) >= 4
    assert all("offsite" in (e.subject or "").lower() for e in emails.result.items)
    marked = [s for s in snippets.result.items if s.subject and "<mark>" in s.subject]
    assert marked and "<mark>offsite</mark>" in marked[0].subject.lower()
    thread_id = emails.result.items[0].thread_id

    # Read the whole thread: the thread, then its emails with their text, by back-reference.
    with client.batch() as batch:
        threads = batch.mail.thread.get(ids=[thread_id])
        messages = batch.mail.email.get(
            ids=threads.ref("/list/*/emailIds"),
            properties=["subject", "from", "receivedAt", "textBody", "bodyValues", "attachments", "keywords"],
            fetchTextBodyValues=True,
        )
    thread = threads.result.items[0]
    conversation = messages.result.items
    assert [m.id for m in conversation] == list(thread.email_ids)
    dates = [m.received_at for m in conversation]
    assert dates == sorted(dates)  # RFC 8621 §3: a thread's emails are oldest first
    first = conversation[0]
    assert first.from_[0].name == "Inès Moreau"
    assert "booked for the 14th" in first.body_values[first.text_body[0].part_id].value
    assert [a.name for a in first.attachments] == ["agenda.txt"]

    # Flag the first message and move the conversation's incoming messages to the archive.
    update: dict[str, Any] = {first.id: keyword_patch(add=["$flagged"])}
    with client.batch() as batch:
        in_inbox = batch.mail.email.query(filter={"inMailbox": inbox.id, "text": "offsite"})
    for email_id in in_inbox.result.ids:
        patch = mailbox_patch(add=[archive.id], remove=[inbox.id])
        update[email_id] = {**update.get(email_id, {}), **patch}
    with client.batch() as batch:
        changed = batch.mail.email.set(update=update)
    assert not changed.result.has_errors, changed.result.update_errors

    after = _mailboxes(client)
    moved = len(in_inbox.result.ids)
    assert after["inbox"].total_emails == inbox.total_emails - moved
    assert after["archive"].total_emails == archive.total_emails + moved
    with client.batch() as batch:
        check = batch.mail.email.get(ids=[first.id], properties=["keywords", "mailboxIds"])
    email = check.result.items[0]
    assert email.keywords.get("$flagged") is True
    assert email.mailbox_ids == {archive.id: True}


def test_upload_attachment_and_download(client: JMAPClient) -> None:
    boxes = _mailboxes(client)
    pdf = b"%PDF-1.4\n% a small file\n%%EOF\n"
    uploaded = client.upload(pdf, content_type="application/pdf")
    assert uploaded.size == len(pdf) and uploaded.type == "application/pdf"
    assert client.download(uploaded.blob_id, name="x.pdf", content_type="application/pdf") == pdf

    with client.batch() as batch:
        made = batch.mail.email.set(
            create={
                "draft": {
                    "mailboxIds": {boxes["drafts"].id: True},
                    "keywords": {"$draft": True, "$seen": True},
                    "from": [{"name": "Demo User", "email": "demo@localhost"}],
                    "to": [{"name": "Example Hosting Billing", "email": "billing@example.com"}],
                    "subject": "Question about invoice INV-2207",
                    "textBody": [{"partId": "body", "type": "text/plain"}],
                    "bodyValues": {"body": {"value": "Is VAT included? The invoice is attached."}},
                    "attachments": [{"blobId": uploaded.blob_id, "type": "application/pdf", "name": "invoice.pdf"}],
                }
            }
        )
        got = batch.mail.email.get(
            ids=[CreationRef("draft")], properties=["subject", "hasAttachment", "attachments", "size"]
        )
    assert not made.result.has_errors, made.result.creation_errors
    draft = got.result.items[0]
    assert draft.has_attachment is True
    attachment = draft.attachments[0]
    assert (attachment.name, attachment.type, attachment.size) == ("invoice.pdf", "application/pdf", len(pdf))
    assert client.download(attachment.blob_id, name="invoice.pdf", content_type="application/pdf") == pdf

    # The draft's raw message, downloadable as message/rfc822, carries the attachment.
    raw = client.download(made.result.created["draft"].blob_id, content_type="message/rfc822")
    assert b"Subject: Question about invoice INV-2207" in raw and b"filename=invoice.pdf" in raw


def test_sync_with_changes_and_query_changes(client: JMAPClient) -> None:
    boxes = _mailboxes(client)
    inbox, trash = boxes["inbox"], boxes["trash"]
    inbox_filter = {"inMailbox": inbox.id}

    # A local copy: the emails' state, and the inbox as a cached query.
    with client.batch() as batch:
        start = batch.mail.email.get(ids=[], properties=["id"])
        query = batch.mail.email.query(filter=inbox_filter, sort=NEWEST_FIRST, calculate_total=True)
    stream = ChangeStream(client, "Email")
    stream.seed(start.result.state)
    view = QueryView.from_query(QuerySpec.build("Email", client.default_account or "", filter=inbox_filter,
                                                sort=NEWEST_FIRST), query.result)
    assert view.can_calculate_changes and len(view) == inbox.total_emails
    oldest, newest = view.known_ids[-1], view.known_ids[0]

    # Another client changes things: one email read, one trashed, one created in the inbox.
    with client.batch() as batch:
        changed = batch.mail.email.set(
            update={newest: keyword_patch(add=["$seen"]), oldest: {"mailboxIds": {trash.id: True}}},
            create={
                "new": {
                    "mailboxIds": {inbox.id: True},
                    "from": [{"email": "tom.becker@example.com"}],
                    "subject": "Running late",
                    "textBody": [{"partId": "t", "type": "text/plain"}],
                    "bodyValues": {"t": {"value": "Ten minutes, sorry."}},
                    "receivedAt": "2099-01-01T00:00:00Z",
                }
            },
        )
    assert not changed.result.has_errors
    created = changed.result.created_id("new")

    # Email/changes names exactly those, however many pages it takes.
    changes = stream.catch_up(max_changes=1)
    assert changes.created == [created]
    assert set(changes.updated) == {newest, oldest}
    assert changes.destroyed == []
    assert stream.state != start.result.state

    # Email/queryChanges splices the cached inbox into the server's new order.
    with client.batch() as batch:
        delta = batch.mail.email.query_changes(
            since_query_state=view.query_state, filter=inbox_filter, sort=NEWEST_FIRST, calculate_total=True
        )
        fresh = batch.mail.email.query(filter=inbox_filter, sort=NEWEST_FIRST)
    view.apply(delta.result)
    assert view.known_ids == list(fresh.result.ids)
    assert view.known_ids[0] == created and oldest not in view.known_ids

    # Destroying shows up as destroyed.
    with client.batch() as batch:
        batch.mail.email.set(destroy=[created])
    assert stream.catch_up().destroyed == [created]


def test_push_over_event_source(client: JMAPClient, demo: Demo) -> None:
    boxes = _mailboxes(client)
    with client.batch() as batch:
        state = batch.mail.email.get(ids=[], properties=["id"])
        found = batch.mail.email.query(filter={"inMailbox": boxes["inbox"].id}, limit=1)
    known = {demo.account_id: {"Email": state.result.state}}
    email_id = found.result.ids[0]

    events: queue.Queue[Any] = queue.Queue()
    source = EventSourceClient(client, types=("Email", "Mailbox"), ping=30)
    listening = source.listen()

    def listen() -> None:
        try:
            for event in listening:
                events.put(event)
                if isinstance(event, StateChange):
                    break
        except BaseException as exc:
            events.put(exc)
        finally:
            listening.close()  # hangs up; the cursor is kept for a later resume

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    # Nothing is pushed until something changes (RFC 8620 §7.3); change until the listener hears.
    pushed: StateChange | None = None
    for attempt in range(20):
        with client.batch() as batch:
            batch.mail.email.set(update={email_id: keyword_patch(add=["$flagged"]) if attempt % 2 == 0
                                         else keyword_patch(remove=["$flagged"])})
        try:
            event = events.get(timeout=0.5)
        except queue.Empty:
            continue
        if isinstance(event, Ping):
            continue
        assert isinstance(event, StateChange), event
        pushed = event
        break
    assert pushed is not None
    outdated = pushed.outdated(known)
    assert "Email" in outdated[demo.account_id]
    listener.join(10)
    assert source.last_event_id  # a cursor to resume from (Last-Event-ID)


def test_send_through_email_submission(mail_demo: Demo, sink: Sink) -> None:
    """A draft with an uploaded attachment, sent with EmailSubmission/set in the same request; the
    message reaches the SMTP sink, and onSuccessUpdateEmail files it in Sent (RFC 8621 §7.5)."""
    with JMAPClient.connect(mail_demo.session_url, auth=BasicAuth(mail_demo.username, mail_demo.password)) as client:
        boxes = _mailboxes(client)
        with client.batch() as batch:
            identities = batch.submission.identity.get(ids=None)
        identity = identities.result.items[0]
        assert identity.email == mail_demo.address

        uploaded = client.upload(b"Agenda: budget, hiring, offsite.\n", content_type="text/plain")
        with client.batch() as batch:
            batch.mail.email.set(
                create={
                    "draft": {
                        "mailboxIds": {boxes["drafts"].id: True},
                        "keywords": {"$draft": True, "$seen": True},
                        "from": [{"name": identity.name or "Demo User", "email": identity.email}],
                        "to": [{"name": "Raj Patel", "email": "raj@example.org"}],
                        "subject": "Agenda for Monday",
                        "textBody": [{"partId": "body", "type": "text/plain"}],
                        "bodyValues": {"body": {"value": "Hi Raj, the agenda is attached."}},
                        "attachments": [{"blobId": uploaded.blob_id, "type": "text/plain", "name": "agenda.txt"}],
                    }
                }
            )
            sent = batch.submission.email_submission.set(
                create={"send": {"identityId": identity.id, "emailId": CreationRef("draft")}},
                onSuccessUpdateEmail={
                    "#send": {f"mailboxIds/{boxes['drafts'].id}": None, f"mailboxIds/{boxes['sent'].id}": True,
                              "keywords/$draft": None}
                },
            )
        assert not sent.result.has_errors, sent.result.creation_errors
        submission_id = sent.result.created_id("send")

        received = wait_for(lambda: sink.handler.messages)[0]
        assert received.rcpt_tos == ["raj@example.org"]
        assert received.mail_from == mail_demo.address
        assert b"Subject: Agenda for Monday" in received.content
        assert b"agenda.txt" in received.content

        with client.batch() as batch:
            submission = batch.submission.email_submission.get(ids=[submission_id])
            filed = batch.mail.email.get(ids=submission.ref_list("emailId"), properties=["mailboxIds", "keywords"])
        assert submission.result.items[0].undo_status in ("final", "pending")
        email = filed.result.items[0]
        assert email.mailbox_ids == {boxes["sent"].id: True}
        assert "$draft" not in email.keywords


def test_websocket_requests_and_push(demo: Demo) -> None:
    """RFC 8887: API requests over the socket, and push of state changes made elsewhere."""
    auth = BasicAuth(demo.username, demo.password)
    with (
        JMAPClient.connect(demo.session_url, auth=auth) as client,
        JMAPClient.connect(demo.session_url, auth=auth) as other,
        WebSocketClient(client) as socket,
    ):
        with socket.batch() as batch:
            mailboxes = batch.mail.mailbox.get(ids=None)
            found = batch.mail.email.query(filter={"text": "offsite"}, sort=NEWEST_FIRST)
            emails = batch.mail.email.get(ids=found.ref_ids(), properties=["subject"])
        inbox = next(m for m in mailboxes.result.items if m.role == "inbox")
        assert all("offsite" in (e.subject or "").lower() for e in emails.result.items)

        socket.enable_push(["Email", "Mailbox"])
        notifications = socket.notifications()
        pushed: queue.Queue[Any] = queue.Queue()

        def listen() -> None:
            try:
                pushed.put(next(notifications))
            except BaseException as exc:
                pushed.put(exc)

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        # Another client changes an email; this socket hears of it (RFC 8887 §4.3.5).
        email_id = found.result.ids[0]
        with other.batch() as batch:
            batch.mail.email.set(update={email_id: keyword_patch(add=["$flagged"])})
        change = pushed.get(timeout=10)
        assert isinstance(change, StateChange), change
        assert set(change.changed[demo.account_id]) & {"Email", "Mailbox"}
        listener.join(5)
        assert socket.push_state  # RFC 8887 §4.3.5.1: a pushState to resume from
        assert inbox.total_emails
