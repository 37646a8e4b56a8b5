"""The rooms of src/tidings import one way only (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tidings"

# Which rooms each room may import from.
ALLOWED = {
    "jmap": set(),
    "mime": set(),
    "push": {"jmap", "store"},
    "store": {"jmap"},
    "mail": {"jmap", "mime", "store", "blob"},
    "smtp": {"jmap", "mime", "store", "mail", "push"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("tidings")}


def test_rooms_import_only_downwards() -> None:
    problems = []
    for room, allowed in ALLOWED.items():
        folder = SRC / room
        if not folder.exists():
            continue
        for path in folder.rglob("*.py"):
            for module in _imports(path):
                parts = module.split(".")
                target = parts[1] if len(parts) > 1 else ""
                if target and target != room and target not in allowed:
                    problems.append(f"{path.relative_to(SRC)} imports {module}")
    assert problems == []
