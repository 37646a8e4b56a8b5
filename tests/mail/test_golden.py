"""Email/get of selected corpus messages against the reviewed golden files (tests/mail/golden/, made by
tests/mail/regen_golden.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ..helpers import JmapClient
from .mailtools import requires_corpus
from .regen_golden import GOLDEN, SELECTED, compute, golden_name

# MIME to JMAP, whatever the store: run once, on the default backend.
pytestmark = [requires_corpus, pytest.mark.sqlite_only]


@pytest.fixture(scope="module")
def computed(shared_alice: JmapClient) -> dict[str, dict[str, Any]]:
    return compute(shared_alice, SELECTED)


def test_every_selected_message_has_a_golden_file() -> None:
    assert sorted(p.name for p in GOLDEN.glob("*.json")) == sorted(golden_name(label) for label in SELECTED)


@pytest.mark.parametrize("label", SELECTED)
def test_email_get_matches_golden(computed: dict[str, dict[str, Any]], label: str) -> None:
    expected = orjson.loads((GOLDEN / golden_name(label)).read_bytes())
    assert expected["source"] == label
    assert computed[label] == expected
