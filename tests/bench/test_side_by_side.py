"""The pure parts of the side-by-side benchmark (bench/run.py, bench/report.py, bench/jmap.py): requests,
size parsing, ratios and the docs section. The servers themselves are exercised by running `python -m bench`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from bench import common, jmap, report, run


def _server(p50: float, per_second: float, pss_kb: int) -> dict[str, Any]:
    return {"list": {"p50": p50, "p95": p50 * 2, "per_second": per_second, "server_cpu_ms": p50 / 2,
                     "load_average": 0.5},
            "memory": {"pss_kb": pss_kb, "rss_kb": pss_kb * 2},
            "checks": {"inbox_emails": 2001, "inbox_threads": 476, "list_total": 476, "resync_created": 100,
                       "thread_sizes": {"<a>": 3, "<b>": 1}, "search_totals": {"budget": 10}}}


RESULTS: dict[str, Any] = {
    "date": "2026-11-27 06:00 UTC",
    "machine": {"cores": 2, "cpu": "Test CPU", "ram_gib": 4.0, "python": "3.11.7", "sqlite": "3.40.1"},
    "settings": {"clients": 4, "requests": 100, "requests_per_client": 50, "deliveries": 200,
                 "load_connections": 4, "page_position": 5000, "index_timeout": 3600.0, "cyrus_prefork": 4},
    "load_average": {"start": 0.1, "end": 0.2},
    "cyrus_version": "3.6.1",
    "sizes": {"2000": {"tidings": _server(2.0, 300.0, 102400), "cyrus": _server(8.0, 60.0, 51200)}},
}


def test_sizes_accept_thousands_and_refuse_tiny_mailboxes() -> None:
    assert run.parse_sizes("10000,100000") == [10_000, 100_000]
    assert run.parse_sizes("2k, 100K") == [2_000, 100_000]
    with pytest.raises(argparse.ArgumentTypeError):
        run.parse_sizes("100")


def test_ratio_is_tidings_over_cyrus_and_advantage_follows_the_better_direction() -> None:
    lower = report.Figure("p50", "list", "p50", "ms", "lower")
    higher = report.Figure("rate", "list", "per_second", "req/s", "higher")
    assert report.ratio(2.0, 8.0) == 0.25
    assert report.advantage(lower, 2.0, 8.0) == 4.0  # a quarter of the latency: 4x better
    assert report.advantage(higher, 300.0, 60.0) == 5.0
    assert report.advantage(higher, 30.0, 60.0) == 0.5  # half the throughput: 2x worse
    assert report.ratio(1.0, 0.0) is None and report.ratio(None, 1.0) is None
    assert report.verdict(4.0) == "4.0× better"
    assert report.verdict(1.5) == "1.5× better (under 2×)"
    assert report.verdict(0.5) == "**2.0× worse**"


def test_table_has_every_figure_of_both_servers_with_its_ratio() -> None:
    table = report.size_table(RESULTS["sizes"]["2000"], clients=4)
    assert "| list view (query + get of 50): p50, 1 client | lower | 2.00 ms | 8.00 ms | 0.25 | 4.0× better |" \
        in table
    assert "| list view (query + get of 50): 4 clients | higher | 300 req/s | 60.0 req/s | 5.00 | 5.0× better |" \
        in table
    # Memory is stored in KB and shown in MB; Tidings using twice as much is worse.
    assert "| server memory at the end (PSS, summed) | lower | 100 MB | 50.0 MB | 2.00 | **2.0× worse** |" in table
    # Workloads neither server has (here: search) are left out rather than shown empty.
    assert "search" not in table


def test_checks_table_says_whether_both_servers_answered_the_same() -> None:
    size = RESULTS["sizes"]["2000"]
    checks = report.checks_table(size)
    assert "| Inbox threads | 476 | 476 | yes |" in checks
    assert "| sizes of the 2 opened threads | 4 emails | 4 emails | 2 of 2 equal |" in checks
    different = {**size, "cyrus": {**size["cyrus"], "checks": {**size["cyrus"]["checks"], "list_total": 470}}}
    assert "| list view total (collapsed threads) | 476 | 470 | no |" in report.checks_table(different)


def test_docs_section_replaces_the_previous_one_and_keeps_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n\n## Mail\n\nmail figures\n\n## Scale-out\n\nscale-out figures\n")
    section = report.docs_section(RESULTS, "bench/results/x.json")
    assert "2 cores (Test CPU)" in section and "Cyrus IMAP 3.6.1" in section
    assert "(quiet machine: the load is the benchmark's own)" in section
    report.write_docs(docs, section)
    report.write_docs(docs, section.replace("Test CPU", "Other CPU"))  # a second run replaces, not appends
    text = docs.read_text()
    assert text.count(f"## {report.SECTION}") == 1
    assert "Other CPU" in text and "Test CPU" not in text
    assert "mail figures" in text and "scale-out figures" in text


def test_requests_are_the_same_for_every_server_but_for_ids() -> None:
    assert jmap.list_view("A1", "inbox-id", 5000)[0][1] == {
        "accountId": "A1", "filter": {"inMailbox": "inbox-id"},
        "sort": [{"property": "receivedAt", "isAscending": False}], "collapseThreads": True,
        "position": 5000, "limit": 50, "calculateTotal": True}
    flag = jmap.set_flag("A1", ["e1", "e2"], flagged=True)[0][1]["update"]
    assert flag == {"e1": {"keywords/$flagged": True}, "e2": {"keywords/$flagged": True}}
    unflag = jmap.set_flag("A1", ["e1"], flagged=False)[0][1]["update"]
    assert unflag == {"e1": {"keywords/$flagged": None}}  # null removes the keyword (RFC 8620 §5.3 patch)
    moved = jmap.move("A1", ["e1"], "inbox", "archive")[0][1]["update"]
    assert moved == {"e1": {"mailboxIds/inbox": None, "mailboxIds/archive": True}}
    assert [call[0] for call in jmap.resync("A1", "42")] == ["Email/changes", "Mailbox/get"]


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert common.percentile(values, 50) == 51.0  # index round(49.5) = 50
    assert common.percentile(values, 95) == 95.0
    assert common.percentile([3.0], 95) == 3.0


def test_generated_prose_is_wrapped_but_tables_are_not() -> None:
    long_line = "word " * 60
    table_row = "| " + " | ".join(["a long cell of the table"] * 8) + " |"
    wrapped = report.wrap_prose(f"## Title\n\n{long_line}\nand more\n\n{table_row}\n")
    lines = wrapped.splitlines()
    assert lines[0] == "## Title" and table_row in lines
    prose = [line for line in lines if line.startswith("word")]
    assert len(prose) > 1 and all(len(line) <= 110 for line in prose)
    assert " ".join(prose).split() == (long_line + " and more").split()  # no word lost or added
