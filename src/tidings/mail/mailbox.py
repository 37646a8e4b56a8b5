"""Mailbox (RFC 8621 §2): properties, /get /changes /set /query /queryChanges, default mailboxes."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..jmap.collation import DEFAULT_COLLATION, SORT_KEYS, fold
from ..jmap.context import CallContext
from ..jmap.errors import SetError, invalid_arguments, invalid_properties
from ..jmap.methods import (
    Changes,
    DataType,
    standard_changes,
    standard_get,
    standard_query,
    standard_query_changes,
    standard_set,
)
from ..jmap.properties import Prop, PropertyTable
from ..jmap.query import QueryArgs, check_conditions, filter_matches
from ..jmap.registry import Method, Registry
from ..jmap.types import is_bool, is_id_or_creation_ref, is_string, is_uint, nullable
from ..store.base import MailboxRow, Transaction
from .ids import MAILBOX, from_wire, to_wire

MAIL = "urn:ietf:params:jmap:mail"

# RFC 8621 §2: roles are the IANA "IMAP Mailbox Name Attributes" registry entries, lower-cased.
ROLES = frozenset(
    {
        "all", "archive", "drafts", "flagged", "important", "inbox", "junk", "sent", "subscribed",
        "trash", "snoozed", "scheduled", "memos",
    }
)
MAX_MAILBOX_DEPTH = 10
MAX_SIZE_MAILBOX_NAME = 490  # octets of UTF-8, as Cyrus and Stalwart use
COUNT_PROPERTIES = ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]

# The mailboxes every new account starts with (issue: Inbox, Drafts, Sent, Trash, Junk, Archive).
DEFAULT_MAILBOXES = [
    ("Inbox", "inbox", 1),
    ("Drafts", "drafts", 2),
    ("Sent", "sent", 3),
    ("Archive", "archive", 4),
    ("Junk", "junk", 5),
    ("Trash", "trash", 6),
]


def _sort_order(value: Any) -> bool:
    return is_uint(value) and value < 2**31


PROPERTIES = PropertyTable(
    [
        Prop("id", server_set=True, immutable=True),
        Prop("name", is_string),
        Prop("parentId", nullable(is_id_or_creation_ref), default=None),
        Prop("role", nullable(is_string), default=None),
        Prop("sortOrder", _sort_order, default=0),
        Prop("totalEmails", server_set=True),
        Prop("unreadEmails", server_set=True),
        Prop("totalThreads", server_set=True),
        Prop("unreadThreads", server_set=True),
        Prop("myRights", server_set=True),
        Prop("isSubscribed", is_bool, default=True),
    ]
)


def rights(row: MailboxRow) -> dict[str, bool]:
    # The owner may do everything, except rename or delete the Inbox, which mail delivery needs.
    protected = row.role == "inbox"
    return {
        "mayReadItems": True,
        "mayAddItems": True,
        "mayRemoveItems": True,
        "maySetSeen": True,
        "maySetKeywords": True,
        "mayCreateChild": True,
        "mayRename": not protected,
        "mayDelete": not protected,
        "maySubmit": True,
    }


def to_json(row: MailboxRow) -> dict[str, Any]:
    return {
        "id": to_wire(MAILBOX, row.id),
        "name": row.name,
        "parentId": to_wire(MAILBOX, row.parent_id) if row.parent_id is not None else None,
        "role": row.role,
        "sortOrder": row.sort_order,
        "totalEmails": row.total_emails,
        "unreadEmails": row.unread_emails,
        "totalThreads": row.total_threads,
        "unreadThreads": row.unread_threads,
        "myRights": rights(row),
        "isSubscribed": row.is_subscribed,
    }


def provision(tx: Transaction) -> None:
    """Create the default mailboxes of a new account (idempotent: existing roles are kept)."""
    existing = {row.role for row in tx.mailboxes.all()}
    for name, role, order in DEFAULT_MAILBOXES:
        if role in existing:
            continue
        pk = tx.mailboxes.insert(MailboxRow(0, name, None, role, order, True))
        tx.record("Mailbox", to_wire(MAILBOX, pk), "created")


def _name_problem(name: str) -> str | None:
    if not name:
        return "The name must not be empty."
    if len(name.encode("utf-8")) > MAX_SIZE_MAILBOX_NAME:
        return f"The name is longer than {MAX_SIZE_MAILBOX_NAME} octets."
    # RFC 8621 §2 / RFC 5198 Net-Unicode: no control characters; stored in NFC.
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        return "The name must not contain control characters."
    return None


EmailHook = Callable[[CallContext, Any, int], None]


class MailboxType(DataType):
    name = "Mailbox"
    capability = MAIL
    properties = PROPERTIES
    query_arguments = frozenset({"sortAsTree", "filterAsTree"})

    def __init__(self) -> None:
        # Set by the Email module: removes a mailbox's emails (destroying those in no other mailbox).
        self.remove_emails: EmailHook | None = None
        # Set by the Email module: recounts unreadThreads when the trash role moves (RFC 8621 §2).
        self.trash_changed: EmailHook | None = None

    # -- /get

    def load(
        self, ctx: CallContext, tx: Any, ids: Sequence[str] | None, properties: set[str]
    ) -> Iterable[dict[str, Any]]:
        rows = tx.mailboxes.all()
        if ids is not None:
            wanted = {from_wire(MAILBOX, i) for i in ids}
            rows = [r for r in rows if r.id in wanted]
        return [to_json(r) for r in rows]

    def changes_extra(self, changes: Changes) -> dict[str, Any]:
        # RFC 8621 §2.2: updatedProperties lists the counts when only they changed, else null.
        return {"updatedProperties": COUNT_PROPERTIES if changes.only_counts else None}

    # -- /set

    def create_order(self, ctx: CallContext, create: dict[str, Any]) -> list[str]:
        """Creates whose parentId names another create's "#id" come after it (RFC 8620 §5.3)."""
        ordered: list[str] = []
        seen: set[str] = set()

        def visit(cid: str, path: set[str]) -> None:
            if cid in seen or cid in path:
                return
            obj = create.get(cid)
            parent = obj.get("parentId") if isinstance(obj, dict) else None
            if isinstance(parent, str) and parent.startswith("#") and parent[1:] in create:
                visit(parent[1:], path | {cid})
            seen.add(cid)
            ordered.append(cid)

        for cid in create:
            visit(cid, set())
        return ordered

    def destroy_order(self, ctx: CallContext, tx: Any, destroy: list[str]) -> list[str]:
        """Deepest first, so that destroying a parent with its children in one call works (a child
        left behind still makes its parent fail with mailboxHasChild, RFC 8621 §2.5)."""
        parents = {r.id: r.parent_id for r in tx.mailboxes.all()}

        def depth(wire_id: str) -> int:
            cursor = from_wire(MAILBOX, ctx.resolve_creation_id(wire_id))
            levels = 0
            while cursor in parents and levels <= MAX_MAILBOX_DEPTH:
                cursor = parents[cursor]
                levels += 1
            return levels

        return sorted(destroy, key=depth, reverse=True)

    def query_changed_ids(self, ctx: CallContext, tx: Any, since: str, args: dict[str, Any]) -> set[str] | None:
        changed = super().query_changed_ids(ctx, tx, since, args)
        if changed is None or not (args.get("sortAsTree") or args.get("filterAsTree")):
            return changed
        # With sortAsTree a mailbox's position depends on its ancestors' names and sort orders, and
        # with filterAsTree whether it is in the results depends on its ancestors matching: so the
        # descendants of a changed mailbox may have moved even though they did not change.
        rows: list[MailboxRow] = tx.mailboxes.all()
        children: dict[int | None, list[int]] = {}
        for row in rows:
            children.setdefault(row.parent_id, []).append(row.id)
        pending = [pk for pk in (from_wire(MAILBOX, i) for i in changed) if pk is not None]
        while pending:
            for child in children.get(pending.pop(), []):
                wire = to_wire(MAILBOX, child)
                if wire not in changed:
                    changed.add(wire)
                    pending.append(child)
        return changed

    def set_arguments(self) -> set[str]:
        return {"onDestroyRemoveEmails"}

    def check_set_arguments(self, args: dict[str, Any]) -> None:
        if not is_bool(args.get("onDestroyRemoveEmails", False)):
            raise invalid_arguments("'onDestroyRemoveEmails' must be a boolean.")

    def _resolve_parent(self, ctx: CallContext, value: Any) -> int | None:
        if value is None:
            return None
        resolved = ctx.resolve_creation_id(value)
        pk = from_wire(MAILBOX, resolved)
        if pk is None:
            raise invalid_properties("parentId", description="The parent mailbox does not exist.")
        return pk

    def _check(
        self,
        tx: Any,
        mailbox_id: int | None,
        name: str,
        parent: int | None,
        role: str | None,
        rows: list[MailboxRow],
    ) -> None:
        by_id = {r.id: r for r in rows}
        problem = _name_problem(name)
        if problem:
            raise invalid_properties("name", description=problem)
        if parent is not None:
            if parent not in by_id:
                raise invalid_properties("parentId", description="The parent mailbox does not exist.")
            # No loops (RFC 8621 §2 parentId), and at most MAX_MAILBOX_DEPTH levels.
            depth = 1
            cursor: int | None = parent
            while cursor is not None:
                if cursor == mailbox_id:
                    raise invalid_properties("parentId", description="A mailbox cannot be its own ancestor.")
                depth += 1
                cursor = by_id[cursor].parent_id
            if depth > MAX_MAILBOX_DEPTH:
                raise invalid_properties("parentId", description=f"Mailboxes nest at most {MAX_MAILBOX_DEPTH} deep.")
        for other in rows:
            if other.id != mailbox_id and other.parent_id == parent and other.name == name:
                raise invalid_properties("name", description="A sibling mailbox already has this name.")
        if role is not None:
            if role not in ROLES:
                raise invalid_properties("role", description=f"Unknown role {role!r}.")
            if any(other.role == role and other.id != mailbox_id for other in rows):
                raise invalid_properties("role", description=f"Another mailbox already has the role {role!r}.")

    def create(self, ctx: CallContext, tx: Any, obj: dict[str, Any]) -> dict[str, Any]:
        name = unicodedata.normalize("NFC", obj["name"])
        parent = self._resolve_parent(ctx, obj["parentId"])
        rows = tx.mailboxes.all()
        self._check(tx, None, name, parent, obj["role"], rows)
        row = MailboxRow(0, name, parent, obj["role"], obj["sortOrder"], obj["isSubscribed"])
        pk = tx.mailboxes.insert(row)
        row.id = pk
        wire = to_wire(MAILBOX, pk)
        tx.record(self.name, wire, "created")
        server_set = to_json(row)
        result = {k: server_set[k] for k in ("id", *COUNT_PROPERTIES, "myRights")}
        if name != obj["name"]:
            # RFC 8620 §5.3: report a value the server changed (here, NFC normalisation).
            result["name"] = name
        return result

    def update(
        self,
        ctx: CallContext,
        tx: Any,
        obj_id: str,
        current: dict[str, Any],
        new: dict[str, Any],
        changed: set[str],
    ) -> dict[str, Any] | None:
        pk = from_wire(MAILBOX, obj_id)
        rows = tx.mailboxes.all()
        row = next((r for r in rows if r.id == pk), None)
        if pk is None or row is None:
            raise SetError("notFound", "No such mailbox.")
        if ({"name", "parentId"} & changed) and not rights(row)["mayRename"]:
            raise SetError("forbidden", "This mailbox cannot be renamed or moved.")
        if "role" in changed and row.role == "inbox":
            raise SetError("forbidden", "The Inbox keeps its role.")
        name = unicodedata.normalize("NFC", new["name"]) if isinstance(new.get("name"), str) else ""
        parent = self._resolve_parent(ctx, new.get("parentId"))
        self._check(tx, pk, name, parent, new.get("role"), rows)
        fields: dict[str, Any] = {}
        if "name" in changed:
            fields["name"] = name
        if "parentId" in changed:
            fields["parent_id"] = parent
        if "role" in changed:
            fields["role"] = new["role"]
        if "sortOrder" in changed:
            fields["sort_order"] = new["sortOrder"]
        if "isSubscribed" in changed:
            fields["is_subscribed"] = new["isSubscribed"]
        tx.mailboxes.update(pk, fields)
        tx.record(self.name, obj_id, "updated")
        if "role" in changed and "trash" in (row.role, new.get("role")) and self.trash_changed is not None:
            # RFC 8621 §2: unreadThreads treats the trash apart, so every thread in it is counted anew.
            self.trash_changed(ctx, tx, pk)
        return None

    def destroy(self, ctx: CallContext, tx: Any, obj_id: str, args: dict[str, Any]) -> None:
        pk = from_wire(MAILBOX, obj_id)
        row = tx.mailboxes.get(pk) if pk is not None else None
        if row is None or pk is None:
            raise SetError("notFound", "No such mailbox.")
        if not rights(row)["mayDelete"]:
            raise SetError("forbidden", "This mailbox cannot be deleted.")
        if tx.mailboxes.has_children(pk):
            raise SetError("mailboxHasChild", "The mailbox has child mailboxes.")
        if row.total_emails > 0:
            if not args.get("onDestroyRemoveEmails", False):
                raise SetError("mailboxHasEmail", "The mailbox has emails.")
            if self.remove_emails is not None:
                self.remove_emails(ctx, tx, pk)
        tx.mailboxes.delete(pk)
        tx.record(self.name, obj_id, "destroyed")

    # -- /query

    def check_condition(self, condition: dict[str, Any]) -> None:
        checks: dict[str, Callable[[Any], bool]] = {
            # An Id (or "#creationId"), so that a bogus value is invalidArguments, not a failed lookup.
            "parentId": nullable(is_id_or_creation_ref),
            "name": is_string,
            "role": nullable(is_string),
            "hasAnyRole": is_bool,
            "isSubscribed": is_bool,
        }
        check_conditions(condition, checks, "Mailbox")

    def sortable(self, prop: str) -> bool:
        return prop in ("sortOrder", "name", "id", "parentId", "role", "isSubscribed", *COUNT_PROPERTIES)

    def _matches(self, ctx: CallContext, row: MailboxRow, node: Any) -> bool:
        return filter_matches(node, lambda condition: self._condition_matches(ctx, row, condition))

    def _condition_matches(self, ctx: CallContext, row: MailboxRow, condition: dict[str, Any]) -> bool:
        for key, value in condition.items():
            if key == "parentId":
                wanted = from_wire(MAILBOX, ctx.resolve_creation_id(value)) if value is not None else None
                if value is not None and wanted is None:
                    return False
                if row.parent_id != wanted:
                    return False
            elif key == "name":
                if fold(value) not in fold(row.name):
                    return False
            elif key == "role":
                if row.role != value:
                    return False
            elif key == "hasAnyRole":
                if (row.role is not None) != value:
                    return False
            elif key == "isSubscribed" and row.is_subscribed != value:
                return False
        return True

    def query_ids(self, ctx: CallContext, tx: Any, query: QueryArgs, args: dict[str, Any]) -> Sequence[str]:
        for flag in ("sortAsTree", "filterAsTree"):
            if not is_bool(args.get(flag, False)):
                raise invalid_arguments(f"'{flag}' must be a boolean.")
        rows: list[MailboxRow] = tx.mailboxes.all()
        by_id = {r.id: r for r in rows}
        matching = {r.id for r in rows if self._matches(ctx, r, query.filter)}
        if args.get("filterAsTree"):
            # RFC 8621 §2.3: only mailboxes whose ancestors all match too.
            def ancestors_match(row: MailboxRow) -> bool:
                cursor = row.parent_id
                while cursor is not None:
                    if cursor not in matching:
                        return False
                    cursor = by_id[cursor].parent_id
                return True

            matching = {i for i in matching if ancestors_match(by_id[i])}
        key = self._sort_key(query)
        if args.get("sortAsTree"):
            children: dict[int | None, list[MailboxRow]] = {}
            for row in rows:
                parent = row.parent_id if row.parent_id in by_id else None
                children.setdefault(parent, []).append(row)
            ordered: list[MailboxRow] = []

            def walk(parent: int | None) -> None:
                for child in sorted(children.get(parent, []), key=key):
                    ordered.append(child)
                    walk(child.id)

            walk(None)
        else:
            ordered = sorted(rows, key=key)
        return [to_wire(MAILBOX, r.id) for r in ordered if r.id in matching]

    def _sort_key(self, query: QueryArgs) -> Callable[[MailboxRow], Any]:
        comparators = query.sort

        def key(row: MailboxRow) -> Any:
            parts: list[Any] = []
            for comparator in comparators:
                value = to_json(row)[comparator.property]
                if isinstance(value, str):
                    value = SORT_KEYS[comparator.collation or DEFAULT_COLLATION](value)
                elif value is None:
                    value = ""
                parts.append(_Directional(value, comparator.is_ascending))
            parts.append(row.id)  # stable between calls when all comparators tie
            return tuple(parts)

        return key


class _Directional:
    """Wraps a sort value so that descending comparators invert the comparison."""

    __slots__ = ("ascending", "value")

    def __init__(self, value: Any, ascending: bool) -> None:
        self.value = value
        self.ascending = ascending

    def __lt__(self, other: _Directional) -> bool:
        try:
            less = self.value < other.value
        except TypeError:
            less = str(self.value) < str(other.value)
        return less if self.ascending else (other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Directional) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


def register(registry: Registry, mailbox: MailboxType) -> None:
    registry.add(Method("Mailbox/get", MAIL, lambda ctx, args: standard_get(ctx, mailbox, args)))
    registry.add(Method("Mailbox/changes", MAIL, lambda ctx, args: standard_changes(ctx, mailbox, args)))
    registry.add(Method("Mailbox/set", MAIL, lambda ctx, args: standard_set(ctx, mailbox, args), writes=True))
    registry.add(Method("Mailbox/query", MAIL, lambda ctx, args: standard_query(ctx, mailbox, args)))
    registry.add(Method("Mailbox/queryChanges", MAIL, lambda ctx, args: standard_query_changes(ctx, mailbox, args)))
