"""Push benchmark: idle connections per server process, and change-to-client latency.

    python -m bench.push [--idle 2000] [--clients 500] [--changes 40]

Starts `tidings serve` (SQLite, one process) in a subprocess on a fresh data directory, then:

1. opens `--idle` connections, half EventSource and half WebSocket (push enabled), and reports the
   server's resident memory before and after;
2. with `--clients` connections (half of each kind) of one user, makes `--changes` changes through the
   HTTP API, one at a time, and measures for every client the time from just before the API request
   was sent (an upper bound on the time since the commit) to the StateChange arriving.

Figures go in docs/performance.md under "Push".
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

USER, PASSWORD = "bench", "bench-password"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TIDINGS_ACCESS_LOG": "false", "TIDINGS_LOG_LEVEL": "warning", "TIDINGS_STORE": ""}
        cli = [sys.executable, "-m", "tidings.cli"]
        subprocess.run(
            [*cli, "user", "add", USER, "--password", PASSWORD, "--data", str(data)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # The server runs through `serve_with_commit_clock` below: `tidings serve` plus a change-bus
        # listener that prints when each commit was heard, on the clock every process shares.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.push", "--serve", str(data), str(self.port)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.commits: dict[str, float] = {}
        threading.Thread(target=self._read_commits, daemon=True).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def _read_commits(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            state, _, at = line.strip().partition(" ")
            if at:
                self.commits[state] = float(at)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


class Arrivals:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def record(self, state: str) -> None:
        self.times.setdefault(state, []).append(time.monotonic())


def mailbox_state(change: dict[str, Any]) -> str | None:
    for types in change.get("changed", {}).values():
        if "Mailbox" in types:
            return str(types["Mailbox"])
    return None


async def event_source(port: int, arrivals: Arrivals, ready: asyncio.Event, counter: list[int], total: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            "GET /jmap/eventsource/?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {AUTH}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    counter[0] += 1
    if counter[0] == total:
        ready.set()
    buffer = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"data: "):
                        state = mailbox_state(orjson.loads(line[6:]))
                        if state:
                            arrivals.record(state)
    finally:
        writer.close()


async def websocket(port: int, arrivals: Arrivals, ready: asyncio.Event, counter: list[int], total: int) -> None:
    async with connect(
        f"ws://127.0.0.1:{port}/jmap/ws",
        subprotocols=["jmap"],  # type: ignore[list-item]
        additional_headers={"Authorization": AUTH},
        ping_interval=None,
        compression=None,
        open_timeout=120,
    ) as ws:
        await ws.send(orjson.dumps({"@type": "WebSocketPushEnable", "dataTypes": None}).decode())
        counter[0] += 1
        if counter[0] == total:
            ready.set()
        async for message in ws:
            value = orjson.loads(message)
            if value.get("@type") == "StateChange":
                state = mailbox_state(value)
                if state:
                    arrivals.record(state)


async def open_clients(port: int, count: int, arrivals: Arrivals) -> list[asyncio.Task[None]]:
    # One authenticated request first, so the password check is cached as a real client's would be.
    async with httpx.AsyncClient(headers={"Authorization": AUTH}) as http:
        (await http.get(f"http://127.0.0.1:{port}/.well-known/jmap")).raise_for_status()
    ready = asyncio.Event()
    counter = [0]
    tasks = []
    for i in range(count):
        kind = event_source if i % 2 == 0 else websocket
        tasks.append(asyncio.create_task(kind(port, arrivals, ready, counter, count)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # do not overrun the listen backlog
    await asyncio.wait_for(ready.wait(), 120)
    await asyncio.sleep(1.0)  # let the WebSocketPushEnable messages be processed
    return tasks


async def close_clients(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def idle(server: Server, count: int) -> dict[str, float]:
    before = rss_mb(server.process.pid)
    tasks = await open_clients(server.port, count, Arrivals())
    await asyncio.sleep(2.0)
    after = rss_mb(server.process.pid)
    await close_clients(tasks)
    return {
        "connections": count,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "kb_per_connection": (after - before) * 1024 / count,
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def latency(server: Server, clients: int, changes: int) -> dict[str, float]:
    arrivals = Arrivals()
    tasks = await open_clients(server.port, clients, arrivals)
    server_cpu, own_cpu = cpu_seconds(server.process.pid), time.process_time()
    samples: list[float] = []
    api_times: list[float] = []
    from_request: list[float] = []
    lasts: list[float] = []
    firsts: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": AUTH}, timeout=30) as http:
        session = (await http.get("/.well-known/jmap")).json()
        account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        for i in range(changes):
            body = {
                "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                "methodCalls": [["Mailbox/set", {"accountId": account, "create": {"m": {"name": f"Bench {i}"}}}, "0"]],
            }
            started = time.monotonic()
            response = await http.post(
                "/jmap/api/", content=orjson.dumps(body), headers={"Content-Type": "application/json"}
            )
            api_times.append(time.monotonic() - started)
            state = response.json()["methodResponses"][0][1]["newState"]
            deadline = time.monotonic() + 5
            while len(arrivals.times.get(state, [])) < clients and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            deadline = time.monotonic() + 5
            while state not in server.commits and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            committed = server.commits[state]
            got = [t - committed for t in arrivals.times.get(state, [])]
            samples.extend(got)
            firsts.append(min(got))
            lasts.append(max(got))
            from_request.extend(t - started for t in arrivals.times.get(state, []))
            await asyncio.sleep(0.05)
    server_cpu, own_cpu = cpu_seconds(server.process.pid) - server_cpu, time.process_time() - own_cpu
    await close_clients(tasks)
    samples.sort()
    expected = clients * changes

    def pct(p: float) -> float:
        return samples[min(len(samples) - 1, int(p * len(samples)))] * 1000

    return {
        "clients": clients,
        "changes": changes,
        "delivered": len(samples),
        "expected": expected,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": samples[-1] * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
        "api_response_mean_ms": statistics.fmean(api_times) * 1000,
        "first_arrival_mean_ms": statistics.fmean(firsts) * 1000,
        "slowest_changes_ms": [round(x * 1000) for x in sorted(lasts)[-5:]],
        "from_request_sent_p99_ms": sorted(from_request)[int(0.99 * len(from_request))] * 1000,
        "server_cpu_ms_per_change": server_cpu * 1000 / changes,
        "client_cpu_ms_per_change": own_cpu * 1000 / changes,
    }


def serve_with_commit_clock(data: str, port: int) -> int:
    from tidings.config import load
    from tidings.serve import run
    from tidings.server import Tidings

    tidings = Tidings(load(None, {"data": data, "access_log": False}))

    def heard(account_id: str, states: dict[str, str]) -> None:
        if "Mailbox" in states:
            print(states["Mailbox"], time.monotonic(), flush=True)

    tidings.bus.subscribe(heard, local_only=True)
    return run(tidings, "127.0.0.1", port)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        return serve_with_commit_clock(sys.argv[2], int(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "data")
        try:
            result = asyncio.run(idle(server, args.idle))
            print("idle:", {k: round(v, 1) for k, v in result.items()})
            import uvloop

            result = uvloop.run(latency(server, args.clients, args.changes))
            print("latency:", {k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()})
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
