"""The shared real-world corpus: every message parses; golden files match."""

from __future__ import annotations

import json

import pytest

from tests.mime.corpus import CORPUS, GOLDEN, SKIP_REASON, corpus_messages, load, snapshot
from tidings.mime.parse import PREVIEW_LENGTH, extract_part, parse_message

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=SKIP_REASON)


def test_every_corpus_message_parses() -> None:
    count = 0
    for name, raw in corpus_messages():
        count += 1
        msg = parse_message(raw)
        assert msg.size == len(raw), name
        json.dumps(msg.body_structure)
        assert len(msg.preview) <= PREVIEW_LENGTH, name
        listed = set(msg.text_body) | set(msg.html_body) | set(msg.attachments)
        assert listed <= set(msg.parts), name
        for part_id, part in msg.parts.items():
            extracted = extract_part(raw, part_id)
            assert extracted is not None, (name, part_id)
            assert len(extracted.data) == part["size"], (name, part_id)
            assert extracted.type == part["type"], (name, part_id)
    assert count >= 360


GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=[p.stem for p in GOLDEN_FILES])
def test_golden(path: object) -> None:
    from pathlib import Path

    assert isinstance(path, Path)
    golden = json.loads(path.read_text(encoding="utf-8"))
    actual = json.loads(json.dumps(snapshot(parse_message(load(golden["message"])))))
    expected = golden["expected"]
    for key in expected:
        assert actual[key] == expected[key], f"{path.stem}: {key} differs"
    assert actual == expected
