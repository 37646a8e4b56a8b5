"""Core/echo and Mailbox/get over HTTP keep-alive: requests per second, p50/p99 latency, server CPU.

Starts a real `tidings serve` on a temporary data directory (access log off), then runs N concurrent
clients, each on its own keep-alive connection, for a fixed time per method. The clients speak
HTTP/1.1 over raw asyncio streams so that they cost far less than the server does; the server's CPU
time per request comes from /proc/<pid>/stat (utime + stime) before and after each run.

    python -m bench.http_core [--clients 8] [--seconds 5] [--warmup 1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.common import cpu_seconds, free_port, tidings_command
from bench.common import machine as common_machine

USER, PASSWORD = "bench", "bench-password"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]

    def line(self) -> str:
        return (
            f"{self.name:<12} {self.requests / self.seconds:>9.0f} req/s   p50 {self.percentile(0.50) * 1e3:6.2f} ms"
            f"   p99 {self.percentile(0.99) * 1e3:6.2f} ms   server CPU {self.server_cpu / self.requests * 1e6:6.0f}"
            f" µs/req   client CPU {self.client_cpu / self.requests * 1e6:5.0f} µs/req"
        )


def http_request(port: int, body: bytes) -> bytes:
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return (
        f"POST /jmap/api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def client(port: int, request: bytes, stop: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected response: {head[:40]!r} {body[:200]!r}")
            done += 1
    finally:
        writer.close()
    return done


async def run_load(port: int, request: bytes, clients: int, seconds: float) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    started = time.perf_counter()
    stop = started + seconds
    counts = await asyncio.gather(*(client(port, request, stop, latencies) for _ in range(clients)))
    return sum(counts), time.perf_counter() - started, latencies


def measure(name: str, pid: int, port: int, body: bytes, clients: int, seconds: float, warmup: float) -> Result:
    request = http_request(port, body)
    asyncio.run(run_load(port, request, clients, warmup))
    cpu_before, client_before = cpu_seconds(pid), time.process_time()
    count, elapsed, latencies = asyncio.run(run_load(port, request, clients, seconds))
    return Result(
        name, count, elapsed, latencies, cpu_seconds(pid) - cpu_before, time.process_time() - client_before
    )


def machine() -> str:
    info = common_machine()
    return f"{info['cores']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM, Python {info['python']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    env = {**os.environ, "TIDINGS_DATA": str(data), "TIDINGS_ACCESS_LOG": "false", "TIDINGS_LOG_LEVEL": "warning"}
    port = free_port()
    subprocess.run([*tidings_command(), "user", "add", USER, "--password", PASSWORD], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    server = subprocess.Popen([*tidings_command(), "serve", "--http", f"127.0.0.1:{port}"], env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.05)
        echo = orjson.dumps({"using": USING, "methodCalls": [["Core/echo", {"hello": True, "n": [1, 2, 3]}, "0"]]})
        get = orjson.dumps(
            {"using": USING, "methodCalls": [["Mailbox/get", {"accountId": "A1", "ids": None}, "0"]]}
        )
        print(machine())
        print(f"{args.clients} keep-alive clients, {args.seconds:g} s per method")
        for name, body in (("Core/echo", echo), ("Mailbox/get", get)):
            print(measure(name, server.pid, port, body, args.clients, args.seconds, args.warmup).line())
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
