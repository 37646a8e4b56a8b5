"""A small JMAP client for the benchmarks, the requests they send, and the timing loop.

The request builders are plain functions of (accountId, ids, ...) so that the same request goes to every
server: only the account id and the object ids differ.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

import httpx
import orjson

from bench.common import percentile

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
LIST_PROPERTIES = ["threadId", "mailboxIds", "keywords", "size", "receivedAt", "from", "to", "subject", "preview",
                   "hasAttachment"]
THREAD_PROPERTIES = ["threadId", "mailboxIds", "keywords", "receivedAt", "from", "to", "cc", "subject", "sentAt",
                     "htmlBody", "textBody", "attachments", "bodyValues"]
Calls = list[list[Any]]


class MethodError(RuntimeError):
    """A JMAP method answered with an error response."""


class Client:
    """One keep-alive HTTP connection to a JMAP server's API endpoint."""

    def __init__(self, api_url: str, auth: tuple[str, str], timeout: float = 300) -> None:
        self.api_url = api_url
        self.http = httpx.Client(auth=auth, timeout=timeout)

    @classmethod
    def discover(cls, session_url: str, auth: tuple[str, str]) -> tuple[Client, dict[str, Any]]:
        """Read the session resource; its URLs may be relative to the session URL (Cyrus sends "/jmap/")."""
        response = httpx.get(session_url, auth=auth, timeout=60, follow_redirects=True)
        response.raise_for_status()
        session: dict[str, Any] = response.json()
        return cls(urljoin(str(response.url), session["apiUrl"]), auth), session

    def api(self, calls: Calls) -> list[Any]:
        body = orjson.dumps({"using": [CORE, MAIL], "methodCalls": calls})
        response = self.http.post(self.api_url, content=body, headers={"Content-Type": "application/json"})
        response.raise_for_status()
        out: list[Any] = orjson.loads(response.content)["methodResponses"]
        for name, args, _ in out:
            if name == "error":
                raise MethodError(f"method error: {args}")
        return out

    def close(self) -> None:
        self.http.close()


def list_view(account: str, inbox: str, position: int = 0) -> Calls:
    """The mailbox list a client shows: newest conversations first, with their total."""
    return [
        ["Email/query", {"accountId": account, "filter": {"inMailbox": inbox},
                         "sort": [{"property": "receivedAt", "isAscending": False}], "collapseThreads": True,
                         "position": position, "limit": 50, "calculateTotal": True}, "q"],
        ["Email/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": LIST_PROPERTIES}, "g"],
    ]


def open_thread(account: str, thread_id: str) -> Calls:
    """Opening a conversation: its emails with their HTML bodies."""
    return [
        ["Thread/get", {"accountId": account, "ids": [thread_id]}, "t"],
        ["Email/get", {"accountId": account,
                       "#ids": {"resultOf": "t", "name": "Thread/get", "path": "/list/*/emailIds"},
                       "properties": THREAD_PROPERTIES, "fetchHTMLBodyValues": True}, "e"],
    ]


def search(account: str, word: str) -> Calls:
    """The search box: matching conversations, their highlighted snippets and list properties."""
    text_filter = {"text": word}
    return [
        ["Email/query", {"accountId": account, "filter": text_filter,
                         "sort": [{"property": "receivedAt", "isAscending": False}], "collapseThreads": True,
                         "limit": 20}, "s"],
        ["SearchSnippet/get", {"accountId": account, "filter": text_filter,
                               "#emailIds": {"resultOf": "s", "name": "Email/query", "path": "/ids"}}, "n"],
        ["Email/get", {"accountId": account, "#ids": {"resultOf": "s", "name": "Email/query", "path": "/ids"},
                       "properties": LIST_PROPERTIES}, "g"],
    ]


def set_flag(account: str, email_ids: list[str], flagged: bool) -> Calls:
    """Flag (or unflag) emails with a keyword patch (RFC 8621 §4.6: "keywords/$flagged")."""
    return [["Email/set", {"accountId": account,
                           "update": {i: {"keywords/$flagged": True if flagged else None} for i in email_ids}}, "f"]]


def move(account: str, email_ids: list[str], source: str, target: str) -> Calls:
    """Move emails from one mailbox to another with mailboxIds patches."""
    patch = {f"mailboxIds/{source}": None, f"mailboxIds/{target}": True}
    return [["Email/set", {"accountId": account, "update": {i: patch for i in email_ids}}, "m"]]


def resync(account: str, since_state: str) -> Calls:
    """A client coming back: what changed among the emails since its state, and its mailboxes with counts."""
    return [
        ["Email/changes", {"accountId": account, "sinceState": since_state}, "c"],
        ["Mailbox/get", {"accountId": account}, "b"],
    ]


def find_by_message_id(account: str, message_id: str) -> Calls:
    """The email with this Message-ID (angle brackets included), and its thread."""
    return [
        ["Email/query", {"accountId": account, "filter": {"header": ["Message-ID", message_id]}}, "q"],
        ["Email/get", {"accountId": account, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": ["threadId"]}, "g"],
        ["Thread/get", {"accountId": account,
                        "#ids": {"resultOf": "g", "name": "Email/get", "path": "/list/*/threadId"}}, "t"],
    ]


# make(rng, client_index, iteration) -> the request to send
RequestMaker = Callable[[random.Random, int, int], Calls]


class Timings:
    """Latencies (milliseconds) of one measurement, with the wall-clock time it took and the server's CPU."""

    def __init__(self, latencies: list[float], seconds: float, server_cpu: float | None = None) -> None:
        self.latencies = latencies
        self.seconds = seconds
        self.server_cpu = server_cpu

    def summary(self) -> dict[str, float]:
        out = {
            "n": len(self.latencies),
            "p50": round(statistics.median(self.latencies), 3),
            "p95": round(percentile(self.latencies, 95), 3),
            "min": round(min(self.latencies), 3),
            "per_second": round(len(self.latencies) / self.seconds, 2),
        }
        if self.server_cpu is not None:
            out["server_cpu_ms"] = round(self.server_cpu / len(self.latencies) * 1000, 3)
        return out


def measure(connect: Callable[[], Client], clients: int, requests: int, make: RequestMaker,
            check: Callable[[list[Any]], None] | None = None, server_cpu: Callable[[], float] | None = None,
            warmup: int = 1) -> Timings:
    """`clients` threads, each on its own keep-alive connection, send `warmup` then `requests` requests;
    all start together after their warm-up. Returns the latencies of the timed requests, the time from
    the common start to the last answer (for the throughput) and the server's CPU over that time."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        rng = random.Random(index)
        client = connect()
        try:
            for iteration in range(warmup):
                client.api(make(rng, index, iteration))
        except BaseException as error:
            errors.append(error)
            start.abort()
            client.close()
            return
        try:
            start.wait()
        except threading.BrokenBarrierError:
            client.close()
            return
        mine = []
        try:
            for iteration in range(warmup, warmup + requests):
                calls = make(rng, index, iteration)
                began = time.perf_counter()
                responses = client.api(calls)
                mine.append((time.perf_counter() - began) * 1000)
                if check is not None:
                    check(responses)
        except BaseException as error:
            errors.append(error)
        finally:
            client.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    cpu_before = server_cpu() if server_cpu else 0.0
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu = server_cpu() - cpu_before if server_cpu else None
    if errors:
        raise errors[0]
    return Timings(latencies, elapsed, cpu)
