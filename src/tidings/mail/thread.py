"""Thread (RFC 8621 §3): /get and /changes over the conversations index."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..jmap.context import CallContext
from ..jmap.methods import DataType, standard_changes, standard_get
from ..jmap.properties import Prop, PropertyTable
from ..jmap.registry import Method, Registry
from .ids import EMAIL, THREAD, from_wire, to_wire
from .mailbox import MAIL


class ThreadType(DataType):
    name = "Thread"
    capability = MAIL
    properties = PropertyTable([Prop("id", server_set=True), Prop("emailIds", server_set=True)])

    def load(
        self, ctx: CallContext, tx: Any, ids: Sequence[str] | None, properties: set[str]
    ) -> Iterable[dict[str, Any]]:
        if ids is None:
            pks = tx.emails.all_thread_ids()
        else:
            pks = [p for p in (from_wire(THREAD, i) for i in ids) if p is not None]
        members = tx.emails.thread_email_ids(pks)
        # RFC 8621 §3: emailIds sorted by receivedAt, oldest first (the store orders ties by id).
        return [
            {"id": to_wire(THREAD, pk), "emailIds": [to_wire(EMAIL, e) for e in members[pk]]}
            for pk in pks
            if members.get(pk)
        ]


def register(registry: Registry, thread: ThreadType) -> None:
    registry.add(Method("Thread/get", MAIL, lambda ctx, args: standard_get(ctx, thread, args)))
    registry.add(Method("Thread/changes", MAIL, lambda ctx, args: standard_changes(ctx, thread, args)))
