"""Scale-out benchmark: the list view and delivery with 1, 2 and 4 server processes on PostgreSQL,
against one process on SQLite, on the same mailbox.

    python -m bench.scaleout --messages 100000 [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

1. Generates the mailbox (`bench/mailgen.py`, cached) and imports it into a SQLite data directory
   (`bench/mail.py`'s import: the one ingest path), then copies it into a fresh PostgreSQL database
   with `tidings migrate` (timed too).
2. For each setup, starts `tidings serve [--workers N]` and runs, for --seconds each, from --clients
   concurrent keep-alive HTTP clients:
     list      Email/query (inbox, receivedAt descending, collapseThreads, 50, calculateTotal)
               + Email/get of the 50 with list properties (one request)
     delivery  upload a new message + Email/import into the inbox, each client its own account
   and reports requests per second (and p50 latency).

Prints a Markdown table (for docs/performance.md) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import psycopg

from bench.mail import CORE, MAIL, free_port, import_mailbox, list_view
from bench.mailgen import write_mbox

MESSAGE = (
    "From: Sender {n} <sender{n}@example.net>\r\nTo: user <user@localhost>\r\nSubject: delivery {n}\r\n"
    "Message-ID: <{n}.{salt}@bench>\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nHello, this is message {n} of the delivery benchmark.\r\n"
)


def tidings(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "tidings.cli", *args], env=env, check=True, stdout=subprocess.DEVNULL)


def start(data: Path, env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    extra = ["--workers", str(workers)] if workers > 1 else []
    process = subprocess.Popen([sys.executable, "-m", "tidings.cli", "serve", "--data", str(data), "--http",
                                f"127.0.0.1:{port}", *extra], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/.well-known/jmap", auth=("bench", "bench"), timeout=2).status_code == 200:
                time.sleep(1.0)  # let every worker come up
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def api(http: httpx.Client, calls: list[list[Any]]) -> list[Any]:
    response = http.post("/jmap/api/", content=orjson.dumps({"using": [CORE, MAIL], "methodCalls": calls}),
                         headers={"Content-Type": "application/json"})
    response.raise_for_status()
    out: list[Any] = response.json()["methodResponses"]
    if any(name == "error" for name, _, _ in out):
        raise RuntimeError(out)
    return out


def run_clients(url: str, clients: int, seconds: float, step: Any) -> dict[str, float]:
    """Each client repeats `step(http, client index, n)` for `seconds`; requests/s over all clients."""
    timings: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(index: int) -> None:
        user = "bench" if step.__name__ == "list_step" else f"deliver{index}"
        http = httpx.Client(base_url=url, auth=(user, "bench"), timeout=120)
        step(http, index, -1)  # warm up (session, password cache, connection)
        barrier.wait()
        mine: list[float] = []
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            step(http, index, n)
            mine.append(time.perf_counter() - started)
            n += 1
        http.close()
        with lock:
            timings.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"rps": round(len(timings) / seconds, 1), "p50_ms": round(statistics.median(timings) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="an existing database to create the benchmark database from")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tidings-bench")
    args = parser.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    mbox = args.cache / f"mailgen-{args.messages}.mbox"
    if not mbox.exists():
        write_mbox(mbox, args.messages)
    lite = args.cache / f"scaleout-sqlite-{args.messages}"
    if not (lite / "tidings.sqlite3").exists():
        imported, seconds = import_mailbox(lite, mbox, None)
        print(f"imported {imported} messages into SQLite in {seconds:.0f} s", file=sys.stderr)
    name = f"tidings_bench_{secrets.token_hex(4)}"
    parts = urlsplit(args.postgres)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    results: dict[str, Any] = {"messages": args.messages, "clients": args.clients, "cpus": os.cpu_count()}
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    work = Path(tempfile.mkdtemp(prefix="tidings-scaleout-", dir=args.cache))
    try:
        pg_data = work / "pg"
        env = {**os.environ, "TIDINGS_ACCESS_LOG": "false", "TIDINGS_LOG_LEVEL": "warning",
               "TIDINGS_MAX_CONCURRENT_REQUESTS": "64", "TIDINGS_SQLITE_SYNCHRONOUS": "FULL"}
        started = time.perf_counter()
        tidings("migrate", "--from", str(lite), "--to", url, "--data", str(pg_data), env=env)
        results["migrate_s"] = round(time.perf_counter() - started, 1)
        print(f"tidings migrate: {results['migrate_s']} s", file=sys.stderr)
        # Delivery goes to accounts of their own (one per client), so writers do not queue on one account.
        lite_copy = work / "sqlite"
        shutil.copytree(lite, lite_copy)
        for index in range(args.clients):
            for store, data in (("", lite_copy), (url, pg_data)):
                tidings("user", "add", f"deliver{index}", "--password", "bench", "--data", str(data),
                        env={**env, "TIDINGS_STORE": store})
        setups = [("SQLite", 1, "", lite_copy)] + [
            ("PostgreSQL", int(n), url, pg_data) for n in args.processes.split(",")]
        salt = secrets.token_hex(4)
        for label, processes, store, data in setups:
            process, server = start(data, {**env, "TIDINGS_STORE": store}, processes)
            try:
                probe = httpx.Client(base_url=server, auth=("bench", "bench"), timeout=60)
                account = probe.get("/.well-known/jmap").json()["primaryAccounts"][MAIL]
                boxes = api(probe, [["Mailbox/get", {"accountId": account}, "m"]])[0][1]["list"]
                inbox = next(m["id"] for m in boxes if m["role"] == "inbox")

                def list_step(http: httpx.Client, index: int, n: int, account: str = account,
                              inbox: str = inbox) -> None:
                    api(http, list_view(account, inbox))

                def delivery_step(http: httpx.Client, index: int, n: int, label: str = label,
                                  processes: int = processes) -> None:
                    session = http.get("/.well-known/jmap").json() if n < 0 else None
                    if session is not None:
                        http.headers["X-Account"] = session["primaryAccounts"][MAIL]
                        boxes = api(http, [["Mailbox/get", {"accountId": http.headers["X-Account"]}, "m"]])
                        http.headers["X-Inbox"] = next(m["id"] for m in boxes[0][1]["list"] if m["role"] == "inbox")
                        return
                    own = http.headers["X-Account"]
                    raw = MESSAGE.format(n=f"{label}{processes}-{index}-{n}", salt=salt).encode()
                    blob = http.post(f"/jmap/upload/{own}/", content=raw, headers={"Content-Type": "message/rfc822"})
                    blob.raise_for_status()
                    api(http, [["Email/import", {"accountId": own, "emails": {"m": {
                        "blobId": blob.json()["blobId"], "mailboxIds": {http.headers["X-Inbox"]: True}}}}, "i"]])

                key = f"{label} {processes}"
                results[key] = {
                    "list": run_clients(server, args.clients, args.seconds, list_step),
                    "delivery": run_clients(server, args.clients, args.seconds, delivery_step),
                }
                print(key, results[key], file=sys.stderr)
            finally:
                process.terminate()
                process.wait(60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(table(results))
    print(json.dumps(results))


def table(results: dict[str, Any]) -> str:
    lines = [f"| {results['messages']:,} messages, {results['clients']} clients, {results['cpus']} cores"
             " | list view (req/s) | list p50 | delivery (msg/s) | delivery p50 |", "|---|---|---|---|---|"]
    for key, value in results.items():
        if isinstance(value, dict) and "list" in value:
            processes = key.split()[-1]
            name = f"{key.split()[0]}, {processes} process{'es' if processes != '1' else ''}"
            lines.append(f"| {name} | {value['list']['rps']} | {value['list']['p50_ms']} ms |"
                         f" {value['delivery']['rps']} | {value['delivery']['p50_ms']} ms |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
