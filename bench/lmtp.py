"""LMTP delivery benchmark: realistic messages over one LMTP connection into a real `tidings serve`.

    python -m bench.lmtp --messages 1000 --runs 3

1. Generates realistic messages (`bench/mailgen.py`: threads, HTML, attachments, encoded headers).
2. For each run, starts a fresh `tidings serve --lmtp` subprocess (SQLite, synchronous=FULL, blobs
   fsynced: the server's durability settings) with one user, and sends every message over one LMTP
   connection (RFC 2033), one at a time: each is acknowledged only once it is durably stored.
3. Reports messages per second and the latency of each delivery (MAIL to the final reply), and the
   median over the runs, as a Markdown table (for docs/performance.md) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, free_port, wait_for_port
from bench.mailgen import messages

TIDINGS = [sys.executable, "-m", "tidings.cli"]


class DeliveryError(RuntimeError):
    """The server refused a message."""


def send_one(client: smtplib.LMTP, recipient: str, raw: bytes) -> None:
    """One LMTP transaction; the final reply comes once the server has stored the message (RFC 2033)."""
    client.mail("sender@gen.example", ["BODY=8BITMIME", f"SIZE={len(raw)}"])
    client.rcpt(recipient)
    code, reply = client.data(raw)
    if code != 250:
        raise DeliveryError(f"delivery refused: {code} {reply!r}")


@dataclass
class Delivered:
    """Latencies (seconds, MAIL to the final reply) of every message, and the wall-clock time of them all."""

    latencies: list[float]
    seconds: float

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def deliver(port: int, recipient: str, corpus: Iterable[bytes], connections: int = 1,
            progress: Callable[[int], None] | None = None) -> Delivered:
    """Deliver every message of `corpus` over `connections` LMTP connections in parallel, each taking the
    next message in order from the shared iterator (so the mailbox fills in about the corpus's order)."""
    source: Iterator[bytes] = iter(corpus)
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def next_message() -> bytes | None:
        with lock:
            if errors:
                return None
            return next(source, None)

    def run() -> None:
        mine = []
        try:
            client = smtplib.LMTP("127.0.0.1", port, timeout=300)
            client.ehlo("bench.example")
            while (raw := next_message()) is not None:
                began = time.perf_counter()
                send_one(client, recipient, raw)
                mine.append(time.perf_counter() - began)
                if progress is not None:
                    progress(1)
            client.quit()
        except BaseException as error:
            errors.append(error)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException as interrupted:  # Ctrl-C: finish the messages in flight, send no more
        with lock:
            errors.append(interrupted)
        for thread in threads:
            thread.join(60)
        raise
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return Delivered(latencies, elapsed)


def one_run(corpus: list[bytes], data: Path) -> dict[str, Any]:
    env = {**os.environ, "TIDINGS_ACCESS_LOG": "false", "TIDINGS_LOG_LEVEL": "warning"}
    subprocess.run([*TIDINGS, "user", "add", "alice", "--password", "secret", "--data", str(data),
                    "--domain", "example.com"], check=True, env=env, capture_output=True)
    lmtp_port, http_port = free_port(), free_port()
    server = subprocess.Popen(
        [*TIDINGS, "serve", "--data", str(data), "--http", f"127.0.0.1:{http_port}", "--lmtp",
         f"127.0.0.1:{lmtp_port}", "--domain", "example.com"],
        env=env,
    )
    try:
        wait_for_port(lmtp_port, 30, server)
        cpu_before = cpu_seconds(server.pid)
        delivered = deliver(lmtp_port, "alice@example.com", corpus)
        cpu = cpu_seconds(server.pid) - cpu_before
        latencies, elapsed = delivered.latencies, delivered.seconds
    finally:
        server.terminate()
        server.wait(30)
    latencies.sort()
    return {
        "messages": len(corpus),
        "seconds": elapsed,
        "per_second": len(corpus) / elapsed,
        "cpu_ms": cpu / len(corpus) * 1000,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where the data directories go (default: temp)")
    args = parser.parse_args()

    corpus = [raw for _, raw in messages(args.messages, args.seed)]
    sizes = sorted(len(r) for r in corpus)
    base = Path(tempfile.mkdtemp(prefix="tidings-lmtp-", dir=args.dir))
    results = []
    try:
        for run in range(args.runs):
            data = base / f"run{run}"
            result = one_run(corpus, data)
            results.append(result)
            print(f"run {run + 1}: {result['per_second']:.0f} messages/s, p50 {result['p50_ms']:.2f} ms, "
                  f"p95 {result['p95_ms']:.2f} ms, server CPU {result['cpu_ms']:.2f} ms per message", file=sys.stderr)
            shutil.rmtree(data, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    median = {key: statistics.median(r[key] for r in results) for key in ("per_second", "p50_ms", "p95_ms",
                                                                          "p99_ms", "cpu_ms")}
    print("| messages | mean size | median size | runs | messages/s (median) | p50 | p95 | p99 | server CPU |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(corpus)} | {sum(sizes) // len(sizes)} B | {sizes[len(sizes) // 2]} B | {args.runs} "
          f"| {median['per_second']:.0f} | {median['p50_ms']:.2f} ms | {median['p95_ms']:.2f} ms "
          f"| {median['p99_ms']:.2f} ms | {median['cpu_ms']:.2f} ms |")
    print(json.dumps({"benchmark": "lmtp", "messages": len(corpus), "runs": results, "median": median}))


if __name__ == "__main__":
    main()
