"""Tidings and Cyrus IMAP side by side: the same mailbox, loaded by LMTP, the same JMAP requests.

    python -m bench                       # 10,000 and 100,000 messages
    python -m bench --sizes 2000          # a quick run
    python -m bench --sizes 100000 --keep /var/tmp/tidings-bench   # keep the loaded servers; the next
                                          # run with the same --keep measures them again without loading
                                          # (or goes on with a load that was interrupted)
    python -m bench --from-json bench/results/FILE.json --write-docs   # regenerate the docs table

For each size and each server (one after the other, never both at once): start it (Tidings: a fresh data
directory and one `tidings serve --lmtp` process on SQLite; Cyrus: a fresh instance from the anchor's
start.sh, as root), load the generated mailbox (bench/mailgen.py) over parallel LMTP connections, wait until
its search index has caught up, then measure (bench/workloads.py), and stop it, also on errors and Ctrl-C.
Prints a table of both with the ratio Tidings/Cyrus (bench/report.py), writes the raw results as JSON, and
with --write-docs puts the table into docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from bench.common import load_average, machine
from bench.report import docs_section, summary, write_docs
from bench.servers import CyrusServer, Server, ServerError, TidingsServer, wait_for_session
from bench.workloads import Settings, delivered_so_far, load_mailbox, log, measure_server

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "performance.md"


def parse_sizes(text: str) -> list[int]:
    """"10000,100000" or "10k,100k" -> [10000, 100000]."""
    sizes = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        multiplier = 1
        if part[-1] in "kK":
            multiplier, part = 1000, part[:-1]
        size = int(float(part) * multiplier)
        if size < 500:
            raise argparse.ArgumentTypeError(f"{size} messages is too few (the workloads need at least 500)")
        sizes.append(size)
    return sizes


def make_server(name: str, home: Path, prefork: int) -> Server:
    if name == "tidings":
        return TidingsServer(home)
    if name == "cyrus":
        return CyrusServer(home, prefork)
    raise ValueError(name)


def next_run_index(home: Path) -> int:
    """How many times this kept server has been measured: each run delivers new messages with seeds of their
    own, so that no Message-ID repeats (both servers suppress duplicate deliveries)."""
    counter = home / "runs"
    index = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(index + 1))
    return index


def run_one(name: str, size: int, settings: Settings, keep: Path | None, prefork: int) -> dict[str, Any]:
    home = keep / f"{name}-{size}" if keep else Path(tempfile.mkdtemp(prefix=f"tidings-bench-{name}-"))
    home.mkdir(parents=True, exist_ok=True)
    server = make_server(name, home, prefork)
    results: dict[str, Any] = {}
    try:
        reused, partial = server.loaded, server.has_data and not server.loaded
        state = "reusing the loaded mailbox" if reused else "going on with the partly loaded mailbox" \
            if partial else "fresh"
        log(f"{name}: starting ({state} in {home})")
        server.start()
        wait_for_session(server)
        results["version"] = server.version
        if reused:
            results["reused"] = True
        else:
            done = delivered_so_far(server) if partial else 0
            # Messages in flight when a load stopped may or may not have been stored: send the last
            # `connections` again; both servers drop a repeated Message-ID for the same recipient.
            skip = max(0, done - settings.load_connections)
            results["load"] = load_mailbox(server, size, settings.load_connections, skip)
            server.mark_loaded()
        results.update(measure_server(server, size, settings, next_run_index(home)))
    finally:
        log(f"{name}: stopping")
        server.stop(keep=keep is not None)
        if keep is None:
            shutil.rmtree(home, ignore_errors=True)
    return results


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so that the servers are stopped by the finally clauses.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000],
                        help="mailbox sizes, comma-separated (default 10000,100000)")
    parser.add_argument("--servers", default="tidings,cyrus", help="which servers (default tidings,cyrus)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients and LMTP connections")
    parser.add_argument("--requests", type=int, default=100, help="requests from one client, for p50/p95")
    parser.add_argument("--requests-per-client", type=int, default=50, help="requests from each concurrent client")
    parser.add_argument("--deliveries", type=int, default=200, help="messages over one LMTP connection")
    parser.add_argument("--load-connections", type=int, default=4, help="LMTP connections to load the mailbox")
    parser.add_argument("--cyrus-prefork", type=int, default=4, help="Cyrus httpd processes kept ready")
    parser.add_argument("--keep", type=Path, help="keep the loaded servers in this directory, and reuse those "
                                                  "already there")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/cyrus-DATE-SIZES.json)")
    parser.add_argument("--write-docs", action="store_true", help=f"write the table into {DOCS.name}")
    parser.add_argument("--from-json", type=Path, help="print (and --write-docs) the table of a results file")
    args = parser.parse_args(argv)

    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        print(summary(saved))
        if args.write_docs:
            write_docs(DOCS, docs_section(saved, _relative(args.from_json)))
        return 0

    signal.signal(signal.SIGTERM, _terminate)
    settings = Settings(clients=args.clients, requests=args.requests,
                        requests_per_client=args.requests_per_client, deliveries=args.deliveries,
                        load_connections=args.load_connections)
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    stamp = time.strftime("%Y%m%dT%H%MZ", time.gmtime())
    out = args.out or RESULTS / f"cyrus-{stamp}-{'-'.join(str(s) for s in args.sizes)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        args.keep.chmod(0o755)  # Cyrus's processes run as the user 'cyrus' and must reach their instance
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
        "settings": {**vars(settings), "cyrus_prefork": args.cyrus_prefork},
        "load_average": {"start": load_average(), "end": load_average()}, "sizes": {},
    }
    try:
        for size in args.sizes:
            for name in names:
                server_results = run_one(name, size, settings, args.keep, args.cyrus_prefork)
                results["sizes"].setdefault(str(size), {})[name] = server_results
                if name == "cyrus":
                    results["cyrus_version"] = server_results.get("version")
                else:
                    results["tidings_version"] = server_results.get("version")
                results["load_average"]["end"] = load_average()
                out.write_text(json.dumps(results, indent=1) + "\n")  # after each server: nothing is lost
    except ServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the servers were stopped", file=sys.stderr)
        return 130
    print(summary(results))
    log(f"results in {out}")
    if args.write_docs:
        write_docs(DOCS, docs_section(results, _relative(out)))
        log(f"wrote the section into {DOCS}")
    return 0


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
