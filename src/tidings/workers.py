"""`tidings serve --workers N`: N server processes on one listening socket.

Theory of operation
-------------------
* The supervisor binds the HTTP socket, then forks N workers; each builds its own server (store
  connection pool, change bus, thread pool) *after* the fork and accepts on the shared socket, so
  the kernel spreads connections over them. Any worker can serve any request: every piece of state
  is in the shared store, and the change bus (PostgreSQL LISTEN/NOTIFY) carries push across them.
* Only worker 0 opens the LMTP/SMTP listeners (their ports cannot be shared); every worker works the
  outbound queue, whose leases keep two workers from sending one message.
* SIGTERM or SIGINT to the supervisor is passed to every worker, which finishes its in-flight
  requests and exits; the supervisor exits when all have. A worker that dies otherwise is started
  again (after a pause if it keeps dying at once).
* Several processes need the PostgreSQL store: the embedded SQLite store would serialise every
  writer anyway and has no bus between processes, so --workers > 1 with SQLite is refused.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import replace

from .config import Config
from .store.base import StoreError

log = logging.getLogger("tidings")

RunOne = Callable[[Config, socket.socket], int]


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit TCP_NODELAY: without it a response can wait for the peer's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def worker_config(config: Config, index: int) -> Config:
    if index == 0:
        return config
    return replace(config, values={**config.values, "lmtp": "", "smtp": ""})


def serve_workers(config: Config, host: str, port: int, workers: int, run_one: RunOne) -> int:
    if not config.store.startswith(("postgresql://", "postgres://")):
        raise StoreError(
            "--workers needs the PostgreSQL store (--store postgresql://...): the embedded SQLite store"
            " serves one process"
        )
    sock = listening_socket(host, port)
    children: dict[int, int] = {}
    started: dict[int, float] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = run_one(worker_config(config, index), sock)
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index
        started[index] = time.monotonic()

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("starting %d workers on %s:%d", workers, host, port)
    for index in range(workers):
        spawn(index)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        index = children.pop(pid)
        if stopping:
            continue
        log.warning("worker %d (pid %d) exited with status %d; starting it again", index, pid, status)
        if time.monotonic() - started[index] < 1.0:
            time.sleep(1.0)  # it died at once: do not spin
        if not stopping:
            spawn(index)
    sock.close()
    return 0
