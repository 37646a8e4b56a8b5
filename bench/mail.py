"""Mail benchmark: bulk import, then the list view, paging, opening a thread and search over HTTP.

    python -m bench.mail --messages 100000

1. Generates a realistic mailbox (`bench/mailgen.py`, cached under --cache) as an mbox file.
2. Imports it into a fresh data directory through `tidings import`'s code (the one ingest path),
   with the server's durability settings, and reports messages per second and the CPU time per
   message of the importer and its worker processes (the figure to trust on a loaded machine).
3. Starts a real `tidings serve` subprocess (TIDINGS_ACCESS_LOG=false) and measures, over keep-alive
   HTTP connections from --clients concurrent clients, the p50/p95 of:
     list    Email/query (inMailbox, receivedAt descending, collapseThreads, limit 50, calculateTotal)
             + Email/get of those 50 with list properties, in one request (result reference)
     page    the same at position 5000
     thread  Thread/get + Email/get of its emails with HTML body values
     search  Email/query with a text filter + SearchSnippet/get of the first 20
   and the server's resident memory at the end.

Prints a Markdown table (for docs/performance.md) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import free_port, percentile, rss_kb
from bench.jmap import MAIL, Calls, Client, list_view, measure, open_thread, search
from bench.mailgen import VOCABULARY, write_mbox

AUTH = ("bench", "bench")


def import_mailbox(data: Path, mbox: Path, workers: int | None) -> tuple[int, float]:
    from tidings.config import load
    from tidings.mail.importer import import_path
    from tidings.server import Tidings

    tidings = Tidings(load(None, {"data": str(data)}, environ={}))
    try:
        user = tidings.accounts.add_user("bench", "bench")
        started = time.perf_counter()
        report = import_path(tidings.store, user.account_id, mbox, workers=workers, progress=sys.stderr.isatty())
        elapsed = time.perf_counter() - started
        if report.failed:
            print(f"{len(report.failed)} messages failed, e.g. {report.failed[:3]}", file=sys.stderr)
        return report.imported, elapsed
    finally:
        tidings.close()


def import_cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have ended (the import's workers,
    joined when it returns): the figure that stays meaningful on a loaded machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def start_server(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TIDINGS_ACCESS_LOG": "false", "TIDINGS_LOG_LEVEL": "warning",
           "TIDINGS_MAX_CONCURRENT_REQUESTS": "64"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "serve", "--data", str(data), "--http", f"127.0.0.1:{port}"], env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/.well-known/jmap", auth=("bench", "bench"), timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def summarise(name: str, timings: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(timings), 2), "p95": round(percentile(timings, 95), 2),
            "min": round(min(timings), 2), "n": len(timings), "name": name}  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (default 4)")
    parser.add_argument("--requests", type=int, default=100, help="requests per client per measurement")
    parser.add_argument("--workers", type=int, default=None, help="import worker processes (default: CPUs)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tidings-bench")
    parser.add_argument("--data", type=Path, help="reuse this data directory (skip the import if it exists)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    mbox = args.cache / f"mailgen-{args.messages}.mbox"
    if not mbox.exists():
        started = time.perf_counter()
        write_mbox(mbox, args.messages)
        print(f"generated {mbox} ({mbox.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
    results: dict[str, Any] = {"messages": args.messages, "clients": args.clients}
    data = args.data or Path(tempfile.mkdtemp(prefix="tidings-bench-", dir=args.cache))
    if not (data / "tidings.sqlite3").exists():
        cpu_before = import_cpu_seconds()
        imported, seconds = import_mailbox(data, mbox, args.workers)
        cpu_ms = (import_cpu_seconds() - cpu_before) / max(imported, 1) * 1000
        results["import"] = {"messages": imported, "seconds": round(seconds, 1), "rate": round(imported / seconds),
                             "cpu_ms": round(cpu_ms, 2), "load": round(os.getloadavg()[0], 1)}
        print(f"imported {imported} messages in {seconds:.1f} s: {imported / seconds:.0f} messages/s;"
              f" {cpu_ms:.2f} ms of CPU per message (importer and its worker processes);"
              f" load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    process, url = start_server(data)
    try:
        setup, session = Client.discover(url + "/.well-known/jmap", AUTH)
        account = session["primaryAccounts"][MAIL]
        mailboxes = setup.api([["Mailbox/get", {"accountId": account}, "m"]])[0][1]["list"]
        inbox = next(m["id"] for m in mailboxes if m["role"] == "inbox")
        first = setup.api(list_view(account, inbox))
        thread_ids = [e["threadId"] for e in first[1][1]["list"]]
        deeper = setup.api(list_view(account, inbox, 2000))
        thread_ids += [e["threadId"] for e in deeper[1][1]["list"]]
        words = VOCABULARY[300:3000]
        n = args.clients
        r = args.requests
        cases: dict[str, Callable[[random.Random], Calls]] = {
            "list": lambda rng: list_view(account, inbox),
            "page": lambda rng: list_view(account, inbox, 5000),
            "thread": lambda rng: open_thread(account, rng.choice(thread_ids)),
            "search": lambda rng: search(account, rng.choice(words)),
        }
        def connect() -> Client:
            return Client(setup.api_url, AUTH)

        for name, make in cases.items():
            def request(rng: random.Random, _client: int, _iteration: int,
                        make: Callable[[random.Random], Calls] = make) -> Calls:
                return make(rng)

            timings = measure(connect, n, r, request).latencies
            results[name] = summarise(name, timings)
            single = measure(connect, 1, r, request).latencies
            results[name + "_1"] = summarise(name, single)
            print(f"{name}: p50 {results[name]['p50']} ms, p95 {results[name]['p95']} ms ({n} clients);"
                  f" p50 {results[name + '_1']['p50']} ms alone", file=sys.stderr)
        results["rss_mb"] = round(rss_kb(process.pid) / 1024)
        results["rss_anon_mb"] = round(rss_kb(process.pid, "RssAnon") / 1024)
        results["load"] = os.getloadavg()[0]
        results["total_threads"] = first[0][1]["total"]
        setup.close()
    finally:
        process.terminate()
        process.wait(30)
        if not args.keep and args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    print(table(results))
    print(json.dumps(results))


def table(results: dict[str, Any]) -> str:
    lines = [f"| {results['messages']:,} messages | p50 ({results['clients']} clients) | p95 | p50 (1 client) |",
             "|---|---|---|---|"]
    if "import" in results:
        lines.append(f"| import | {results['import']['rate']} msg/s | {results['import'].get('cpu_ms')} ms CPU"
                     " per message | |")
    for name in ("list", "page", "thread", "search"):
        if name in results:
            lines.append(f"| {name} | {results[name]['p50']} ms | {results[name]['p95']} ms |"
                         f" {results[name + '_1']['p50']} ms |")
    lines.append(f"| server RSS | {results.get('rss_mb')} MB ({results.get('rss_anon_mb')} MB anonymous) | | |")
    lines.append(f"| load average at the end | {results.get('load', 0):.1f} | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
