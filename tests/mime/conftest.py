from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def fixture_bytes() -> object:
    def load(name: str) -> bytes:
        return (FIXTURES / name).read_bytes()

    return load
