"""Property tables: one declaration per property of a data type, read by the generic methods.

The table says which properties exist on the wire, which the server sets, which may not change after
creation, their defaults and value checks; /get filtering and /set validation read it (RFC 8620 §5).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .types import Check, anything

NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class Prop:
    name: str
    check: Check = anything
    server_set: bool = False
    immutable: bool = False
    default: Any = NO_DEFAULT

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT


class PropertyTable:
    def __init__(self, props: Iterable[Prop]) -> None:
        self.by_name: dict[str, Prop] = {p.name: p for p in props}

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __getitem__(self, name: str) -> Prop:
        return self.by_name[name]

    def names(self) -> list[str]:
        return list(self.by_name)
