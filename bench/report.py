"""The side-by-side table: every figure of both servers, the ratio Tidings/Cyrus, and which way is better.

Pure functions of the results dictionary that bench/run.py writes as JSON (bench/results/), so that the
docs section can be regenerated from a results file: `python -m bench --from-json FILE --write-docs`.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECTION = "Side by side with Cyrus IMAP"


@dataclass(frozen=True)
class Figure:
    label: str
    workload: str
    key: str
    unit: str
    better: str  # "lower" or "higher"
    scale: float = 1.0  # multiply the stored value by this for display (KB -> MB)


REQUEST_WORKLOADS = [
    ("list", "list view (query + get of 50)"),
    ("page", "page deep in the list"),
    ("thread", "open a thread (HTML bodies)"),
    ("search", "search + snippets"),
    ("flag", "flag 10 emails"),
    ("move", "move 100 emails"),
    ("resync", "resync after 100 deliveries"),
]

# The load average above which other work shared the machine: the benchmark itself (one server and its
# clients, one after the other) keeps about one core busy.
QUIET_LOAD = 2.0


def _machine_note(results: dict[str, Any]) -> str:
    if max(results["load_average"].values()) > QUIET_LOAD:
        return ("(the machine was shared with other work: these figures are for validation only; wall-clock "
                "figures are pessimistic, server CPU is steadier)")
    return "(quiet machine: the load is the benchmark's own)"


def figures(clients: int) -> list[Figure]:
    out = [
        Figure("delivery, 1 LMTP connection", "delivery", "per_second_one", "msg/s", "higher"),
        Figure("delivery, 1 connection: p50", "delivery", "p50", "ms", "lower"),
        Figure("delivery, 1 connection: p95", "delivery", "p95", "ms", "lower"),
        Figure(f"delivery, {clients} LMTP connections", "delivery", "per_second", "msg/s", "higher"),
        Figure(f"delivery, {clients} connections: server CPU per message", "delivery", "server_cpu_ms", "ms",
               "lower"),
    ]
    for workload, label in REQUEST_WORKLOADS:
        out += [
            Figure(f"{label}: p50, 1 client", workload, "p50", "ms", "lower"),
            Figure(f"{label}: p95, 1 client", workload, "p95", "ms", "lower"),
            Figure(f"{label}: {clients} clients", workload, "per_second", "req/s", "higher"),
            Figure(f"{label}: server CPU per request", workload, "server_cpu_ms", "ms", "lower"),
        ]
    out += [
        Figure("server memory at the end (PSS, summed)", "memory", "pss_kb", "MB", "lower", 1 / 1024),
        Figure("server memory at the end (RSS, summed)", "memory", "rss_kb", "MB", "lower", 1 / 1024),
    ]
    return out


def value(results: dict[str, Any], figure: Figure) -> float | None:
    found = results.get(figure.workload, {}).get(figure.key)
    return None if found is None else float(found) * figure.scale


def ratio(tidings: float | None, cyrus: float | None) -> float | None:
    """Tidings/Cyrus, or None when either is missing or Cyrus's is zero."""
    if tidings is None or cyrus is None or cyrus == 0:
        return None
    return tidings / cyrus


def advantage(figure: Figure, tidings: float | None, cyrus: float | None) -> float | None:
    """How many times better Tidings is (above 1) or worse (below 1), whichever way the figure is better."""
    r = ratio(tidings, cyrus)
    if r is None or r == 0:
        return None
    return r if figure.better == "higher" else 1 / r


