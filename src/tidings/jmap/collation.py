"""Collations for string sorting and matching (RFC 4790 registry; RFC 5051 i;unicode-casemap)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

_LEADING_DIGITS = re.compile(r"\d+")


def _ascii_casemap(value: str) -> Any:
    # RFC 4790 §9.2: only the ASCII letters a-z fold to upper case; other characters compare as octets.
    return value.translate(_ASCII_UPPER).encode("utf-8")


_ASCII_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def _unicode_casemap(value: str) -> Any:
    # RFC 5051: titlecase-fold then canonical decomposition; casefold + NFKD is the usual approximation,
    # then ties broken by the octets so the order is total.
    return (unicodedata.normalize("NFKD", value.casefold()), value.encode("utf-8"))


def _ascii_numeric(value: str) -> Any:
    # RFC 4790 §9.1: the leading digits as a number; a string without them is +infinity.
    match = _LEADING_DIGITS.match(value)
    return (0, int(match.group())) if match else (1, 0)


def _octet(value: str) -> Any:
    return value.encode("utf-8")


SORT_KEYS: dict[str, Callable[[str], Any]] = {
    "i;ascii-casemap": _ascii_casemap,
    "i;unicode-casemap": _unicode_casemap,
    "i;ascii-numeric": _ascii_numeric,
    "i;octet": _octet,
}

DEFAULT_COLLATION = "i;unicode-casemap"


def fold(value: str) -> str:
    """Case- and compatibility-fold for case-insensitive matching (filters)."""
    return unicodedata.normalize("NFKD", value.casefold())
