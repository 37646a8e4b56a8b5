"""Address lists as found in the wild (RFC 8621 §4.1.2.3 asAddresses)."""

from __future__ import annotations

from tidings.mime import as_addresses


def test_addresses_missing_their_comma_stay_apart() -> None:
    # Regression: "a@x b@y" was glued into the one address "a@xb@y".
    assert as_addresses(" tim@powerupdev.com concierge@powerupdev.com") == [
        {"name": None, "email": "tim@powerupdev.com"},
        {"name": None, "email": "concierge@powerupdev.com"},
    ]
    assert as_addresses(" a@b.example (A) d@e.example (D)") == [
        {"name": "A", "email": "a@b.example"},
        {"name": "D", "email": "d@e.example"},
    ]


def test_ordinary_forms_are_unchanged() -> None:
    assert as_addresses(" a @ b . example") == [{"name": None, "email": "a@b.example"}]
    assert as_addresses(" John Doe <j@x.example>") == [{"name": "John Doe", "email": "j@x.example"}]
    assert as_addresses(" undisclosed-recipients:;") == []
