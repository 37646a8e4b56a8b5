"""The servers under test: one `tidings serve --lmtp` process, and a Cyrus IMAP instance from the anchor's
start.sh. Both expose the same things to the benchmark: a JMAP session URL and credentials, an LMTP port and
recipient, the processes to count for CPU and memory, and a way to stop them (always, also on errors).

A server's data can be kept in a directory (`keep`) and started again from it later, so that a
100,000-message mailbox is loaded once; a load that was interrupted goes on where it stopped.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from pathlib import Path

import httpx

from bench.common import (
    children_of,
    cpu_seconds,
    free_port,
    port_in_use,
    pss_kb,
    rss_kb,
    tidings_command,
    wait_for_port,
)

USER_LOCAL, DOMAIN, PASSWORD = "alice", "example.com", "secret"
RECIPIENT = f"{USER_LOCAL}@{DOMAIN}"
CYRUS_ANCHOR = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "cyrus"
CYRUS_BIN = Path("/usr/lib/cyrus/bin")


class ServerError(RuntimeError):
    """A server could not be started or reached."""


class Server(ABC):
    """A mail server under test, with its data in `home`."""

    name: str
    session_url: str
    auth: tuple[str, str]
    lmtp_port: int
    recipient = RECIPIENT
    version: str

    def __init__(self, home: Path) -> None:
        self.home = home

    @property
    @abstractmethod
    def has_data(self) -> bool:
        """True if `home` holds a server started by an earlier run (its mailbox loaded or partly loaded)."""

    @property
    def loaded(self) -> bool:
        """True if `home` holds a server whose mailbox was loaded completely by an earlier run."""
        return self.has_data and (self.home / "loaded").exists()

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self, keep: bool) -> None:
        """Stop every process this object started; delete the data unless `keep`."""

    @abstractmethod
    def pids(self) -> list[int]:
        """The processes that make up the server now."""

    @abstractmethod
    def cpu_seconds(self) -> float:
        """CPU time used by the server so far (monotonic while it runs)."""

    def memory(self) -> dict[str, int]:
        """Resident memory of the server's processes, in KB: RSS summed (shared pages counted once per
        process) and PSS summed (shared pages divided among the processes that map them)."""
        rss = pss = 0
        pids = self.pids()
        for pid in pids:
            try:
                rss += rss_kb(pid)
                pss += pss_kb(pid)
            except OSError:
                continue
        return {"rss_kb": rss, "pss_kb": pss, "processes": len(pids)}

    def mark_loaded(self) -> None:
        (self.home / "loaded").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


class TidingsServer(Server):
    """One `tidings serve` process on SQLite (shipped durability settings), HTTP and LMTP on free ports."""

    name = "tidings"

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.process: subprocess.Popen[bytes] | None = None
        self.data = home / "data"
        self.auth = (USER_LOCAL, PASSWORD)
        self.version = _tidings_version()

    @property
    def has_data(self) -> bool:
        return (self.data / "tidings.sqlite3").exists()

    def start(self) -> None:
        # The shipped settings, but for the access log (one line per request is not what is measured).
        env = {**os.environ, "TIDINGS_ACCESS_LOG": "false", "TIDINGS_LOG_LEVEL": "warning"}
        self._stop_leftover()
        if not self.has_data:
            shutil.rmtree(self.data, ignore_errors=True)
            self.data.mkdir(parents=True)
            added = subprocess.run([*tidings_command(), "user", "add", USER_LOCAL, "--password", PASSWORD,
                                    "--domain", DOMAIN, "--data", str(self.data)], env=env, capture_output=True)
            if added.returncode != 0:
                raise ServerError(f"tidings user add failed: {added.stderr.decode(errors='replace')}")
        http_port, self.lmtp_port = free_port(), free_port()
        self.session_url = f"http://127.0.0.1:{http_port}/.well-known/jmap"
        self.process = subprocess.Popen(
            [*tidings_command(), "serve", "--data", str(self.data), "--http", f"127.0.0.1:{http_port}",
             "--lmtp", f"127.0.0.1:{self.lmtp_port}", "--domain", DOMAIN], env=env)
        (self.home / "server.pid").write_text(str(self.process.pid))
        wait_for_port(http_port, 60, self.process)
        wait_for_port(self.lmtp_port, 60, self.process)

    def _stop_leftover(self) -> None:
        """A run that was killed outright (SIGKILL) leaves its server running on this data directory: stop
        it, if the recorded process is still a `tidings serve` of this directory."""
        recorded = self.home / "server.pid"
        if not recorded.exists():
            return
        pid = int(recorded.read_text())
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return
        if b"serve" in command and str(self.data).encode() in command:
            os.kill(pid, signal.SIGTERM)
            for _ in range(300):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)

    def stop(self, keep: bool) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        if not keep:
            shutil.rmtree(self.home, ignore_errors=True)

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process is not None else []

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)


class CyrusServer(Server):
    """A loopback Cyrus IMAP 3.6 instance made by the anchor's start.sh (needs root), on free ports, with its
    run directory and instance directory under `home` so that it touches no other Cyrus on the machine.

    Memory and CPU count every process of the instance: the master and its children (httpd, lmtpd, the
    squatter that builds the search index, imapd if any). Tidings does all of that work in its one process;
    the anchor's SMTP sink (a Python helper for EmailSubmission, unused here) is not counted.
    """

    name = "cyrus"

    def __init__(self, home: Path, http_prefork: int = 4) -> None:
        super().__init__(home)
        self.run_dir = home / "run"
        self.saved_env = home / "env.saved"
        self.http_prefork = http_prefork
        self.env: dict[str, str] = {}
        self.master_pid = 0
        self.version = "unknown"

    @property
    def has_data(self) -> bool:
        return self.saved_env.exists()

    def _anchor_env(self) -> dict[str, str]:
        return {**os.environ, "CYRUS_RUN_DIR": str(self.run_dir), "TMPDIR": str(self.home)}

    def start(self) -> None:
        if not (CYRUS_ANCHOR / "start.sh").exists():
            raise ServerError(f"{CYRUS_ANCHOR / 'start.sh'} not found")
        if os.geteuid() != 0:
            raise ServerError("Cyrus's start.sh needs root (its master switches to the user 'cyrus')")
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)  # the user 'cyrus' must reach the instance directory inside
        if (self.run_dir / "env").exists():
            # A run that was killed outright left this instance running: stop it (by its pid file, as
            # stop.sh does), keeping its data.
            subprocess.run([str(CYRUS_ANCHOR / "stop.sh")], env={**self._anchor_env(), "KEEP": "1"},
                           capture_output=True)
        if self.has_data:
            self._restart_kept()
        else:
            self._start_fresh()
        self.env = _read_env(self.run_dir / "env")
        self.master_pid = int(self.env["CYRUS_MASTER_PID"])
        self.version = self.env.get("CYRUS_VERSION", "unknown")
        self.lmtp_port = int(self.env["CYRUS_LMTP_PORT"])
        self.session_url = self.env["JMAP_SESSION_URL"]
        self.auth = (self.env["JMAP_USER"], self.env["JMAP_PASSWORD"])
        self._unlimited_quota()
        shutil.copy(self.run_dir / "env", self.saved_env)

    def _start_fresh(self) -> None:
        ports = {name: free_port() for name in ("IMAP", "HTTP", "LMTP", "SIEVE", "SMTP")}
        env = {**self._anchor_env(), "CYRUS_SAMPLES": "0", "CYRUS_HTTP_PREFORK": str(self.http_prefork),
               "CYRUS_TEST_USER": RECIPIENT, "CYRUS_TEST_PASSWORD": PASSWORD,
               **{f"CYRUS_{name}_PORT": str(port) for name, port in ports.items()}}
        started = subprocess.run([str(CYRUS_ANCHOR / "start.sh"), "--fresh"], env=env, capture_output=True)
        if started.returncode != 0:
            raise ServerError(f"Cyrus start.sh failed (exit {started.returncode}):\n"
                              f"{started.stderr.decode(errors='replace')[-3000:]}")

    def _restart_kept(self) -> None:
        """Start the master again on a kept instance, as start.sh does (same configuration, same ports)."""
        env = _read_env(self.saved_env)
        instance = Path(env["CYRUS_INSTANCE"])
        for key in ("CYRUS_IMAP_PORT", "CYRUS_HTTP_PORT", "CYRUS_LMTP_PORT", "CYRUS_SIEVE_PORT"):
            if port_in_use(int(env[key])):
                raise ServerError(f"port {env[key]} ({key}) of the kept Cyrus instance is in use")
        (instance / "master.pid").unlink(missing_ok=True)
        master = subprocess.run([str(CYRUS_BIN / "master"), "-C", str(instance / "imapd.conf"), "-M",
                                 str(instance / "cyrus.conf"), "-p", str(instance / "master.pid"), "-d"],
                                capture_output=True)
        if master.returncode != 0:
            raise ServerError(f"cyrus master failed: {master.stderr.decode(errors='replace')}")
        for key in ("CYRUS_HTTP_PORT", "CYRUS_LMTP_PORT", "CYRUS_IMAP_PORT"):
            wait_for_port(int(env[key]), 30)
        env["CYRUS_MASTER_PID"] = (instance / "master.pid").read_text().strip()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "env").write_text("".join(f"{key}={value}\n" for key, value in env.items()))

    def _unlimited_quota(self) -> None:
        """start.sh sets a 1 GiB storage quota; 100,000 generated messages are 1.05 GB."""
        imap = imaplib.IMAP4("127.0.0.1", int(self.env["CYRUS_IMAP_PORT"]))
        try:
            imap.login(self.env["CYRUS_ADMIN_USER"], self.env["CYRUS_ADMIN_PASSWORD"])
            status, reply = imap.setquota(f"user/{self.env['JMAP_USER']}", "()")
            if status != "OK":
                raise ServerError(f"could not lift the Cyrus quota: {reply!r}")
        finally:
            imap.logout()

    def stop(self, keep: bool) -> None:
        if (self.run_dir / "env").exists():
            env = {**self._anchor_env(), "KEEP": "1" if keep else "0"}
            subprocess.run([str(CYRUS_ANCHOR / "stop.sh")], env=env, capture_output=True)
        self.master_pid = 0
        if not keep:
            shutil.rmtree(self.home, ignore_errors=True)

    def pids(self) -> list[int]:
        if not self.master_pid or not Path(f"/proc/{self.master_pid}").exists():
            return []
        return [self.master_pid, *children_of(self.master_pid)]

    def cpu_seconds(self) -> float:
        # The master's own time plus its reaped children's (cutime + cstime), plus the live children's: a
        # child that exits between two readings moves from the second sum to the first, so the total is
        # continuous.
        total = cpu_seconds(self.master_pid, children=True)
        for pid in children_of(self.master_pid):
            try:
                total += cpu_seconds(pid)
            except OSError:
                continue
        return total


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def _tidings_version() -> str:
    from importlib.metadata import version

    return version("tidings")


def wait_for_session(server: Server, timeout: float = 60) -> None:
    """Wait until the server's JMAP session resource answers 200."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(server.session_url, auth=server.auth, timeout=5, follow_redirects=True)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.2)
    raise ServerError(f"{server.name}: the JMAP session did not answer ({last})")
