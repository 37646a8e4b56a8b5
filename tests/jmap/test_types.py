"""Wire value types (RFC 8620 §1.2–1.4)."""

from __future__ import annotations

import pytest

from tidings.jmap.types import is_date, is_utc_date


@pytest.mark.parametrize(
    "value",
    [
        "2014-10-30T14:12:00+08:00",
        "2014-10-30T06:12:00Z",
        "2014-10-30T06:12:00.5Z",
        # A non-zero fraction may end in zeros (Python's isoformat writes microseconds so).
        "2014-10-30T06:12:00.123450Z",
        "2014-10-30T06:12:00.100Z",
    ],
)
def test_dates_rfc_8620_allows(value: str) -> None:
    assert is_date(value)


@pytest.mark.parametrize(
    "value",
    [
        "2014-10-30T06:12:00.0Z",  # §1.4: a zero time-secfrac MUST be omitted
        "2014-10-30T06:12:00.000Z",
        "2014-10-30t06:12:00z",  # §1.4: letters MUST be upper-case
        "2014-10-30T06:12:00",
        "2014-10-30 06:12:00Z",
        "2014-02-30T06:12:00Z",
    ],
)
def test_dates_rfc_8620_refuses(value: str) -> None:
    assert not is_date(value)


def test_utc_dates_end_in_z() -> None:
    assert is_utc_date("2014-10-30T06:12:00.25Z")
    assert not is_utc_date("2014-10-30T06:12:00+00:00")
