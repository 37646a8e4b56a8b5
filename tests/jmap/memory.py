"""An in-memory backend and a small data type ("Todo"), to run the generic methods without I/O."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tidings.jmap.context import CORE, Account, CallContext, CoreLimits, Principal
from tidings.jmap.errors import MethodError, SetError
from tidings.jmap.methods import (
    Changes,
    DataType,
    standard_changes,
    standard_get,
    standard_query,
    standard_query_changes,
    standard_set,
)
from tidings.jmap.properties import Prop, PropertyTable
from tidings.jmap.query import QueryArgs
from tidings.jmap.registry import Method, Registry
from tidings.jmap.types import is_bool, is_object, is_string, is_uint, nullable

TODO = "urn:example:todo"


class MemoryTx:
    """One account's objects and change log; a write is a copy that replaces the original on commit."""

    def __init__(self, objects: dict[str, dict[str, Any]], log: dict[str, int], modseq: int) -> None:
        self.objects = objects
        self.log = log  # object id -> modseq of its latest change
        self.created_at: dict[str, int] = {}
        self.modseq = modseq

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        saved = copy.deepcopy((self.objects, self.log, self.created_at, self.modseq))
        try:
            yield
        except BaseException:
            self.objects, self.log, self.created_at, self.modseq = saved
            raise

    def state(self, type_name: str) -> str:
        return str(max(self.log.values(), default=0))

    def record(self, object_id: str) -> None:
        self.modseq += 1
        self.log[object_id] = self.modseq

    def changes(self, type_name: str, since: str, max_changes: int) -> Changes | None:
        if not since.isdigit() or int(since) > self.modseq:
            return None
        number = int(since)
        rows = sorted((m, i) for i, m in self.log.items() if m > number)
        has_more = len(rows) > max_changes
        rows = rows[:max_changes]
        created = [i for _, i in rows if i in self.objects and self.created_at.get(i, 0) > number]
        updated = [i for _, i in rows if i in self.objects and self.created_at.get(i, 0) <= number]
        destroyed = [i for _, i in rows if i not in self.objects and self.created_at.get(i, 0) <= number]
        new_state = str(rows[-1][0]) if has_more else self.state(type_name)
        return Changes(created, updated, destroyed, new_state, has_more)

    def changed_since(self, type_name: str, since: str) -> set[str] | None:
        if not since.isdigit() or int(since) > self.modseq:
            return None
        return {i for i, m in self.log.items() if m > int(since)}


class MemoryBackend:
    def __init__(self) -> None:
        self.tx = MemoryTx({}, {}, 0)

    @contextmanager
    def read(self, account_id: str) -> Iterator[MemoryTx]:
        yield self.tx

    @contextmanager
    def write(self, account_id: str) -> Iterator[MemoryTx]:
        work = copy.deepcopy(self.tx)
        yield work
        self.tx = work  # committed only when the block ends without an exception


class Todo(DataType):
    name = "Todo"
    capability = TODO
    properties = PropertyTable(
        [
            Prop("id", server_set=True, immutable=True),
            Prop("title", is_string),
            Prop("done", is_bool, default=False),
            Prop("priority", is_uint, default=0),
            Prop("list", is_string, immutable=True, default="main"),
            Prop("meta", nullable(is_object), default=None),
            Prop("created", server_set=True),
        ]
    )
    max_query_limit = 50

    def load(
        self, ctx: CallContext, tx: Any, ids: Sequence[str] | None, properties: set[str]
    ) -> Iterable[dict[str, Any]]:
        wanted = tx.objects if ids is None else [i for i in ids if i in tx.objects]
        return [copy.deepcopy(tx.objects[i]) for i in wanted]

    def create(self, ctx: CallContext, tx: Any, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["title"] == "forbidden":
            raise SetError("forbidden", "Not this title.")
        obj_id = f"t{tx.modseq + 1}"
        tx.objects[obj_id] = {**obj, "id": obj_id, "created": tx.modseq + 1}
        tx.created_at[obj_id] = tx.modseq + 1
        tx.record(obj_id)
        return {"id": obj_id, "created": tx.modseq}

    def update(self, ctx: CallContext, tx: Any, obj_id: str, current: dict[str, Any], new: dict[str, Any],
               changed: set[str]) -> dict[str, Any] | None:
        tx.objects[obj_id] = new
        tx.record(obj_id)
        return None

    def destroy(self, ctx: CallContext, tx: Any, obj_id: str, args: dict[str, Any]) -> None:
        if obj_id not in tx.objects:
            raise SetError("notFound")
        del tx.objects[obj_id]
        tx.record(obj_id)

    def check_condition(self, condition: dict[str, Any]) -> None:
        for key in condition:
            if key not in ("done", "titleContains"):
                raise MethodError("unsupportedFilter", key)

    def sortable(self, prop: str) -> bool:
        return prop in ("title", "priority")

    def _matches(self, obj: dict[str, Any], node: Any) -> bool:
        if node is None:
            return True
        if "operator" in node:
            results = [self._matches(obj, c) for c in node["conditions"]]
            return {"AND": all(results), "OR": any(results), "NOT": not any(results)}[node["operator"]]
        if "done" in node and obj["done"] != node["done"]:
            return False
        return not ("titleContains" in node and node["titleContains"] not in obj["title"])

    def query_ids(self, ctx: CallContext, tx: Any, query: QueryArgs, args: dict[str, Any]) -> Sequence[str]:
        found = [o for o in tx.objects.values() if self._matches(o, query.filter)]
        found.sort(key=lambda o: o["id"])
        for comparator in reversed(query.sort):
            name = comparator.property
            found.sort(key=lambda o: o[name], reverse=not comparator.is_ascending)
        return [o["id"] for o in found]


class Services:
    def __init__(self) -> None:
        self.backend = MemoryBackend()


def registry_with_todo(todo: Todo | None = None) -> Registry:
    from tidings.jmap import core

    registry = Registry()
    core.register(registry, CoreLimits())
    todo = todo or Todo()
    registry.add_capability(TODO, {}, {})
    registry.add(Method("Todo/get", TODO, lambda ctx, args: standard_get(ctx, todo, args)))
    registry.add(Method("Todo/changes", TODO, lambda ctx, args: standard_changes(ctx, todo, args)))
    registry.add(Method("Todo/set", TODO, lambda ctx, args: standard_set(ctx, todo, args), writes=True))
    registry.add(Method("Todo/query", TODO, lambda ctx, args: standard_query(ctx, todo, args)))
    registry.add(Method("Todo/queryChanges", TODO, lambda ctx, args: standard_query_changes(ctx, todo, args)))
    return registry


def principal(read_only: bool = False) -> Principal:
    accounts = {
        "a1": Account("a1", "me", True, False, {TODO: {}}),
        "ro": Account("ro", "shared", False, True, {TODO: {}}),
        "bare": Account("bare", "no todos", False, False, {}),
    }
    return Principal(1, "me", accounts, {TODO: "a1", CORE: "a1"})
