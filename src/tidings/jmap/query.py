"""Arguments and windowing shared by every /query and /queryChanges (RFC 8620 §5.5, §5.6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .collation import SORT_KEYS
from .errors import MethodError, invalid_arguments
from .types import is_bool, is_int, is_string, is_uint


@dataclass(frozen=True)
class Comparator:
    property: str
    is_ascending: bool = True
    collation: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class QueryArgs:
    filter: Any
    sort: list[Comparator]
    position: int = 0
    anchor: str | None = None
    anchor_offset: int = 0
    limit: int | None = None
    calculate_total: bool = False


@dataclass
class Window:
    position: int
    ids: list[str]
    total: int


ConditionCheck = Callable[[dict[str, Any]], None]


def check_filter(value: Any, check_condition: ConditionCheck, depth: int = 0) -> None:
    """Validate a FilterOperator/FilterCondition tree; conditions are checked by the data type."""
    if value is None:
        return
    if depth > 32:
        raise MethodError("unsupportedFilter", "The filter is nested too deeply.")
    if not isinstance(value, dict):
        raise invalid_arguments("'filter' must be an object or null.")
    if "operator" in value:
        operator = value["operator"]
        conditions = value.get("conditions")
        if operator not in ("AND", "OR", "NOT"):
            raise invalid_arguments(f"Unknown filter operator {operator!r}.")
        if not isinstance(conditions, list) or set(value) - {"operator", "conditions"}:
            raise invalid_arguments("A FilterOperator has exactly 'operator' and 'conditions' (an array).")
        for condition in conditions:
            check_filter(condition, check_condition, depth + 1)
        return
    check_condition(value)


def check_conditions(condition: dict[str, Any], checks: dict[str, Callable[[Any], bool]], type_name: str) -> None:
    """A FilterCondition against a table of its properties' value checks (RFC 8620 §5.5)."""
    for key, value in condition.items():
        check = checks.get(key)
        if check is None:
            raise MethodError("unsupportedFilter", f"Unknown {type_name} filter condition {key!r}.")
        if not check(value):
            raise invalid_arguments(f"Invalid value for {type_name} filter condition {key!r}.")


def filter_matches(node: Any, condition_matches: Callable[[dict[str, Any]], bool]) -> bool:
    """Evaluate a (checked) FilterOperator/FilterCondition tree in memory (RFC 8620 §5.5)."""
    if node is None:
        return True
    if "operator" in node:
        results = (filter_matches(c, condition_matches) for c in node["conditions"])
        if node["operator"] == "AND":
            return all(results)
        if node["operator"] == "OR":
            return any(results)
        return not any(results)  # NOT: none of the conditions match
    return condition_matches(node)


def parse_sort(value: Any, sortable: Callable[[str], bool], extra_keys: Sequence[str] = ()) -> list[Comparator]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_arguments("'sort' must be an array of Comparators or null.")
    out = []
    for item in value:
        if not isinstance(item, dict) or not is_string(item.get("property")):
            raise invalid_arguments("Each Comparator needs a 'property' string.")
        unknown = set(item) - {"property", "isAscending", "collation", *extra_keys}
        if unknown:
            raise invalid_arguments(f"Unknown Comparator properties: {sorted(unknown)}.")
        ascending = item.get("isAscending", True)
        collation = item.get("collation")
        if not is_bool(ascending) or (collation is not None and not is_string(collation)):
            raise invalid_arguments("Comparator 'isAscending' must be a boolean and 'collation' a string.")
        if collation is not None and collation not in SORT_KEYS:
            raise MethodError("unsupportedSort", f"Collation {collation!r} is not supported.")
        if not sortable(item["property"]):
            raise MethodError("unsupportedSort", f"Sorting on {item['property']!r} is not supported.")
        extra = {k: item[k] for k in extra_keys if k in item}
        out.append(Comparator(item["property"], ascending, collation, extra))
    return out


def parse_query_args(
    args: dict[str, Any],
    check_condition: ConditionCheck,
    sortable: Callable[[str], bool],
    sort_extra_keys: Sequence[str] = (),
) -> QueryArgs:
    check_filter(args.get("filter"), check_condition)
    sort = parse_sort(args.get("sort"), sortable, sort_extra_keys)
    position = args.get("position", 0)
    if position is None:
        position = 0
    if not is_int(position):
        raise invalid_arguments("'position' must be an Int.")
    anchor = args.get("anchor")
    if anchor is not None and not is_string(anchor):
        raise invalid_arguments("'anchor' must be an Id or null.")
    anchor_offset = args.get("anchorOffset", 0)
    if anchor_offset is None:
        anchor_offset = 0
    if not is_int(anchor_offset):
        raise invalid_arguments("'anchorOffset' must be an Int.")
    limit = args.get("limit")
    if limit is not None and not is_uint(limit):
        raise invalid_arguments("'limit' must be an UnsignedInt or null.")
    calculate_total = args.get("calculateTotal", False)
    if calculate_total is None:
        calculate_total = False
    if not is_bool(calculate_total):
        raise invalid_arguments("'calculateTotal' must be a boolean.")
    return QueryArgs(args.get("filter"), sort, position, anchor, anchor_offset, limit, calculate_total)


def window(ids: Sequence[str], query: QueryArgs, max_limit: int | None) -> tuple[Window, int | None]:
    """Apply position/anchor/anchorOffset/limit to a full result list (RFC 8620 §5.5).

    Returns the window and the limit the server enforced when it differs from the request's.
    """
    total = len(ids)
    if query.anchor is not None:
        try:
            index = ids.index(query.anchor) if isinstance(ids, list) else list(ids).index(query.anchor)
        except ValueError:
            raise MethodError("anchorNotFound", "The anchor is not in the results of the query.") from None
        start = max(0, index + query.anchor_offset)
    else:
        start = query.position
        if start < 0:
            start = max(0, total + start)
    limit = query.limit
    enforced = None
    if max_limit is not None and (limit is None or limit > max_limit):
        limit = max_limit
        enforced = max_limit
    end = total if limit is None else start + limit
    return Window(start, list(ids[start:end]), total), enforced
