"""jmapc (PyPI), which only speaks HTTPS: Tidings serves TLS (as `tidings serve --tls-cert --tls-key`)
with a certificate from a throwaway CA. The journey: session, mailboxes, emails, and EventSource."""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jmapc import (
    Client,
    Comparator,
    EmailQueryFilterCondition,
    EventSourceConfig,
    MailboxQueryFilterCondition,
    Ref,
)
from jmapc.errors import Error
from jmapc.methods import (
    CoreEcho,
    EmailChanges,
    EmailGet,
    EmailQuery,
    EmailQueryChanges,
    EmailSet,
    MailboxChanges,
    MailboxGet,
    MailboxQuery,
    MailboxSet,
    SearchSnippetGet,
    ThreadGet,
)
from jmapc.models import Event

from .conftest import Demo

# jmapc's Comparator model carries anchorOffset, calculateTotal and position (arguments of the query,
# not of a comparator: RFC 8620 §5.5), always set, so every Comparator it sends has unknown properties,
# which a server MUST answer with invalidArguments (RFC 8620 §3.9); see test_comparator_model below.
# The journeys give the comparator as the plain object the RFC defines.
NEWEST_FIRST: Any = [{"property": "receivedAt", "isAscending": False}]


@pytest.fixture
def client(tls_demo: Demo, ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    # requests (jmapc's transport, and sseclient's) trusts this CA through the environment.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    host = tls_demo.url.removeprefix("https://")
    client = Client.create_with_password(host, tls_demo.username, tls_demo.password)
    yield client
    # Close the kept-alive connections, so the server stops at once. sseclient never closes its
    # response (not even when it reconnects), so its socket is shut down under it.
    client.requests_session.close()
    if client._events is not None:
        socket.socket.shutdown(client._events.resp.raw._fp.fp.raw._sock, socket.SHUT_RDWR)


def test_session_over_https(client: Client, tls_demo: Demo) -> None:
    session = client.jmap_session
    assert session.username == "demo"
    assert session.api_url == f"{tls_demo.url}/jmap/api/"
    for url in (session.upload_url, session.download_url, session.event_source_url):
        assert url.startswith(tls_demo.url + "/")
    assert session.primary_accounts.mail == tls_demo.account_id
    assert session.capabilities.core.max_calls_in_request >= 1
    echo = client.request(CoreEcho(data={"over": "tls"}))
    assert echo.data == {"over": "tls"}  # type: ignore[union-attr]


def test_mailbox_journey(client: Client) -> None:
    got = client.request(MailboxGet(ids=None))
    assert not isinstance(got, Error)
    by_role = {m.role: m for m in got.data}
    inbox = by_role["inbox"]
    assert inbox.name == "Inbox" and inbox.total_emails and inbox.unread_emails
    state = got.state

    # Query by role, and a created mailbox (a child of the inbox) is found by name.
    found = client.request(MailboxQuery(filter=MailboxQueryFilterCondition(role="archive")))
    assert found.ids == [by_role["archive"].id]  # type: ignore[union-attr]
    created = client.request(
        MailboxSet(create={"r": {"name": "Receipts", "parentId": inbox.id, "isSubscribed": True}})
    )
    assert created.not_created is None, created.not_created  # type: ignore[union-attr]
    receipts = created.created["r"].id  # type: ignore[union-attr]
    again = client.request(MailboxQuery(filter=MailboxQueryFilterCondition(name="Receipts")))
    assert again.ids == [receipts]  # type: ignore[union-attr]

    # Changes since the first state name the new mailbox.
    changes = client.request(MailboxChanges(since_state=state))
    assert changes.created == [receipts] and changes.destroyed == []  # type: ignore[union-attr]

    # Rename it, then destroy it.
    renamed = client.request(MailboxSet(update={receipts: {"name": "Bills"}}))
    assert receipts in renamed.updated  # type: ignore[union-attr]
    gone = client.request(MailboxSet(destroy=[receipts]))
    assert gone.destroyed == [receipts]  # type: ignore[union-attr]


def test_email_journey(client: Client, tmp_path: Path) -> None:
    boxes = client.request(MailboxGet(ids=None))
    by_role = {m.role: m for m in boxes.data}  # type: ignore[union-attr]
    inbox, archive = by_role["inbox"], by_role["archive"]

    # The inbox's newest threads, and the emails, in one request with a back-reference.
    results = client.request(
        [
            EmailQuery(
                collapse_threads=True,
                filter=EmailQueryFilterCondition(in_mailbox=inbox.id),
                sort=NEWEST_FIRST,
                limit=5,
                calculate_total=True,
            ),
            EmailGet(ids=Ref("/ids"), properties=["threadId", "subject", "from", "receivedAt", "keywords"]),
        ],
        raise_errors=True,
    )
    query, emails = results[0].response, results[1].response
    assert query.total == inbox.total_threads  # type: ignore[attr-defined]
    assert len(emails.data) == 5  # type: ignore[attr-defined]
    dates = [e.received_at for e in emails.data]  # type: ignore[attr-defined]
    assert dates == sorted(dates, reverse=True)
    query_state = query.query_state  # type: ignore[attr-defined]

    # Search, with snippets, and a whole thread read.
    search = client.request(
        [
            EmailQuery(filter=EmailQueryFilterCondition(text="offsite")),
            SearchSnippetGet(ids=Ref("/ids"), filter=EmailQueryFilterCondition(text="offsite")),
            EmailGet(ids=Ref("/ids", method=0), properties=["threadId", "subject"]),
            ThreadGet(ids=Ref("/list/*/threadId")),
        ],
        raise_errors=True,
    )
    snippets = search[1].response.data  # type: ignore[attr-defined]
    assert snippets and any("<mark>" in (s.subject or "") + (s.preview or "") for s in snippets)
    thread = search[3].response.data[0]  # type: ignore[attr-defined]
    assert len(thread.email_ids) >= 4
    bodies = client.request(
        EmailGet(ids=thread.email_ids, properties=["subject", "textBody", "bodyValues", "attachments"],
                 fetch_text_body_values=True)
    )
    first = bodies.data[0]  # type: ignore[union-attr]
    assert first.subject == "Quarterly planning offsite"
    assert "The offsite is booked" in first.body_values[first.text_body[0].part_id].value

    # Download the attachment through the session's download URL.
    agenda = first.attachments[0]
    target = tmp_path / "agenda.txt"
    client.download_attachment(agenda, target)
    assert target.read_text().startswith("Offsite agenda")

    # Upload a file, and attach it to a new draft.
    upload = tmp_path / "notes.txt"
    upload.write_text("Bring the projector.\n")
    blob = client.upload_blob(upload)
    assert blob.type == "text/plain" and blob.size == upload.stat().st_size
    made = client.request(
        EmailSet(
            create={
                "d": {
                    "mailboxIds": {by_role["drafts"].id: True},
                    "keywords": {"$draft": True},
                    "to": [{"email": "ines.moreau@example.org"}],
                    "subject": "Notes for the offsite",
                    "bodyValues": {"b": {"value": "See the attached notes."}},
                    "textBody": [{"partId": "b", "type": "text/plain"}],
                    "attachments": [{"blobId": blob.id, "type": "text/plain", "name": "notes.txt"}],
                }
            }
        )
    )
    assert made.not_created is None, made.not_created  # type: ignore[union-attr]
    draft = made.created["d"]  # type: ignore[union-attr]
    assert draft.thread_id and draft.blob_id and draft.size

    # Flag and move the newest inbox email; Email/changes and Email/queryChanges report it.
    newest = emails.data[0]  # type: ignore[attr-defined]
    state = client.request(EmailGet(ids=[])).state  # type: ignore[union-attr]
    moved = client.request(
        EmailSet(update={newest.id: {"keywords/$flagged": True, "mailboxIds": {archive.id: True}}})
    )
    assert moved.not_updated is None and newest.id in moved.updated  # type: ignore[union-attr]
    changes = client.request(EmailChanges(since_state=state))
    assert newest.id in changes.updated  # type: ignore[union-attr]
    query_changes = client.request(
        EmailQueryChanges(
            filter=EmailQueryFilterCondition(in_mailbox=inbox.id),
            sort=NEWEST_FIRST,
            collapse_threads=True,
            since_query_state=query_state,
        )
    )
    assert not isinstance(query_changes, Error), query_changes
    assert newest.id in query_changes.removed
    flagged = client.request(EmailGet(ids=[newest.id], properties=["keywords", "mailboxIds"]))
    assert flagged.data[0].keywords.get("$flagged") is True  # type: ignore[union-attr]
    assert flagged.data[0].mailbox_ids == {archive.id: True}  # type: ignore[union-attr]


def test_comparator_model_sends_unknown_properties(client: Client) -> None:
    """A client bug: jmapc's Comparator serialises {"property", "isAscending", "anchorOffset",
    "calculateTotal", "position"}. RFC 8620 §5.5 defines a Comparator as property, isAscending and
    collation (RFC 8621 §4.4.2 adds keyword), and §3.9 requires invalidArguments for unknown data."""
    error = client.request(EmailQuery(sort=[Comparator(property="receivedAt", is_ascending=False)]))
    assert isinstance(error, Error)
    assert error.to_dict()["type"] == "invalidArguments"
    assert "anchorOffset" in (error.to_dict().get("description") or "")


def test_nested_reference_is_refused(client: Client) -> None:
    """jmapc turns a Ref inside a filter into "#inMailbox" within the filter object. RFC 8620 §3.7
    defines result references for method arguments only ("an argument to one method can be taken
    from the result of a previous method call"), so a "#inMailbox" filter property is an unknown
    filter condition, which RFC 8621 §4.4.1 answers with unsupportedFilter. A client bug: the
    journeys above give the mailbox id itself."""
    results = client.request(
        [
            MailboxQuery(filter=MailboxQueryFilterCondition(role="inbox")),
            EmailQuery(filter=EmailQueryFilterCondition(in_mailbox=Ref("/ids/0"))),
        ]
    )
    error = results[1].response
    assert isinstance(error, Error)
    assert error.to_dict()["type"] == "unsupportedFilter"


def test_event_source(client: Client, tls_demo: Demo) -> None:
    """jmapc's EventSource (sseclient over requests): a change is pushed as a StateChange, and with
    closeafter=state the server ends the response after it (RFC 8620 §7.3)."""
    client._event_source_config = EventSourceConfig(types="Email,Mailbox", closeafter="state", ping=0)
    events: queue.Queue[Event | BaseException] = queue.Queue()

    def listen() -> None:
        try:
            for event in client.events:
                events.put(event)
        except BaseException as exc:  # the server closes the stream when the test ends
            events.put(exc)

    boxes = client.request(MailboxGet(ids=None))
    inbox = next(m for m in boxes.data if m.role == "inbox")  # type: ignore[union-attr]
    newest = client.request(EmailQuery(filter=EmailQueryFilterCondition(in_mailbox=inbox.id), limit=1))
    email_id = newest.ids[0]  # type: ignore[union-attr]
    before = client.request(EmailGet(ids=[])).state  # type: ignore[union-attr]

    threading.Thread(target=listen, daemon=True).start()
    # A new connection is told nothing until something changes (RFC 8620 §7.3), so change the email
    # until the listener, connecting meanwhile, hears of it.
    event: Event | BaseException | None = None
    for attempt in range(20):
        client.request(EmailSet(update={email_id: {"keywords/$seen": True if attempt % 2 == 0 else None}}))
        try:
            event = events.get(timeout=0.5)
            break
        except queue.Empty:
            continue
    assert isinstance(event, Event), event
    changed = event.data.changed[tls_demo.account_id]
    assert changed.email is not None and changed.email != before
    assert changed.mailbox is not None  # the unread counts changed too
    assert event.id  # an id to resume from (Last-Event-ID)
