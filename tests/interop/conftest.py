"""Real JMAP clients, written by others, driven against a real Tidings on loopback.

Each journey runs against the demo mailbox (`tidings.demo`), so the clients see realistic mail:
threads with replies, attachments, unread and flagged messages. A failing step is a bug in Tidings
unless the client is provably wrong against the RFC; then the test says so, citing the RFC, and
goes on with the rest of the journey.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from tidings.demo import fill
from tidings.server import Tidings

from ..helpers import LiveServer, make_tidings
from ..smtp.sink import Sink

PASSWORD = "demo-password"


@dataclass
class Demo:
    """A running server whose `demo` user has the demo mailbox."""

    server: LiveServer
    data: Path
    username: str
    password: str
    address: str
    account_id: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def session_url(self) -> str:
        return f"{self.server.url}/.well-known/jmap"

    def token(self, label: str) -> str:
        """A bearer token, made the way an administrator makes one: `tidings token create`."""
        out = subprocess.run(
            [sys.executable, "-m", "tidings.cli", "token", "create", self.username, "--label", label,
             "--data", str(self.data)],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()


def _demo(
    tmp_path: Path, tls: tuple[str, str] | None = None, sink: Sink | None = None
) -> Iterator[Demo]:
    data = tmp_path / "data"
    mail = {"smtp_relay": f"127.0.0.1:{sink.port}", "queue_retry": [0.2]} if sink else {}
    tidings: Tidings = make_tidings(data, **mail)
    user = tidings.accounts.add_user("demo", PASSWORD)
    fill(tidings.store, user.account_id, user.address)
    # With a sink, the outbound queue runs too and relays every message sent to it.
    server = LiveServer(tidings, tls=tls, mail={"poll": 0.2} if sink else None).start()
    try:
        yield Demo(server, data, "demo", PASSWORD, user.address, user.account_id)
    finally:
        server.stop()
        tidings.close()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    yield from _demo(tmp_path)


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A test SMTP server on loopback: the smarthost the outbound queue relays through."""
    server = Sink().start()
    yield server
    server.stop()


@pytest.fixture
def mail_demo(tmp_path: Path, sink: Sink) -> Iterator[Demo]:
    """The demo server with its outbound queue relaying to `sink`."""
    yield from _demo(tmp_path, sink=sink)


def wait_for(predicate: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority for the HTTPS journeys."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def tls_demo(tmp_path: Path, ca: trustme.CA) -> Iterator[Demo]:
    """The demo server over HTTPS, as `tidings serve --tls-cert --tls-key` runs it."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_file))
    yield from _demo(tmp_path, tls=(str(cert_file), str(key_file)))


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context
