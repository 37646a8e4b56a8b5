"""Several server processes on one PostgreSQL store (docs/deployment.md): any process serves any
request, pushes cross processes, concurrent writes through different processes lose nothing, and a
process killed mid-request leaves nothing half-done.

Real `tidings serve` processes on loopback ports, started as an operator would, sharing the store
(`--store`) and the blob directory (`--data`), as two machines sharing a database and a file system.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..helpers import CORE, MAIL, JmapClient, basic
from ..push.pushtools import json_of
from ..stores import POSTGRESQL, store_for
from .test_push_eventsource import EventReader

AUTH = basic("alice", "secret")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tidings(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=True)


class Process:
    """One `tidings serve` process."""

    def __init__(self, data: Path, env: dict[str, str], *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (data.parent / f"serve-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidings.cli", "serve", "--data", str(data), "--http", f"127.0.0.1:{self.port}",
             *extra],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/.well-known/jmap", headers={"Authorization": AUTH}).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server on {self.port} did not start")

    def client(self) -> JmapClient:
        return JmapClient(self.url, AUTH)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(20)
        self.log.close()
        return code


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, store_backend: str) -> Iterator[dict[str, Any]]:
    if store_backend != POSTGRESQL:
        pytest.skip("several server processes need the PostgreSQL store")
    data = tmp_path_factory.mktemp("cluster") / "data"
    env = {**os.environ, "TIDINGS_STORE": store_for(data), "TIDINGS_ACCESS_LOG": "false"}
    _tidings("db", "init", "--data", str(data), env=env)
    _tidings("user", "add", "alice", "--password", "secret", "--data", str(data), env=env)
    first, second = Process(data, env), Process(data, env)
    yield {"data": data, "env": env, "a": first, "b": second}
    first.stop()
    second.stop()


def _state(client: JmapClient, type_name: str) -> str:
    return str(client.ok(f"{type_name}/get", {"ids": []})["state"])


def test_an_upload_on_one_process_downloads_from_another(cluster: dict[str, Any]) -> None:
    a, b = cluster["a"].client(), cluster["b"].client()
    response = a.http.post(f"/jmap/upload/{a.account_id}/", content=b"shared bytes",
                           headers={"Content-Type": "text/plain"})
    assert response.status_code == 201
    blob_id = response.json()["blobId"]
    download = b.http.get(f"/jmap/download/{b.account_id}/{blob_id}/x.txt?type=text/plain")
    assert download.status_code == 200 and download.content == b"shared bytes"


def test_a_change_on_one_process_is_pushed_by_another(cluster: dict[str, Any]) -> None:
    a = cluster["a"].client()
    url = f"{cluster['b'].url}/jmap/eventsource/?types=*&closeafter=no&ping=0"
    reader = EventReader(url, {"Authorization": AUTH})
    try:
        assert reader.status == 200
        time.sleep(0.3)
        created = a.ok("Mailbox/set", {"create": {"m": {"name": "Pushed across"}}})
        (event,) = reader.wait_for("state")
        assert json_of(event) == {"@type": "StateChange", "changed": {a.account_id: {"Mailbox": created["newState"]}}}
    finally:
        reader.close()


def test_concurrent_writes_through_both_processes_lose_nothing(cluster: dict[str, Any]) -> None:
    clients = [cluster[p].client() for p in ("a", "b") for _ in range(3)]
    inbox = next(m["id"] for m in clients[0].ok("Mailbox/get", {"ids": None})["list"] if m["role"] == "inbox")
    email = clients[0].ok("Email/set", {"create": {"e": {
        "mailboxIds": {inbox: True}, "subject": "flags", "from": [{"email": "x@example.com"}],
        "bodyValues": {"1": {"value": "hi"}}, "textBody": [{"partId": "1", "type": "text/plain"}]}}})
    email_id = email["created"]["e"]["id"]
    errors: list[str] = []
    states: dict[int, list[int]] = {}

    def flag(n: int, client: JmapClient) -> None:
        states[n] = []
        for k in range(6):
            result = client.ok("Email/set", {"update": {email_id: {f"keywords/$k{n}x{k}": True}}})
            if result.get("notUpdated"):
                errors.append(str(result["notUpdated"]))
            states[n].append(int(result["newState"]))

    threads = [threading.Thread(target=flag, args=(n, c)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Every patch survived (no lost update), and each client saw its states only grow.
    for client in (cluster["a"].client(), cluster["b"].client()):
        (got,) = client.ok("Email/get", {"ids": [email_id], "properties": ["keywords"]})["list"]
        assert set(got["keywords"]) == {f"$k{n}x{k}" for n in range(len(clients)) for k in range(6)}
    assert all(s == sorted(s) and len(set(s)) == len(s) for s in states.values())
    every = [s for ss in states.values() for s in ss]
    assert len(set(every)) == len(every)  # each change took its own number
    mailbox = next(m for m in clients[0].ok("Mailbox/get", {"ids": [inbox]})["list"])
    assert mailbox["totalEmails"] == 1


def test_if_in_state_holds_across_processes(cluster: dict[str, Any]) -> None:
    clients = [cluster[p].client() for p in ("a", "b") for _ in range(4)]
    state = _state(clients[0], "Mailbox")
    outcomes: list[str] = []
    barrier = threading.Barrier(len(clients))

    def attempt(n: int, client: JmapClient) -> None:
        barrier.wait()
        name, out = client.call("Mailbox/set", {"ifInState": state, "create": {"m": {"name": f"race {n}"}}})
        outcomes.append(out.get("type", "ok") if name == "error" else "ok")

    threads = [threading.Thread(target=attempt, args=(n, c)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["stateMismatch"] * (len(clients) - 1)


def test_a_process_killed_mid_request_leaves_nothing_half_done(cluster: dict[str, Any]) -> None:
    victim = Process(cluster["data"], cluster["env"])
    survivor = cluster["b"].client()
    before = _state(survivor, "Mailbox")
    count_before = len(survivor.ok("Mailbox/get", {"ids": None})["list"])
    creates = {f"k{n}": {"name": f"Killed {n}"} for n in range(800)}
    body = {"using": [CORE, MAIL], "methodCalls": [["Mailbox/set", {"accountId": survivor.account_id,
                                                                     "create": creates}, "0"]]}
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(httpx.post(f"{victim.url}/jmap/api/", json=body, headers={"Authorization": AUTH},
                                      timeout=60).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.4)
    victim.stop(signal.SIGKILL)
    sender.join()
    # All of the /set or none of it: no mailbox without its change record, no state without its rows.
    after = survivor.ok("Mailbox/get", {"ids": None})["list"]
    added = len(after) - count_before
    assert added in (0, 800), (added, outcome)
    changes = survivor.ok("Mailbox/changes", {"sinceState": before})
    assert len(changes["created"]) == added
    assert (changes["newState"] == before) == (added == 0)
    # The store goes on serving writes.
    survivor.ok("Mailbox/set", {"create": {"z": {"name": "After the kill"}}})


def test_workers_share_one_port_and_stop_on_sigterm(cluster: dict[str, Any]) -> None:
    workers = Process(cluster["data"], cluster["env"], "--workers", "2")
    try:
        clients = [workers.client() for _ in range(6)]
        for n, client in enumerate(clients):
            client.ok("Mailbox/set", {"create": {"w": {"name": f"worker {n}"}}})
    finally:
        assert workers.stop() == 0
