"""Identity (RFC 8621 §6): /get /changes /set.

Every account has a default identity with the user's own address, which may not be deleted
(mayDelete false). It is created the first time the account's identities are used, in a write
transaction of its own, so it enters the change log like any other. An identity may only use an
address the user owns (their address, an alias to them, a plus-address of either): otherwise
`forbiddenFrom` (§6.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..jmap.context import CallContext
from ..jmap.errors import SetError, invalid_properties
from ..jmap.methods import DataType, standard_changes, standard_get, standard_set
from ..jmap.properties import Prop, PropertyTable
from ..jmap.registry import Method, Registry
from ..jmap.types import is_string, list_of, nullable
from ..store.base import IdentityRow, Store, Transaction, User
from .delivery import Resolver
from .ids import from_wire, to_wire

SUBMISSION_CAPABILITY = "urn:ietf:params:jmap:submission"
IDENTITY = "I"  # wire ids: "I3"


def is_email_address(value: Any) -> bool:
    """An EmailAddress object (RFC 8621 §4.1.2.3): {name: String|null, email: String}."""
    return (
        isinstance(value, dict)
        and set(value) <= {"name", "email"}
        and is_string(value.get("email"))
        and (value.get("name") is None or is_string(value.get("name")))
    )


PROPERTIES = PropertyTable(
    [
        Prop("id", server_set=True, immutable=True),
        Prop("name", is_string, default=""),
        Prop("email", is_string, immutable=True),
        Prop("replyTo", nullable(list_of(is_email_address)), default=None),
        Prop("bcc", nullable(list_of(is_email_address)), default=None),
        Prop("textSignature", is_string, default=""),
        Prop("htmlSignature", is_string, default=""),
        Prop("mayDelete", server_set=True),
    ]
)
_FIELDS = {
    "name": "name",
    "replyTo": "reply_to",
    "bcc": "bcc",
    "textSignature": "text_signature",
    "htmlSignature": "html_signature",
}


def to_json(row: IdentityRow) -> dict[str, Any]:
    return {
        "id": to_wire(IDENTITY, row.id),
        "name": row.name,
        "email": row.email,
        "replyTo": row.reply_to,
        "bcc": row.bcc,
        "textSignature": row.text_signature,
        "htmlSignature": row.html_signature,
        "mayDelete": row.may_delete,
    }


def ensure_default(tx: Transaction, address: str) -> list[IdentityRow]:
    """The account's identities, creating the default one if it has none (write transaction)."""
    rows = tx.identities.all()
    if rows:
        return rows
    row = IdentityRow(0, "", address, None, None, "", "", may_delete=False)
    row.id = tx.identities.insert(row)
    tx.record("Identity", to_wire(IDENTITY, row.id), "created")
    return [row]


class IdentityType(DataType):
    name = "Identity"
    capability = SUBMISSION_CAPABILITY
    properties = PROPERTIES

    def __init__(self, store: Store, resolver: Resolver) -> None:
        self.store = store
        self.resolver = resolver

    def owner(self, ctx: CallContext) -> User | None:
        with self.store.directory() as directory:
            return directory.user_by_id(ctx.principal.user_id)

    def ensure(self, ctx: CallContext) -> None:
        """Create the default identity of the account if needed (before a /get or /set)."""
        with self.store.read(ctx.account_id) as tx:
            if tx.identities.all():
                return
        user = self.owner(ctx)
        if user is None or user.account_id != ctx.account_id:
            return
        with self.store.write(ctx.account_id) as tx:
            ensure_default(tx, user.address)

    # -- /get

    def load(
        self, ctx: CallContext, tx: Any, ids: Sequence[str] | None, properties: set[str]
    ) -> Iterable[dict[str, Any]]:
        rows = tx.identities.all()
        if ids is not None:
            wanted = {from_wire(IDENTITY, i) for i in ids}
            rows = [r for r in rows if r.id in wanted]
        return [to_json(r) for r in rows]

    # -- /set

    def create(self, ctx: CallContext, tx: Any, obj: dict[str, Any]) -> dict[str, Any]:
        if "email" not in obj:
            raise invalid_properties("email", description="An Identity needs an email.")
        user = self.owner(ctx)
        # §6.3 forbiddenFrom: only the user's own addresses.
        if user is None or not self.resolver.owns(user, obj["email"]):
            raise SetError("forbiddenFrom", f"You may not send from {obj['email']!r}.")
        row = IdentityRow(
            0,
            obj["name"],
            obj["email"],
            obj["replyTo"],
            obj["bcc"],
            obj["textSignature"],
            obj["htmlSignature"],
            may_delete=True,
        )
        row.id = tx.identities.insert(row)
        wire = to_wire(IDENTITY, row.id)
        tx.record("Identity", wire, "created")
        return {"id": wire, "mayDelete": True}

    def update(
        self,
        ctx: CallContext,
        tx: Any,
        obj_id: str,
        current: dict[str, Any],
        new: dict[str, Any],
        changed: set[str],
    ) -> dict[str, Any] | None:
        pk = from_wire(IDENTITY, obj_id)
        assert pk is not None
        tx.identities.update(pk, {_FIELDS[name]: new[name] for name in changed})
        tx.record("Identity", obj_id, "updated")
        return None

    def destroy(self, ctx: CallContext, tx: Any, obj_id: str, args: dict[str, Any]) -> None:
        pk = from_wire(IDENTITY, obj_id)
        row = next((r for r in tx.identities.all() if r.id == pk), None)
        if row is None:
            raise SetError("notFound", "No such identity.")
        if not row.may_delete:
            # §6: destroying an identity with mayDelete false is a `forbidden` SetError.
            raise SetError("forbidden", "This identity may not be deleted.")
        tx.identities.delete(row.id)
        tx.record("Identity", obj_id, "destroyed")

    # -- handlers

    def get(self, ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        self.ensure(ctx)
        return standard_get(ctx, self, args)

    def set(self, ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        self.ensure(ctx)
        return standard_set(ctx, self, args)

    def changes(self, ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        return standard_changes(ctx, self, args)


def register(registry: Registry, identities: IdentityType) -> None:
    registry.add(Method("Identity/get", SUBMISSION_CAPABILITY, identities.get))
    registry.add(Method("Identity/changes", SUBMISSION_CAPABILITY, identities.changes))
    registry.add(Method("Identity/set", SUBMISSION_CAPABILITY, identities.set, writes=True))
