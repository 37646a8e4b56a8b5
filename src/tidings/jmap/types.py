"""Value checks for the JMAP data types of RFC 8620 §1.2–1.4 (Id, Int, UnsignedInt, Date, UTCDate)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Check = Callable[[Any], bool]

MAX_INT = 2**53 - 1
_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
# RFC 8620 §1.4: RFC 3339 date-time, upper-case letters, and a time-secfrac only when it is not zero
# (".5" and ".500" are both allowed; ".0" and ".000" are not).
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d*[1-9]\d*)?(Z|[+-]\d{2}:\d{2})")


def is_id(value: Any) -> bool:
    """RFC 8620 §1.2: 1–255 octets of the URL- and filename-safe base64 alphabet."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def is_id_or_creation_ref(value: Any) -> bool:
    """An Id, or "#creationId" naming an object created earlier in the request (RFC 8620 §5.3)."""
    return is_id(value) or (isinstance(value, str) and value.startswith("#") and is_id(value[1:]))


def is_string(value: Any) -> bool:
    return isinstance(value, str)


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def is_int(value: Any) -> bool:
    """RFC 8620 §1.3 Int: -2^53+1 <= value <= 2^53-1."""
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_INT <= value <= MAX_INT


def is_uint(value: Any) -> bool:
    return is_int(value) and value >= 0


def is_date(value: Any) -> bool:
    return isinstance(value, str) and _DATE.fullmatch(value) is not None and parse_date(value) is not None


def is_utc_date(value: Any) -> bool:
    return is_date(value) and value.endswith("Z")


def parse_date(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def format_utc(moment: datetime | float) -> str:
    """A UTCDate string (RFC 8620 §1.4), to the second."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def nullable(check: Check) -> Check:
    return lambda value: value is None or check(value)


def list_of(check: Check) -> Check:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


def map_of(key: Check, value: Check) -> Check:
    return lambda v: isinstance(v, dict) and all(key(k) and value(x) for k, x in v.items())


def is_object(value: Any) -> bool:
    return isinstance(value, dict)


def anything(value: Any) -> bool:
    return True
