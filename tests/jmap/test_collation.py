"""Collations for sorting (RFC 4790, RFC 5051)."""

from __future__ import annotations

from tidings.jmap.collation import SORT_KEYS, fold


def _sorted(collation: str, values: list[str]) -> list[str]:
    return sorted(values, key=SORT_KEYS[collation])


def test_ascii_casemap_folds_only_ascii_letters() -> None:
    assert _sorted("i;ascii-casemap", ["b", "A", "a", "B"])[:2] in (["A", "a"], ["a", "A"])
    key = SORT_KEYS["i;ascii-casemap"]
    assert key("abc") == key("ABC")
    assert key("é") != key("É")


def test_unicode_casemap_folds_non_ascii_letters_and_orders_totally() -> None:
    key = SORT_KEYS["i;unicode-casemap"]
    assert key("É")[0] == key("é")[0]
    assert _sorted("i;unicode-casemap", ["Zebra", "éclair", "apple", "Éclair"])[0] == "apple"
    assert key("Straße")[0] == key("STRASSE")[0]
    assert key("a") != key("A")  # ties are broken, so the order is stable


def test_ascii_numeric_orders_by_leading_number_and_puts_non_numbers_last() -> None:
    assert _sorted("i;ascii-numeric", ["10", "9", "x", "100abc", "0"]) == ["0", "9", "10", "100abc", "x"]


def test_fold_makes_filters_case_insensitive() -> None:
    assert fold("INBOX") == fold("inbox")
    assert fold("Ärger") == fold("ärger")