def number(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    if abs(x) >= 100:
        text = f"{x:,.0f}"
    elif abs(x) >= 10:
        text = f"{x:.1f}"
    else:
        text = f"{x:.2f}"
    return f"{text} {unit}".strip()


def verdict(edge: float | None) -> str:
    if edge is None:
        return "—"
    if edge >= 1:
        return f"{edge:.1f}× better" + ("" if edge >= 2 else " (under 2×)")
    return f"**{1 / edge:.1f}× worse**"


def size_table(size_results: dict[str, Any], clients: int) -> str:
    tidings, cyrus = size_results["tidings"], size_results["cyrus"]
    lines = ["| figure | better | Tidings | Cyrus | Tidings/Cyrus | Tidings is |", "|---|---|---|---|---|---|"]
    for figure in figures(clients):
        t, c = value(tidings, figure), value(cyrus, figure)
        if t is None and c is None:
            continue
        r = ratio(t, c)
        lines.append(f"| {figure.label} | {figure.better} | {number(t, figure.unit)} | {number(c, figure.unit)} |"
                     f" {'—' if r is None else f'{r:.2f}'} | {verdict(advantage(figure, t, c))} |")
    return "\n".join(lines)


def checks_table(size_results: dict[str, Any]) -> str:
    """What both servers answered, side by side: equal answers make the comparison honest."""
    tidings = size_results["tidings"].get("checks", {})
    cyrus = size_results["cyrus"].get("checks", {})
    lines = ["| check | Tidings | Cyrus | same |", "|---|---|---|---|"]
    for key, label in (("inbox_emails", "Inbox emails"), ("inbox_threads", "Inbox threads"),
                       ("list_total", "list view total (collapsed threads)"),
                       ("resync_created", "resync: emails created since the state")):
        t, c = tidings.get(key), cyrus.get(key)
        lines.append(f"| {label} | {t} | {c} | {'yes' if t == c else 'no'} |")
    t_sizes, c_sizes = tidings.get("thread_sizes", {}), cyrus.get("thread_sizes", {})
    same = sum(1 for k in t_sizes if t_sizes.get(k) == c_sizes.get(k))
    lines.append(f"| sizes of the {len(t_sizes)} opened threads | {sum(t_sizes.values())} emails |"
                 f" {sum(c_sizes.values())} emails | {same} of {len(t_sizes)} equal |")
    for word, t in tidings.get("search_totals", {}).items():
        c = cyrus.get("search_totals", {}).get(word)
        lines.append(f"| search total for \"{word}\" | {t} | {c} | {'yes' if t == c else 'no'} |")
    return "\n".join(lines)


def summary(results: dict[str, Any]) -> str:
    """The tables for every size, as Markdown."""
    clients = results["settings"]["clients"]
    parts = []
    for size, size_results in sorted(results["sizes"].items(), key=lambda item: int(item[0])):
        if "tidings" not in size_results or "cyrus" not in size_results:
            continue
        t, c = size_results["tidings"], size_results["cyrus"]
        parts.append(f"### {int(size):,} messages\n")
        loading = "Both mailboxes were loaded by an earlier run (`--keep`)."
        if t.get("load") or c.get("load"):
            loading = (f"Loading ({results['settings']['load_connections']} LMTP connections): Tidings "
                       f"{number(t.get('load', {}).get('per_second'), 'msg/s')}, Cyrus "
                       f"{number(c.get('load', {}).get('per_second'), 'msg/s')}.")
        parts.append(f"{loading} Deep page at position {t.get('page_position')} (Tidings) and "
                     f"{c.get('page_position')} (Cyrus): 5,000 or, in a smaller list, the last page. Load average "
                     f"during the measurements: {_load_range(t, c)}.\n")
        parts.append(size_table(size_results, clients) + "\n")
        parts.append(checks_table(size_results) + "\n")
    return "\n".join(parts)


def _load_range(*server_results: dict[str, Any]) -> str:
    loads = []
    for results in server_results:
        for item in results.values():
            if isinstance(item, dict) and "load_average" in item:
                loads.append(float(item["load_average"]))
    if not loads:
        return "unknown"
    return f"{min(loads):.1f} to {max(loads):.1f}"


def docs_section(results: dict[str, Any], results_file: str) -> str:
    m = results["machine"]
    s = results["settings"]
    return f"""## {SECTION}

`python -m bench` (bench/run.py; `--sizes 2000` for a quick run; `--keep DIR` keeps the loaded servers
in DIR, and a later run with the same `--keep` measures them again without loading, or goes on with a
load that was interrupted): for each size, one `tidings serve --lmtp` process on SQLite (shipped
durability) and a fresh Cyrus IMAP instance from the anchor's start.sh (`CYRUS_HTTP_PREFORK={s['cyrus_prefork']}`),
one after the other, each loaded by LMTP with the same generated mailbox (bench/mailgen.py, in date
order, {s['load_connections']} connections), then the same requests over keep-alive HTTP: p50/p95 from one
client ({s['requests']} requests), throughput from {s['clients']} concurrent clients
({s['requests_per_client']} requests each).
Only the account id, the mailbox ids (found by role) and the object ids differ between the servers; the
thread opened, the words searched and the order of requests are the same. Server CPU is utime + stime of
the server's processes over the {s['clients']}-client run (for Cyrus: the master, its live children and the
children it reaped). Memory counts every process of the server: for Tidings its one process, for Cyrus the
master and all its children (httpd, lmtpd, the squatter that indexes for search, ...). PSS divides shared
pages among the processes that map them (fair to Cyrus's forked processes); RSS summed counts them once per
process. Before measuring, a probe message is delivered and the benchmark waits until a search finds it
(Cyrus indexes in the background). Raw results: `{results_file}`.

Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Python {m['python']}, SQLite {m['sqlite']},
Cyrus IMAP {results.get('cyrus_version', 'unknown')} (Debian). Measured {results['date']}, load average
{results['load_average']['start']} at the start and {results['load_average']['end']} at the end
{_machine_note(results)}.

{summary(results)}"""


def wrap_prose(markdown: str, width: int = 110) -> str:
    """Re-wrap the paragraphs of generated Markdown to `width` columns; headings and tables stay as they are."""
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.extend(textwrap.wrap(" ".join(paragraph), width, break_on_hyphens=False, break_long_words=False))
            paragraph.clear()

    for line in markdown.splitlines():
        if not line.strip() or line.startswith(("|", "#")):
            flush()
            out.append(line)
        else:
            paragraph.append(line.strip())
    flush()
    return "\n".join(out) + "\n"


def write_docs(path: Path, section: str) -> None:
    """Replace the section (up to the next `## ` heading) in docs/performance.md, or append it."""
    text = path.read_text()
    section = wrap_prose(section)
    pattern = re.compile(rf"^## {re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    path.write_text(text.rstrip("\n") + "\n")
