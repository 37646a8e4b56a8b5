"""The standard methods of RFC 8620 §5, written once for every data type.

A data type subclasses `DataType`, declares its property table and implements the hooks that touch
its storage (load, create, update, destroy, query). Everything the spec says about argument shapes,
limits, states, patches and error reporting lives here.

Storage is reached through the `Backend`/`Transaction` protocols below, which the store implements:
this module never sees SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from .context import CallContext
from .errors import MethodError, SetError, invalid_arguments, invalid_properties
from .patch import apply_patch
from .properties import PropertyTable
from .query import QueryArgs, Window, parse_query_args, window
from .types import is_id, is_string, is_uint


@dataclass(frozen=True)
class Changes:
    """The answer of the change log for one type since a state (RFC 8620 §5.2)."""

    created: list[str]
    updated: list[str]
    destroyed: list[str]
    new_state: str
    has_more: bool
    # True when every updated id changed only in its counts since the old state (RFC 8621 §2.2).
    only_counts: bool = False


class Transaction(Protocol):
    def savepoint(self) -> AbstractContextManager[None]: ...

    def state(self, type_name: str) -> str: ...

    def changes(self, type_name: str, since: str, max_changes: int) -> Changes | None: ...

    def changed_since(self, type_name: str, since: str) -> set[str] | None: ...


class Backend(Protocol):
    def read(self, account_id: str) -> AbstractContextManager[Any]: ...

    def write(self, account_id: str) -> AbstractContextManager[Any]: ...


class DataType:
    """Hooks a data type implements; the defaults say the operation is not supported."""

    name: str = ""
    capability: str = ""
    properties: PropertyTable = PropertyTable([])
    # Properties /get returns when `properties` is null (RFC 8620 §5.1); None means all of them.
    default_get_properties: Sequence[str] | None = None
    max_query_limit: int | None = None
    # A type not bound to an account (RFC 8620 §7.2 PushSubscription) takes no accountId, has no
    # state and no ifInState; its storage comes from `storage` instead of the account's.
    account_bound: bool = True

    def storage(self, ctx: CallContext, *, write: bool) -> AbstractContextManager[Any]:
        """The transaction a type that is not account-bound reads and writes in."""
        raise NotImplementedError

    # -- /get
    def load(
        self, ctx: CallContext, tx: Any, ids: Sequence[str] | None, properties: set[str]
    ) -> Iterable[dict[str, Any]]:
        raise NotImplementedError

    # -- /set
    def create(self, ctx: CallContext, tx: Any, obj: dict[str, Any]) -> dict[str, Any]:
        """Create and return the server-set properties (including `id`) of the new object."""
        raise SetError("forbidden", f"{self.name} objects cannot be created.")

    def load_for_update(self, ctx: CallContext, tx: Any, obj_id: str, touched: set[str]) -> dict[str, Any] | None:
        found = list(self.load(ctx, tx, [obj_id], set(self.properties.names())))
        return found[0] if found else None

    def update(
        self,
        ctx: CallContext,
        tx: Any,
        obj_id: str,
        current: dict[str, Any],
        new: dict[str, Any],
        changed: set[str],
    ) -> dict[str, Any] | None:
        """Apply the changed properties; return properties that changed beyond what was asked."""
        raise SetError("forbidden", f"{self.name} objects cannot be updated.")

    def destroy(self, ctx: CallContext, tx: Any, obj_id: str, args: dict[str, Any]) -> None:
        raise SetError("forbidden", f"{self.name} objects cannot be destroyed.")

    def create_order(self, ctx: CallContext, create: dict[str, Any]) -> list[str]:
        return list(create)

    def prepare_create(self, ctx: CallContext, obj: Any) -> dict[str, Any]:
        """Check a create object and fill in defaults (RFC 8620 §5.3); SetError when invalid."""
        return prepare_create(self, obj)

    def destroy_order(self, ctx: CallContext, tx: Any, destroy: list[str]) -> list[str]:
        """The order to destroy in (e.g. children before their parents); the ids as given."""
        return destroy

    def changes_extra(self, changes: Changes) -> dict[str, Any]:
        """Extra /changes response arguments (e.g. Mailbox's updatedProperties)."""
        return {}

    def set_arguments(self) -> set[str]:
        """Extra /set arguments this type accepts (e.g. onDestroyRemoveEmails)."""
        return set()

    def check_set_arguments(self, args: dict[str, Any]) -> None:
        return None

    # -- /query
    query_arguments: frozenset[str] = frozenset()
    sort_extra_keys: tuple[str, ...] = ()

    def check_condition(self, condition: dict[str, Any]) -> None:
        raise MethodError("unsupportedFilter", f"{self.name} has no filter conditions.")

    def sortable(self, prop: str) -> bool:
        return False

    def query_ids(self, ctx: CallContext, tx: Any, query: QueryArgs, args: dict[str, Any]) -> Sequence[str]:
        """The full, ordered result list of a query."""
        raise MethodError("unknownMethod", f"{self.name}/query is not supported.")

    def query_window(
        self, ctx: CallContext, tx: Any, query: QueryArgs, args: dict[str, Any]
    ) -> tuple[Window, int | None]:
        """The requested window; types with large result sets override this to avoid full lists."""
        return window(self.query_ids(ctx, tx, query, args), query, self.max_query_limit)

    def query_state(self, ctx: CallContext, tx: Any, args: dict[str, Any]) -> str:
        return str(tx.state(self.name))

    def query_changed_ids(self, ctx: CallContext, tx: Any, since: str, args: dict[str, Any]) -> set[str] | None:
        """Ids whose membership or position in any query may have changed since the query state."""
        changed: set[str] | None = tx.changed_since(self.name, since)
        return changed


def _check_keys(args: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
    unknown = set(args) - set(allowed)
    if unknown:
        raise invalid_arguments(f"Unknown arguments: {sorted(unknown)}.")


def _backend(ctx: CallContext) -> Backend:
    backend: Backend = ctx.services.backend
    return backend


def _open(ctx: CallContext, dt: DataType, *, write: bool) -> AbstractContextManager[Any]:
    if not dt.account_bound:
        return dt.storage(ctx, write=write)
    backend = _backend(ctx)
    return backend.write(ctx.account_id) if write else backend.read(ctx.account_id)


def _property_list(dt: DataType, value: Any, default: Sequence[str] | None) -> set[str]:
    if value is None:
        props = set(default) if default is not None else set(dt.properties.names())
    else:
        if not isinstance(value, list) or not all(is_string(p) for p in value):
            raise invalid_arguments("'properties' must be an array of strings or null.")
        props = set(value)
        unknown = [p for p in props if not dt.accepts_property(p)] if hasattr(dt, "accepts_property") else [
            p for p in props if p not in dt.properties
        ]
        if unknown:
            raise invalid_arguments(f"Unknown properties: {sorted(unknown)}.")
    props.add("id")
    return props


def _id_list(ctx: CallContext, value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(is_string(i) for i in value):
        raise invalid_arguments(f"'{name}' must be an array of ids.")
    return value


# -- /get (RFC 8620 §5.1) -------------------------------------------------------------------------


def standard_get(
    ctx: CallContext, dt: DataType, args: dict[str, Any], extra_args: frozenset[str] = frozenset()
) -> dict[str, Any]:
    _check_keys(args, {"ids", "properties", *extra_args} | ({"accountId"} if dt.account_bound else set()))
    ids = args.get("ids")
    properties = _property_list(dt, args.get("properties"), dt.default_get_properties)
    wanted: list[str] | None = None
    if ids is not None:
        raw = _id_list(ctx, ids, "ids")
        if len(raw) > ctx.limits.max_objects_in_get:
            raise MethodError("requestTooLarge", f"At most {ctx.limits.max_objects_in_get} ids per /get.")
        # Duplicates appear once (§5.1); creation ids of this request resolve to their real ids.
        wanted = list(dict.fromkeys(ctx.resolve_creation_id(i) or i for i in raw))
    with _open(ctx, dt, write=False) as tx:
        state = tx.state(dt.name) if dt.account_bound else None
        valid = [i for i in wanted if is_id(i)] if wanted is not None else None
        found = list(dt.load(ctx, tx, valid, properties)) if valid is None or valid else []
    if wanted is None and len(found) > ctx.limits.max_objects_in_get:
        raise MethodError("requestTooLarge", f"There are more than {ctx.limits.max_objects_in_get} objects.")
    found_ids = {obj["id"] for obj in found}
    not_found = [i for i in wanted if i not in found_ids] if wanted is not None else []
    listed = [{k: v for k, v in obj.items() if k in properties} for obj in found]
    if not dt.account_bound:
        return {"list": listed, "notFound": not_found}
    return {"accountId": ctx.account_id, "state": state, "list": listed, "notFound": not_found}


# -- /changes (RFC 8620 §5.2) ---------------------------------------------------------------------

DEFAULT_MAX_CHANGES = 5000


def standard_changes(ctx: CallContext, dt: DataType, args: dict[str, Any]) -> dict[str, Any]:
    _check_keys(args, {"accountId", "sinceState", "maxChanges"})
    since = args.get("sinceState")
    if not is_string(since):
        raise invalid_arguments("'sinceState' must be a string.")
    max_changes = args.get("maxChanges")
    if max_changes is not None and (not is_uint(max_changes) or max_changes == 0):
        raise invalid_arguments("'maxChanges' must be a positive integer or null.")
    limit = min(max_changes or DEFAULT_MAX_CHANGES, DEFAULT_MAX_CHANGES)
    with _backend(ctx).read(ctx.account_id) as tx:
        changes = tx.changes(dt.name, since, limit)
    if changes is None:
        raise MethodError("cannotCalculateChanges", f"Cannot calculate changes from state '{since}'.")
    out: dict[str, Any] = {
        "accountId": ctx.account_id,
        "oldState": since,
        "newState": changes.new_state,
        "hasMoreChanges": changes.has_more,
        "created": changes.created,
        "updated": changes.updated,
        "destroyed": changes.destroyed,
    }
    out.update(dt.changes_extra(changes))
    return out


# -- /set (RFC 8620 §5.3) -------------------------------------------------------------------------


def _validate_values(dt: DataType, obj: dict[str, Any], names: Iterable[str]) -> list[str]:
    bad = []
    for name in names:
        prop = dt.properties.by_name.get(name)
        if prop is None or not prop.check(obj.get(name)):
            bad.append(name)
    return bad


def _default_of(dt: DataType, name: str) -> Any:
    prop = dt.properties.by_name.get(name)
    if prop is None or not prop.has_default:
        raise KeyError(name)
    return prop.default


def prepare_create(dt: DataType, obj: Any) -> dict[str, Any]:
    """Check a create object against the property table and fill in defaults."""
    if not isinstance(obj, dict):
        raise SetError("invalidProperties", "A create value must be an object.")
    bad = [k for k in obj if k not in dt.properties or dt.properties[k].server_set]
    if bad:
        raise invalid_properties(*bad, description="Unknown or server-set properties.")
    full = dict(obj)
    for prop in dt.properties.by_name.values():
        if prop.server_set or prop.name in full:
            continue
        if prop.has_default:
            full[prop.name] = prop.default
    bad = _validate_values(dt, full, [k for k in full if k in dt.properties])
    if bad:
        raise invalid_properties(*bad, description="Invalid property values.")
    return full


def standard_set(ctx: CallContext, dt: DataType, args: dict[str, Any]) -> dict[str, Any]:
    bound = {"accountId", "ifInState"} if dt.account_bound else set()
    _check_keys(args, {"create", "update", "destroy", *dt.set_arguments()} | bound)
    if_in_state = args.get("ifInState")
    # `null` is the default of each; any other non-object (or non-array) is a wrong type, not "none".
    create = args.get("create")
    update = args.get("update")
    destroy = args.get("destroy")
    create = {} if create is None else create
    update = {} if update is None else update
    destroy = [] if destroy is None else destroy
    if if_in_state is not None and not is_string(if_in_state):
        raise invalid_arguments("'ifInState' must be a string or null.")
    if not isinstance(create, dict) or not isinstance(update, dict):
        raise invalid_arguments("'create' and 'update' must be objects or null.")
    if not isinstance(destroy, list) or not all(is_string(i) for i in destroy):
        raise invalid_arguments("'destroy' must be an array of ids or null.")
    dt.check_set_arguments(args)
    if len(create) + len(update) + len(destroy) > ctx.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", f"At most {ctx.limits.max_objects_in_set} objects per /set.")

    created: dict[str, Any] = {}
    updated: dict[str, Any] = {}
    destroyed: list[str] = []
    not_created: dict[str, Any] = {}
    not_updated: dict[str, Any] = {}
    not_destroyed: dict[str, Any] = {}

    with _open(ctx, dt, write=True) as tx:
        old_state = tx.state(dt.name) if dt.account_bound else None
        if if_in_state is not None and if_in_state != old_state:
            raise MethodError("stateMismatch", f"The state is '{old_state}', not '{if_in_state}'.")
        for creation_id in dt.create_order(ctx, create):
            try:
                full = dt.prepare_create(ctx, create[creation_id])
                with tx.savepoint():
                    result = dt.create(ctx, tx, full)
            except SetError as error:
                not_created[creation_id] = error.to_json()
                continue
            ctx.created_ids[creation_id] = result["id"]
            # §5.3: return server-set properties and any defaults the client did not send.
            sent = create[creation_id]
            extra = {k: v for k, v in full.items() if k not in sent and k in dt.properties}
            extra.update(result)
            created[creation_id] = extra

        # After the creates, so that "#creationId" in destroy names the object just created.
        destroy_ids = {ctx.resolve_creation_id(i) or i for i in destroy}
        for raw_id, patch in update.items():
            obj_id = ctx.resolve_creation_id(raw_id)
            if obj_id is None:
                not_updated[raw_id] = SetError("notFound", "Unknown creation id.").to_json()
                continue
            try:
                if not isinstance(patch, dict):
                    raise SetError("invalidPatch", "A PatchObject must be an object.")
                if obj_id in destroy_ids:
                    raise SetError("willDestroy", "This object is destroyed in the same call.")
                with tx.savepoint():
                    extra_changed = _update_one(ctx, dt, tx, obj_id, patch)
            except SetError as error:
                not_updated[obj_id] = error.to_json()
                continue
            updated[obj_id] = extra_changed or None

        for raw_id in dt.destroy_order(ctx, tx, destroy):
            obj_id = ctx.resolve_creation_id(raw_id)
            if obj_id is None or not is_id(obj_id):
                not_destroyed[raw_id] = SetError("notFound", "No such object.").to_json()
                continue
            if obj_id in destroyed or obj_id in not_destroyed:
                continue
            try:
                with tx.savepoint():
                    dt.destroy(ctx, tx, obj_id, args)
            except SetError as error:
                not_destroyed[obj_id] = error.to_json()
                continue
            destroyed.append(obj_id)
        new_state = tx.state(dt.name) if dt.account_bound else None

    out: dict[str, Any] = {}
    if dt.account_bound:
        out = {"accountId": ctx.account_id, "oldState": old_state, "newState": new_state}
    return out | {
        "created": created or None,
        "updated": updated or None,
        "destroyed": destroyed or None,
        "notCreated": not_created or None,
        "notUpdated": not_updated or None,
        "notDestroyed": not_destroyed or None,
    }


def same_json(a: Any, b: Any) -> bool:
    """Equality of JSON values, where `true` is not `1` (Python's `True == 1` is not JSON's)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _update_one(
    ctx: CallContext, dt: DataType, tx: Any, obj_id: str, patch: dict[str, Any]
) -> dict[str, Any] | None:
    touched_top = {path.split("/", 1)[0].replace("~1", "/").replace("~0", "~") for path in patch}
    unknown = [p for p in touched_top if p not in dt.properties]
    if unknown:
        raise invalid_properties(*unknown, description="Unknown properties.")
    if not is_id(obj_id):
        raise SetError("notFound", "No such object.")
    current = dt.load_for_update(ctx, tx, obj_id, touched_top)
    if current is None:
        raise SetError("notFound", "No such object.")
    new, touched = apply_patch(current, patch, lambda name: _default_of(dt, name))
    bad = []
    changed = set()
    for name in touched:
        prop = dt.properties[name]
        if same_json(new.get(name), current.get(name)):
            continue
        # §5.3: server-set (and immutable) properties may be sent only with their current value.
        if prop.server_set or prop.immutable:
            bad.append(name)
        else:
            changed.add(name)
    bad.extend(_validate_values(dt, new, changed))
    if bad:
        raise invalid_properties(*bad, description="Invalid, server-set or immutable properties.")
    if not changed:
        return None
    return dt.update(ctx, tx, obj_id, current, new, changed)


# -- /query (RFC 8620 §5.5) -----------------------------------------------------------------------

QUERY_ARGS = frozenset({"accountId", "filter", "sort", "position", "anchor", "anchorOffset", "limit", "calculateTotal"})


def standard_query(ctx: CallContext, dt: DataType, args: dict[str, Any]) -> dict[str, Any]:
    _check_keys(args, QUERY_ARGS | dt.query_arguments)
    query = parse_query_args(args, dt.check_condition, dt.sortable, dt.sort_extra_keys)
    with _backend(ctx).read(ctx.account_id) as tx:
        query_state = dt.query_state(ctx, tx, args)
        result, enforced_limit = dt.query_window(ctx, tx, query, args)
    out: dict[str, Any] = {
        "accountId": ctx.account_id,
        "queryState": query_state,
        "canCalculateChanges": True,
        "position": result.position,
        "ids": result.ids,
    }
    if query.calculate_total:
        out["total"] = result.total
    if enforced_limit is not None:
        out["limit"] = enforced_limit
    return out


# -- /queryChanges (RFC 8620 §5.6) ----------------------------------------------------------------


def standard_query_changes(ctx: CallContext, dt: DataType, args: dict[str, Any]) -> dict[str, Any]:
    allowed = {"accountId", "filter", "sort", "sinceQueryState", "maxChanges", "upToId", "calculateTotal"}
    _check_keys(args, allowed | (dt.query_arguments - {"anchor", "position"}))
    query = parse_query_args(
        {k: v for k, v in args.items() if k in ("filter", "sort", "calculateTotal")},
        dt.check_condition,
        dt.sortable,
        dt.sort_extra_keys,
    )
    since = args.get("sinceQueryState")
    if not isinstance(since, str):
        raise invalid_arguments("'sinceQueryState' must be a string.")
    max_changes = args.get("maxChanges")
    if max_changes is not None and not is_uint(max_changes):
        raise invalid_arguments("'maxChanges' must be an UnsignedInt or null.")
    up_to_id = args.get("upToId")
    if up_to_id is not None and not is_string(up_to_id):
        raise invalid_arguments("'upToId' must be an Id or null.")
    with _backend(ctx).read(ctx.account_id) as tx:
        new_state = dt.query_state(ctx, tx, args)
        changed = dt.query_changed_ids(ctx, tx, since, args)
        if changed is None:
            raise MethodError("cannotCalculateChanges", f"Cannot calculate changes from '{since}'.")
        ids = list(dt.query_ids(ctx, tx, query, args)) if changed or query.calculate_total else []
    # Every object that changed may have left or moved: it is removed, and added back at its new index
    # when it is still in the results. An unchanged object cannot have moved relative to the others,
    # because every sort and filter reads properties of the object itself.
    removed = sorted(changed)
    added = [{"id": obj_id, "index": index} for index, obj_id in enumerate(ids) if obj_id in changed]
    if max_changes is not None and len(removed) + len(added) > max_changes:
        raise MethodError("tooManyChanges", f"There are more than {max_changes} changes.")
    out: dict[str, Any] = {
        "accountId": ctx.account_id,
        "oldQueryState": since,
        "newQueryState": new_state,
        "removed": removed,
        "added": added,
    }
    if query.calculate_total:
        out["total"] = len(ids)
    return out


def iter_chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
