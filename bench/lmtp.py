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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.mailgen import messages

TIDINGS = [sys.executable, "-m", "tidings.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        wait_for_port(lmtp_port)
        client = smtplib.LMTP("127.0.0.1", lmtp_port)
        client.ehlo("bench.example")
        latencies = []
        cpu_before = cpu_seconds(server.pid)
        started = time.perf_counter()
        for raw in corpus:
            begin = time.perf_counter()
            client.mail("sender@gen.example", ["BODY=8BITMIME", "SMTPUTF8", f"SIZE={len(raw)}"])
            client.rcpt("alice@example.com")
            code, reply = client.data(raw)
            if code != 250:
                raise RuntimeError(f"delivery refused: {code} {reply!r}")
            latencies.append(time.perf_counter() - begin)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server.pid) - cpu_before
        client.quit()
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
