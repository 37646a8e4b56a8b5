"""kill -9 during writes never leaves a half-applied /set or a corrupt store.

A real `tidings serve` takes a stream of Mailbox/set calls, each creating a pair of mailboxes and
destroying the previous pair in one call. It is killed with SIGKILL at a different moment each round
(after a seeded number of acknowledged writes, with the next write in flight). After each kill the
database must pass SQLite's integrity check, hold exactly one whole pair (never half of one, never
two), keep every acknowledged write, and keep the change log consistent with the rows and states.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ..helpers import USING, make_tidings

TIDINGS = Path(sys.executable).with_name("tidings")
ROUNDS = 5


def _start(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update({"TIDINGS_ACCESS_LOG": "false", "TIDINGS_LOG_LEVEL": "warning"})
    process = subprocess.Popen([str(TIDINGS), "serve", "--data", str(data), "--http", f"127.0.0.1:{port}"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)


def _pairs(boxes: list[dict[str, Any]]) -> dict[int, dict[str, str]]:
    pairs: dict[int, dict[str, str]] = {}
    for box in boxes:
        if box["name"].startswith("p"):
            number, half = box["name"][1:].split("-")
            pairs.setdefault(int(number), {})[half] = box["id"]
    return pairs


class Writer(threading.Thread):
    def __init__(self, url: str, token: str, account: str, number: int, previous: list[str]) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.account, self.number, self.previous = account, number, previous
        self.acknowledged = 0  # the last pair number the server confirmed
        self.progress = threading.Condition()

    def run(self) -> None:
        try:
            while True:
                number = self.number + 1
                call = {"accountId": self.account, "destroy": self.previous,
                        "create": {"a": {"name": f"p{number}-a"}, "b": {"name": f"p{number}-b"}}}
                body = orjson.dumps({"using": USING, "methodCalls": [["Mailbox/set", call, "s"]]})
                response = self.http.post("/jmap/api/", content=body, headers={"Content-Type": "application/json"})
                result = response.json()["methodResponses"][0][1]
                assert not result["notCreated"] and not result["notDestroyed"], result
                self.previous = [result["created"]["a"]["id"], result["created"]["b"]["id"]]
                self.number = number
                with self.progress:
                    self.acknowledged = number
                    self.progress.notify_all()
        except (httpx.HTTPError, OSError):
            return  # the server was killed

    def wait_for(self, count: int) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: self.acknowledged >= count, timeout=60)


def _check_store(path: Path, account_pk: int) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        live = {f"M{i}" for (i,) in conn.execute("SELECT id FROM mailboxes WHERE account_id = ?", (account_pk,))}
        logged = {o for (o,) in conn.execute(
            "SELECT object_id FROM changelog WHERE account_id = ? AND type = 'Mailbox' AND destroyed = 0",
            (account_pk,))}
        # Every mailbox has its change log row (one: the key says so) and no live row lacks its mailbox.
        assert live == logged
        max_change = conn.execute("SELECT max(modseq) FROM changelog WHERE account_id = ? AND type = 'Mailbox'",
                                  (account_pk,)).fetchone()[0]
        state = conn.execute("SELECT modseq FROM type_states WHERE account_id = ? AND type = 'Mailbox'",
                             (account_pk,)).fetchone()[0]
        account_modseq = conn.execute("SELECT modseq FROM accounts WHERE id = ?", (account_pk,)).fetchone()[0]
        overall = conn.execute("SELECT max(modseq) FROM changelog WHERE account_id = ?", (account_pk,)).fetchone()[0]
        assert state == max_change
        assert account_modseq >= overall


@pytest.mark.sqlite_only  # counts set, and the file checked, through SQLite directly
def test_kill_9_at_random_moments_never_half_applies_a_set(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tidings = make_tidings(data)
    with tidings.store.directory(write=True) as directory:
        user = directory.add_user("crash", "crash@localhost", "unused-hash")
    from tidings.mail.mailbox import provision

    with tidings.store.write(user.account_id) as tx:
        provision(tx)
    token = tidings.accounts.create_token("crash")
    tidings.close()
    account, account_pk = user.account_id, int(user.account_id[1:])
    chooser = random.Random(8620)
    acknowledged = 0
    for _ in range(ROUNDS):
        process, url = _start(data)
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
                body = orjson.dumps({"using": USING, "methodCalls": [["Mailbox/get", {"accountId": account}, "g"]]})
                boxes = http.post("/jmap/api/", content=body).json()["methodResponses"][0][1]["list"]
            pairs = _pairs(boxes)
            # Exactly one whole pair (or none before the first write), at least as new as the last
            # acknowledged one: acknowledged writes are durable, unacknowledged ones all-or-nothing.
            assert all(set(halves) == {"a", "b"} for halves in pairs.values()), pairs
            assert len(pairs) == (1 if acknowledged else 0), pairs
            number = max(pairs, default=0)
            assert number >= acknowledged
            writer = Writer(url, token, account, number, list(pairs.get(number, {}).values()))
            writer.start()
            writer.wait_for(number + chooser.randint(2, 12))
            # Land the kill at a different point inside the next write each round.
            time.sleep(chooser.random() * 0.005)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        writer.join(30)
        acknowledged = writer.acknowledged
        _check_store(data / "tidings.sqlite3", account_pk)
    assert acknowledged >= ROUNDS * 2
