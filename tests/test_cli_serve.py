"""`tidings serve` and `tidings demo` as a person runs them: a real process, TLS, the demo mailbox."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trustme

from tidings.cli import main

from .helpers import USING


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_files(ca: trustme.CA, folder: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


@contextmanager
def running(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(15)


def _wait_for(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stdout is not None
            raise AssertionError(f"the server exited: {process.stdout.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not start listening")


def test_serve_speaks_https_with_a_certificate(tmp_path: Path, ca: trustme.CA) -> None:
    data = str(tmp_path / "data")
    assert main(["user", "add", "alice", "--password", "secret", "--data", data]) == 0
    cert, key = _tls_files(ca, tmp_path)
    port = _free_port()
    args = ["serve", "--data", data, "--http", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key)]
    with running(*args) as process:
        _wait_for(port, process)
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with httpx.Client(verify=context, auth=("alice", "secret")) as client:
            session = client.get(f"https://127.0.0.1:{port}/.well-known/jmap").json()
            # Every URL of the session names the scheme the client came in on.
            assert session["apiUrl"] == f"https://127.0.0.1:{port}/jmap/api/"
            assert session["uploadUrl"].startswith("https://") and session["downloadUrl"].startswith("https://")
            assert session["eventSourceUrl"].startswith("https://")
        # Plain HTTP on a TLS port gets no JMAP answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/.well-known/jmap", auth=("alice", "secret"), timeout=5)


def test_tls_needs_both_certificate_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--data", str(tmp_path), "--tls-cert", str(tmp_path / "cert.pem")]) == 2
    assert "--tls-key" in capsys.readouterr().err


def test_demo_serves_a_filled_mailbox_once(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    counts = []
    for _ in range(2):  # a restart keeps the mailbox as it was
        port = _free_port()
        with running("demo", "--data", data, "--http", f"127.0.0.1:{port}") as process:
            _wait_for(port, process)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=("demo", "demo")) as client:
                response = client.post(
                    "/jmap/api/",
                    json={
                        "using": USING,
                        "methodCalls": [["Mailbox/query", {"accountId": "A1", "filter": {"role": "inbox"}}, "0"]],
                    },
                )
                responses = response.json()["methodResponses"]
                inbox = responses[0][1]["ids"][0]
                query = client.post(
                    "/jmap/api/",
                    json={"using": USING, "methodCalls": [
                        ["Email/query", {"accountId": "A1", "filter": {"inMailbox": inbox}, "collapseThreads": True,
                                         "calculateTotal": True}, "0"],
                        ["Email/get", {"accountId": "A1", "#ids": {"resultOf": "0", "name": "Email/query",
                                                                   "path": "/ids"}, "properties": ["subject"]}, "1"],
                    ]},
                ).json()["methodResponses"]
                counts.append(query[0][1]["total"])
                assert len(query[1][1]["list"]) == query[0][1]["total"] > 10
        assert process.stdout is not None
        printed = process.stdout.read()
        assert "user:     demo" in printed
    assert counts[0] == counts[1]
    assert "Delivered" not in printed  # the second run delivered nothing
