"""Scale-out benchmark: the list view and delivery with 1, 2 and 4 server processes on PostgreSQL,
against one process on SQLite, on the same mailbox.

    python -m bench.scaleout --messages 100000 [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

1. Generates the mailbox (`bench/mailgen.py`, cached) and imports it into a SQLite data directory
   (`bench/mail.py`'s import: the one ingest path), then copies it once into a PostgreSQL template
   database with `tidings migrate` (timed; cached under --cache with its blob directory, like the
   SQLite copy). Each run starts from fresh copies: `CREATE DATABASE ... TEMPLATE` and a hard-linked
   blob directory (blob files are immutable), upgraded with `tidings db migrate` if the schema moved.
2. For each setup, starts `tidings serve [--workers N]` and runs, for --seconds each, from --clients
   concurrent keep-alive HTTP clients:
     list      Email/query (inbox, receivedAt descending, collapseThreads, 50, calculateTotal)
               + Email/get of the 50 with list properties (one request)
     delivery  upload a new message + Email/import into the inbox, each client its own account
   and reports requests per second, p50 latency, and the CPU time spent per request by the server
   processes and by the PostgreSQL backends serving the benchmark database (utime + stime from
   /proc, which stays meaningful when the machine is loaded), the clients' own CPU per request (to
   show they are not the limit), and the load average.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import psycopg

from bench.common import cpu_seconds, free_port
from bench.jmap import CORE, MAIL, list_view
from bench.mail import import_mailbox
from bench.mailgen import write_mbox

MESSAGE = (
    "From: Sender {n} <sender{n}@example.net>\r\nTo: user <user@localhost>\r\nSubject: delivery {n}\r\n"
    "Message-ID: <{n}.{salt}@bench>\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nHello, this is message {n} of the delivery benchmark.\r\n"
)
Step = Callable[[httpx.Client, int, int], None]


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


def process_cpu(pid: int) -> float:
    """utime + stime of one process, in seconds (0 once it has gone)."""
    try:
        return cpu_seconds(pid)
    except OSError:
        return 0.0


def server_pids(process: subprocess.Popen[bytes]) -> list[int]:
    """The server process and its workers (forked by the supervisor)."""
    pids = [process.pid]
    try:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    except OSError:
        children = []
    return pids + [int(c) for c in children]


class CpuMeter:
    """CPU time of the server processes and of the PostgreSQL backends serving one database."""

    def __init__(self, process: subprocess.Popen[bytes], admin_url: str | None, database: str | None) -> None:
        self.process = process
        self.admin_url = admin_url
        self.database = database

    def backend_pids(self) -> list[int]:
        if self.admin_url is None:
            return []
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            # Client backends only: an autovacuum worker that happens to run is not the requests' work.
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
                                " AND backend_type = 'client backend'", (self.database,)).fetchall()
        return [int(r[0]) for r in rows]

    def sample(self) -> tuple[dict[int, float], dict[int, float]]:
        return ({p: process_cpu(p) for p in server_pids(self.process)},
                {p: process_cpu(p) for p in self.backend_pids()})

    @staticmethod
    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        # A backend that appeared during the run counts from 0 (the pool opened it for this run).
        return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def api(http: httpx.Client, calls: list[list[Any]]) -> list[Any]:
    response = http.post("/jmap/api/", content=orjson.dumps({"using": [CORE, MAIL], "methodCalls": calls}),
                         headers={"Content-Type": "application/json"})
    response.raise_for_status()
    out: list[Any] = response.json()["methodResponses"]
    if any(name == "error" for name, _, _ in out):
        raise RuntimeError(out)
    return out


def run_clients(url: str, clients: int, seconds: float, step: Step, user: Callable[[int], str],
                meter: CpuMeter) -> dict[str, float]:
    """Each client repeats `step(http, client index, n)` for `seconds`; requests/s over all clients,
    p50 latency, server and database CPU per request, and the load average around the run."""
    timings: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    done = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        http = httpx.Client(base_url=url, auth=(user(index), "bench"), timeout=120)
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
        with lock:
            timings.extend(mine)
        done.wait()
        http.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    load_before = os.getloadavg()[0]
    server_before, db_before = meter.sample()
    client_before = process_cpu(os.getpid())
    started = time.perf_counter()
    done.wait()
    elapsed = time.perf_counter() - started
    client_cpu = process_cpu(os.getpid()) - client_before
    server_after, db_after = meter.sample()
    load_after = os.getloadavg()[0]
    for t in threads:
        t.join()
    count = len(timings)
    return {
        "rps": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(timings) * 1000, 1),
        "server_cpu_ms": round(CpuMeter.spent(server_before, server_after) / count * 1000, 2),
        "db_cpu_ms": round(CpuMeter.spent(db_before, db_after) / count * 1000, 2),
        # The clients' own CPU (one process, GIL-bound): near a second per second, they are the limit.
        "client_cpu_ms": round(client_cpu / count * 1000, 2),
        "load": round(max(load_before, load_after), 1),
    }


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def prepare_template(args: argparse.Namespace, lite: Path, env: dict[str, str]) -> tuple[str, Path, float | None]:
    """The PostgreSQL copy of the SQLite store (database name, blob directory), made once and cached."""
    template = f"tidings_scaleout_{args.messages}"
    blobs = args.cache / f"scaleout-pg-{args.messages}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,)).fetchone()
        if exists and (blobs / "ready").exists():
            return template, blobs, None
        admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{template}"')
    shutil.rmtree(blobs, ignore_errors=True)
    url = database_url(args.postgres, template)
    started = time.perf_counter()
    tidings("migrate", "--from", str(lite), "--to", url, "--data", str(blobs), env=env)
    seconds = time.perf_counter() - started
    print(f"tidings migrate: {seconds:.0f} s", file=sys.stderr)
    # Delivery goes to accounts of their own (one per client), so writers do not queue on one account.
    for index in range(args.clients):
        tidings("user", "add", f"deliver{index}", "--password", "bench", "--data", str(blobs),
                env={**env, "TIDINGS_STORE": url})
    (blobs / "ready").touch()
    return template, blobs, seconds


def link_tree(source: Path, target: Path) -> None:
    """A copy of a data directory whose blob files are hard links (blobs are never rewritten)."""
    def copy(src: str, dst: str) -> None:
        if "/blobs/" in src:
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=copy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--processes", default="1,2,4", help="PostgreSQL server processes to try, e.g. 1,2,4")
    parser.add_argument("--sqlite", action=argparse.BooleanOptionalAction, default=True,
                        help="also run one SQLite process (default: yes)")
    parser.add_argument("--workloads", default="list,delivery", help="which workloads, e.g. delivery")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="an existing database to create the benchmark databases from")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tidings-bench")
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]

    args.cache.mkdir(parents=True, exist_ok=True)
    mbox = args.cache / f"mailgen-{args.messages}.mbox"
    if not mbox.exists():
        write_mbox(mbox, args.messages)
    lite = args.cache / f"scaleout-sqlite-{args.messages}"
    if not (lite / "tidings.sqlite3").exists():
        imported, seconds = import_mailbox(lite, mbox, None)
        print(f"imported {imported} messages into SQLite in {seconds:.0f} s", file=sys.stderr)
    env = {**os.environ, "TIDINGS_ACCESS_LOG": "false", "TIDINGS_LOG_LEVEL": "warning",
           "TIDINGS_MAX_CONCURRENT_REQUESTS": "64", "TIDINGS_SQLITE_SYNCHRONOUS": "FULL"}
    results: dict[str, Any] = {"messages": args.messages, "clients": args.clients, "cpus": os.cpu_count()}
    template, template_blobs, migrate_seconds = prepare_template(args, lite, env)
    if migrate_seconds is not None:
        results["migrate_s"] = round(migrate_seconds, 1)
    name = f"tidings_bench_{secrets.token_hex(4)}"
    url = database_url(args.postgres, name)
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    work = Path(tempfile.mkdtemp(prefix="tidings-scaleout-", dir=args.cache))
    try:
        pg_data = work / "pg"
        link_tree(template_blobs, pg_data)
        tidings("db", "migrate", "--data", str(pg_data), env={**env, "TIDINGS_STORE": url})
        setups: list[tuple[str, int, str, Path]] = []
        if args.sqlite:
            lite_copy = work / "sqlite"
            link_tree(lite, lite_copy)
            for index in range(args.clients):
                tidings("user", "add", f"deliver{index}", "--password", "bench", "--data", str(lite_copy),
                        env={**env, "TIDINGS_STORE": ""})
            setups.append(("SQLite", 1, "", lite_copy))
        setups += [("PostgreSQL", int(n), url, pg_data) for n in args.processes.split(",") if n]
        salt = secrets.token_hex(4)
        for label, processes, store, data in setups:
            process, server = start(data, {**env, "TIDINGS_STORE": store}, processes)
            meter = CpuMeter(process, args.postgres if store else None, name if store else None)
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
                    if n < 0:
                        session = http.get("/.well-known/jmap").json()
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
                results[key] = {}
                if "list" in workloads:
                    results[key]["list"] = run_clients(server, args.clients, args.seconds, list_step,
                                                       lambda index: "bench", meter)
                if "delivery" in workloads:
                    results[key]["delivery"] = run_clients(server, args.clients, args.seconds, delivery_step,
                                                           lambda index: f"deliver{index}", meter)
                print(key, results[key], file=sys.stderr)
            finally:
                process.terminate()
                process.wait(60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(table(results, workloads))
    print(json.dumps(results))


def table(results: dict[str, Any], workloads: list[str]) -> str:
    header = f"| {results['messages']:,} messages, {results['clients']} clients, {results['cpus']} cores |"
    for workload in workloads:
        unit = "req/s" if workload == "list" else "msg/s"
        header += (f" {workload} ({unit}) | p50 | server CPU/req | PostgreSQL CPU/req | load |")
    lines = [header, "|---" * (1 + 5 * len(workloads)) + "|"]
    for key, value in results.items():
        if not isinstance(value, dict):
            continue
        processes = key.split()[-1]
        line = f"| {key.split()[0]}, {processes} process{'es' if processes != '1' else ''} |"
        for workload in workloads:
            figures = value.get(workload, {})
            line += (f" {figures.get('rps')} | {figures.get('p50_ms')} ms | {figures.get('server_cpu_ms')} ms |"
                     f" {figures.get('db_cpu_ms')} ms | {figures.get('load')} |")
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
