"""Keywords (RFC 8621 §4.1.1): IMAP flag keywords, case-insensitive, kept lower-cased."""

from __future__ import annotations

from typing import Any

# RFC 3501 atom-specials plus "]" (RFC 8621 §4.1.1 refers to the IMAP "flag-keyword" grammar).
_FORBIDDEN = set('(){ %*"\\]')
MAX_KEYWORDS = 100


def normalise_keyword(keyword: str) -> str | None:
    """The keyword lower-cased, or None if it is not a valid IMAP flag keyword."""
    if not 1 <= len(keyword) <= 255:
        return None
    for char in keyword:
        if not 0x21 <= ord(char) <= 0x7E or char in _FORBIDDEN:
            return None
    return keyword.lower()


def parse_keywords(value: Any) -> frozenset[str] | None:
    """A `String[Boolean]` keywords map (every value true) as a set, or None when invalid."""
    if not isinstance(value, dict):
        return None
    out = set()
    for key, flag in value.items():
        keyword = normalise_keyword(key) if isinstance(key, str) else None
        if keyword is None or flag is not True:
            return None
        out.add(keyword)
    return frozenset(out)
