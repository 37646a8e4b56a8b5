"""The side-by-side workloads: load a server's mailbox by LMTP, then measure it over JMAP and LMTP.

Every server gets the same messages and the same requests; only what must differ is looked up on each
(the account id, the mailbox ids by role, the object ids). The checks recorded under "checks" let the
report show that both servers answered the same thing (the list total, the size of the same threads,
search totals, the changes a resync sees).
"""

from __future__ import annotations

import random
import string
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import load_average
from bench.jmap import (
    MAIL,
    Calls,
    Client,
    find_by_message_id,
    list_view,
    measure,
    move,
    open_thread,
    resync,
    search,
    set_flag,
)
from bench.lmtp import deliver
from bench.mailgen import VOCABULARY, Meta, message, messages, plan
from bench.servers import RECIPIENT, Server

LOAD_SEED = 1
SEARCH_WORDS = VOCABULARY[300:3000]  # middling frequency: 0.1 - 2.5 % of the messages each
CHECK_WORDS = ["budget", "kalover", "quarterly", "zobra", "minel"]
OPENED_THREADS = 20


@dataclass
class Settings:
    clients: int = 4  # concurrent clients (and LMTP connections) for throughput
    requests: int = 100  # requests from one client, for the latencies
    requests_per_client: int = 50  # requests from each of the concurrent clients
    deliveries: int = 200  # messages over one LMTP connection
    load_connections: int = 4  # LMTP connections used to load the mailbox
    page_position: int = 5000
    index_timeout: float = 3600.0  # how long to wait for a server's search index to catch up


@dataclass
class Target:
    """A started server, its account and mailboxes, and a client to set things up with."""

    server: Server
    client: Client
    account: str
    mailboxes: dict[str, str]  # role -> id

    def connect(self) -> Client:
        return Client(self.client.api_url, self.server.auth)


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def delivered_so_far(server: Server) -> int:
    """How many messages the account holds (a partly loaded mailbox: all of them are in the Inbox)."""
    target = discover(server)
    inbox = target.mailboxes["inbox"]
    found = target.client.api([["Mailbox/get", {"accountId": target.account, "ids": [inbox]}, "m"]])
    target.client.close()
    return int(found[0][1]["list"][0]["totalEmails"])


