"""Helpers shared by the benchmark scripts: ports, process CPU and memory, percentiles, the machine."""

from __future__ import annotations

import os
import platform
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def tidings_command() -> list[str]:
    """The `tidings` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("tidings")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tidings.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something listens on 127.0.0.1:port; fail early if `process` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use(port):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before opening port {port}")
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


def _stat_fields(pid: int) -> list[str]:
    # proc(5): the command name may hold spaces and parentheses, so split after the last ")".
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat; with `children`, also the CPU
    time of the children it has waited for (cutime + cstime)."""
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def parent_pid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def children_of(pid: int) -> list[int]:
    """Direct children of a process, found through /proc (no name matching)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if parent_pid(int(entry.name)) == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue  # the process ended while we looked
    return out


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A field of /proc/<pid>/status in KB (VmRSS, RssAnon, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size: resident pages, each shared page divided by the number of processes mapping it,
    so that the PSS of several processes adds up to the memory they use together."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0..100) by the nearest rank of the sorted values."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def machine() -> dict[str, str | int | float]:
    """What the figures were measured on."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cores": os.cpu_count() or 0,
        "cpu": model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
