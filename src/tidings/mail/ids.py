"""Wire ids of the mail types: a one-letter prefix and the row number ("M12" is mailbox 12)."""

from __future__ import annotations


def to_wire(prefix: str, number: int) -> str:
    return f"{prefix}{number}"


def from_wire(prefix: str, wire_id: object) -> int | None:
    if (
        isinstance(wire_id, str)
        and wire_id.startswith(prefix)
        and 1 < len(wire_id) < 20
        and wire_id[1:].isascii()
        and wire_id[1:].isdigit()
        and wire_id[1] != "0"
    ):
        return int(wire_id[1:])
    return None


MAILBOX = "M"
EMAIL = "E"
THREAD = "T"
