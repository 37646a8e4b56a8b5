from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.server import Tidings

from ..helpers import JmapClient, LiveServer, make_tidings
from .sink import Sink

MAIL_CONFIG = {
    "domain": "example.com",
    "hostname": "mx.example.com",
    "lmtp": "127.0.0.1:0",
    "smtp": "127.0.0.1:0",
    "local_domains": ["example.com", "example.net"],
    "aliases": {"postmaster@example.com": "alice", "sales@example.net": "bob@example.com"},
    "catch_all": {"example.net": "alice"},
    "max_message_size": 200_000,
    "queue_retry": [0.2],
    "queue_give_up": 60,
}


def require_mailflow(instance: Tidings) -> None:
    """Skip on a backend whose schema lacks the mail flow tables (store/sqlite/migrations/0004)."""
    try:
        with instance.store.outbound_queue() as queue:
            queue.next_due()
    except Exception as exc:
        instance.close()
        pytest.skip(f"this store has no mail flow tables yet: {type(exc).__name__}")


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink().start()
    yield server
    server.stop()


@pytest.fixture
def mail_tidings(tmp_path: Path, sink: Sink) -> Iterator[Tidings]:
    instance = make_tidings(tmp_path / "data", **MAIL_CONFIG, smtp_relay=f"127.0.0.1:{sink.port}")
    require_mailflow(instance)
    instance.accounts.add_user("alice", "secret")
    instance.accounts.add_user("bob", "hunter2")
    yield instance
    instance.close()


@pytest.fixture
def mail_server(mail_tidings: Tidings) -> Iterator[LiveServer]:
    live = LiveServer(mail_tidings, mail={"poll": 0.2}).start()
    yield live
    live.stop()


@pytest.fixture
def alice(mail_server: LiveServer) -> Iterator[JmapClient]:
    client = mail_server.client("alice", "secret")
    yield client
    client.close()


@pytest.fixture
def lmtp(mail_server: LiveServer) -> Iterator[smtplib.LMTP]:
    assert mail_server.transports is not None and mail_server.transports.lmtp_port
    client = smtplib.LMTP("127.0.0.1", mail_server.transports.lmtp_port)
    client.ehlo("client.test")
    yield client
    try:
        client.quit()
    except smtplib.SMTPServerDisconnected:
        pass


@pytest.fixture
def smtp(mail_server: LiveServer) -> Iterator[smtplib.SMTP]:
    assert mail_server.transports is not None and mail_server.transports.smtp_port
    client = smtplib.SMTP("127.0.0.1", mail_server.transports.smtp_port)
    client.ehlo("client.test")
    yield client
    try:
        client.quit()
    except smtplib.SMTPServerDisconnected:
        pass
