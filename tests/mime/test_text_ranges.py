"""Body values from the text ranges recorded at ingest equal those of a full parse.

Email/get decodes a text part from its slice of the message (`body_value_at`) when ingest recorded
where it lies (`ParsedMessage.text_ranges`); a full parse is the reference it must agree with.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mime.corpus import CORPUS, SKIP_REASON, corpus_messages
from tidings.mime.parse import body_value_at, decode_body_values, parse_message

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def assert_ranges_agree(name: str, raw: bytes) -> None:
    parsed = parse_message(raw)
    ranges = parsed.text_ranges
    assert ranges is not None, f"{name}: a text part could not be placed in the message"
    assert set(ranges) == set(parsed.body_values), name
    for part_id, text_range in ranges.items():
        assert body_value_at(raw, text_range) == parsed.body_values[part_id], (name, part_id)
    assert decode_body_values(raw) == parsed.body_values, name


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.eml")), ids=lambda p: p.stem)
def test_fixtures(path: Path) -> None:
    assert_ranges_agree(path.name, path.read_bytes())


def test_lf_only_crlf_and_8bit_messages() -> None:
    for eol in (b"\n", b"\r\n"):
        raw = eol.join(
            [
                b"From: a@example.com",
                b"Subject: mixed",
                b'Content-Type: multipart/mixed; boundary="b"',
                b"",
                b"--b",
                b"Content-Type: text/plain; charset=utf-8",
                b"Content-Transfer-Encoding: 8bit",
                b"",
                "caf\u00e9 r\u00e9sum\u00e9".encode(),
                b"--b",
                b"Content-Type: text/html; charset=iso-8859-1",
                b"Content-Transfer-Encoding: quoted-printable",
                b"",
                b"<p>caf=E9</p>",
                b"--b",
                b"Content-Type: application/octet-stream",
                b"Content-Transfer-Encoding: base64",
                b"",
                b"Y2Fmw6k=",
                b"--b",
                b"Content-Type: text/plain",
                b"",
                b"",
                b"--b--",
                b"",
            ]
        )
        assert_ranges_agree(f"eol={eol!r}", raw)
        # The same short body twice: either occurrence is the same octets.
        assert_ranges_agree("repeated", raw.replace("caf\u00e9 r\u00e9sum\u00e9".encode(), b"--"))


@pytest.mark.skipif(not CORPUS.is_dir(), reason=SKIP_REASON)
def test_every_corpus_message() -> None:
    count = 0
    for name, raw in corpus_messages():
        assert_ranges_agree(name, raw)
        count += 1
    assert count >= 360