def load_mailbox(server: Server, count: int, connections: int, skip: int = 0) -> dict[str, Any]:
    """Deliver the generated mailbox (bench/mailgen.py, in date order) over parallel LMTP connections,
    after its first `skip` messages (those of an interrupted load)."""
    if skip:
        log(f"{server.name}: going on after the first {skip:,} messages")
    done = skip
    last = time.monotonic()
    began = last

    def progress(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last >= 15:
            last = now
            rate = (done - skip) / (now - began)
            log(f"{server.name}: loaded {done:,}/{count:,} ({rate:.0f}/s, {(count - done) / rate / 60:.1f} min left,"
                f" load {load_average()})")

    corpus = (message(meta, LOAD_SEED) for meta in plan(count, LOAD_SEED)[skip:])
    cpu_before = server.cpu_seconds()
    delivered = deliver(server.lmtp_port, server.recipient, corpus, connections, progress)
    cpu = server.cpu_seconds() - cpu_before
    sent = len(delivered.latencies)
    log(f"{server.name}: loaded {sent:,} messages in {delivered.seconds:.0f} s ({delivered.per_second:.0f}/s)")
    return {"messages": sent, "skipped": skip, "connections": connections, "seconds": round(delivered.seconds, 1),
            "per_second": round(delivered.per_second, 1), "server_cpu_ms": round(cpu / max(1, sent) * 1000, 3),
            "load_average": load_average()}


def probe_message(token: str) -> bytes:
    return (f"From: Bench <bench@gen.example>\r\nTo: {RECIPIENT}\r\nSubject: probe {token}\r\n"
            f"Date: Fri, 27 Nov 2026 00:00:00 +0000\r\nMessage-ID: <probe-{token}@bench.example>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"The word {token} marks the newest message.\r\n").encode()


def wait_until_searchable(target: Target, timeout: float) -> float:
    """Deliver a message with a unique word and wait until a text search finds it. Cyrus indexes in the
    background (its squatter), in delivery order, so then everything before it is searchable too."""
    token = "qz" + "".join(random.choice(string.ascii_lowercase) for _ in range(10))
    deliver(target.server.lmtp_port, target.server.recipient, [probe_message(token)])
    began = time.monotonic()
    last_log = began
    while True:
        found = target.client.api([["Email/query", {"accountId": target.account, "filter": {"text": token},
                                                    "calculateTotal": True}, "p"]])[0][1]
        if found["total"] >= 1:
            return time.monotonic() - began
        now = time.monotonic()
        if now - began > timeout:
            raise RuntimeError(f"{target.server.name}: the search index did not catch up in {timeout:.0f} s")
        if now - last_log > 30:
            last_log = now
            log(f"{target.server.name}: waiting for the search index ({now - began:.0f} s)")
        time.sleep(0.5)


def discover(server: Server) -> Target:
    client, session = Client.discover(server.session_url, server.auth)
    account = session["primaryAccounts"][MAIL]
    mailboxes = client.api([["Mailbox/get", {"accountId": account, "properties": ["role"]}, "m"]])[0][1]["list"]
    roles = {m["role"]: m["id"] for m in mailboxes if m.get("role")}
    for role in ("inbox", "archive"):
        if role not in roles:
            raise RuntimeError(f"{server.name}: no mailbox with role {role}")
    return Target(server, client, account, roles)


def sampled_threads(count: int, sample: int = OPENED_THREADS) -> list[str]:
    """Message-IDs of random messages of the loaded mailbox: opening their threads is like a user opening
    random messages (so larger conversations come up more often, as they do)."""
    metas: list[Meta] = plan(count, LOAD_SEED)
    rng = random.Random(7)
    return [f"<m{meta.number}.s{LOAD_SEED}@gen.example>" for meta in rng.sample(metas, min(sample, len(metas)))]


def threads_by_message_id(target: Target, message_ids: list[str]) -> tuple[list[str], dict[str, int]]:
    """Each message's thread id on this server, and the thread's size (the same on every server if the
    mailbox was threaded the same way)."""
    thread_ids, sizes = [], {}
    for message_id in message_ids:
        responses = target.client.api(find_by_message_id(target.account, message_id))
        threads = responses[2][1]["list"]
        if len(threads) != 1:
            raise RuntimeError(f"{target.server.name}: {message_id} found {len(threads)} times")
        thread_ids.append(threads[0]["id"])
        sizes[message_id] = len(threads[0]["emailIds"])
    return thread_ids, sizes


def inbox_emails(target: Target, position: int, limit: int) -> list[str]:
    inbox = target.mailboxes["inbox"]
    ids: list[str] = target.client.api([["Email/query", {
        "accountId": target.account, "filter": {"inMailbox": inbox},
        "sort": [{"property": "receivedAt", "isAscending": False}], "position": position, "limit": limit}, "q"]]
    )[0][1]["ids"]
    if len(ids) < limit:
        raise RuntimeError(f"{target.server.name}: {len(ids)} emails at position {position}, {limit} wanted")
    return ids


def expect_updated(count: int) -> Callable[[list[Any]], None]:
    def check(responses: list[Any]) -> None:
        args = responses[0][1]
        if len(args.get("updated") or {}) != count or args.get("notUpdated"):
            raise RuntimeError(f"Email/set updated {len(args.get('updated') or {})} of {count}:"
                               f" {args.get('notUpdated')}")
    return check


def timed(target: Target, settings: Settings, make: Callable[[random.Random, int, int], Calls],
          check: Callable[[list[Any]], None] | None = None) -> dict[str, Any]:
    """One client (latencies), then `clients` concurrent clients (throughput and server CPU per request)."""
    server = target.server
    single = measure(target.connect, 1, settings.requests, make, check, server.cpu_seconds)
    many = measure(target.connect, settings.clients, settings.requests_per_client, make, check, server.cpu_seconds)
    one, several = single.summary(), many.summary()
    return {"p50": one["p50"], "p95": one["p95"], "min": one["min"], "n": one["n"],
            "per_second": several["per_second"], "clients": settings.clients,
            "p50_concurrent": several["p50"], "server_cpu_ms": several.get("server_cpu_ms"),
            "load_average": load_average()}


def measure_server(server: Server, size: int, settings: Settings, run_index: int) -> dict[str, Any]:
    """Everything measured on one started server whose mailbox is loaded."""
    results: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    target = discover(server)
    account, inbox, archive = target.account, target.mailboxes["inbox"], target.mailboxes["archive"]

    results["index_wait_s"] = round(wait_until_searchable(target, settings.index_timeout), 1)
    log(f"{server.name}: searchable ({results['index_wait_s']} s after the probe)")

    # What both must agree on.
    first = target.client.api(list_view(account, inbox))
    checks["list_total"] = first[0][1]["total"]
    thread_ids, checks["thread_sizes"] = threads_by_message_id(target, sampled_threads(size))
    checks["search_totals"] = {
        word: target.client.api([["Email/query", {"accountId": account, "filter": {"text": word},
                                                  "calculateTotal": True, "limit": 1}, "s"]])[0][1]["total"]
        for word in CHECK_WORDS}
    inbox_total = {m["id"]: m for m in target.client.api([["Mailbox/get", {"accountId": account,
                                                                            "ids": [inbox]}, "m"]])[0][1]["list"]}
    checks["inbox_emails"] = inbox_total[inbox]["totalEmails"]
    checks["inbox_threads"] = inbox_total[inbox]["totalThreads"]
    position = max(0, min(settings.page_position, checks["list_total"] - 50))
    results["page_position"] = position

    log(f"{server.name}: list, page, thread, search")
    results["list"] = timed(target, settings, lambda rng, c, i: list_view(account, inbox))
    results["page"] = timed(target, settings, lambda rng, c, i: list_view(account, inbox, position))
    results["thread"] = timed(target, settings, lambda rng, c, i: open_thread(account, rng.choice(thread_ids)))
    results["search"] = timed(target, settings, lambda rng, c, i: search(account, rng.choice(SEARCH_WORDS)))

    # Flag and move: each client owns its emails, and every request changes them (flag, unflag, ...).
    clients = settings.clients
    flag_ids = inbox_emails(target, 100, 10 * clients)
    log(f"{server.name}: flag, move")
    results["flag"] = timed(
        target, settings,
        lambda rng, c, i: set_flag(account, flag_ids[10 * c:10 * c + 10], i % 2 == 0), expect_updated(10))
    move_position = max(0, min(1000, checks["inbox_emails"] - 100 * clients - 200))
    move_ids = inbox_emails(target, move_position, 100 * clients)

    def move_request(rng: random.Random, c: int, i: int) -> Calls:
        ids = move_ids[100 * c:100 * c + 100]
        return move(account, ids, inbox, archive) if i % 2 == 0 else move(account, ids, archive, inbox)

    results["move"] = timed(target, settings, move_request, expect_updated(100))
    # Whatever the parity of the requests, put every moved email back into the Inbox.
    target.client.api(move(account, move_ids, archive, inbox))

    # Resync: the client knew the state before 100 new deliveries.
    log(f"{server.name}: resync, delivery")
    state = target.client.api([["Email/get", {"accountId": account, "ids": []}, "s"]])[0][1]["state"]
    deliver(server.lmtp_port, server.recipient, (raw for _, raw in messages(100, 1000 + 10 * run_index + 1)))
    changes = target.client.api(resync(account, state))[0][1]
    checks["resync_created"] = len(changes["created"])
    checks["resync_updated"] = len(changes["updated"])
    checks["resync_more"] = changes["hasMoreChanges"]
    results["resync"] = timed(target, settings, lambda rng, c, i: resync(account, state))

    # Delivery: one connection (latencies and rate), then `clients` connections (rate).
    corpus = [raw for _, raw in messages(settings.deliveries, 1000 + 10 * run_index + 2)]
    cpu_before = server.cpu_seconds()
    one = deliver(server.lmtp_port, server.recipient, corpus, 1)
    cpu_one = server.cpu_seconds() - cpu_before
    corpus = [raw for _, raw in messages(settings.deliveries * 2, 1000 + 10 * run_index + 3)]
    cpu_before = server.cpu_seconds()
    several = deliver(server.lmtp_port, server.recipient, corpus, clients)
    cpu_several = server.cpu_seconds() - cpu_before
    ordered = sorted(one.latencies)
    results["delivery"] = {
        "p50": round(ordered[len(ordered) // 2] * 1000, 3),
        "p95": round(ordered[int(len(ordered) * 0.95)] * 1000, 3),
        "per_second_one": round(one.per_second, 1), "server_cpu_ms_one": round(cpu_one / len(ordered) * 1000, 3),
        "per_second": round(several.per_second, 1), "clients": clients,
        "server_cpu_ms": round(cpu_several / len(several.latencies) * 1000, 3), "load_average": load_average(),
    }
    results["memory"] = server.memory()
    results["checks"] = checks
    results["load_average_end"] = load_average()
    target.client.close()
    return results
