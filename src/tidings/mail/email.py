"""Email (RFC 8621 §4): /get /changes /query /queryChanges /set /copy /import /parse."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..jmap.context import CallContext
from ..jmap.errors import MethodError, SetError, invalid_arguments, invalid_properties
from ..jmap.methods import (
    DataType,
    standard_changes,
    standard_query,
    standard_query_changes,
    standard_set,
)
from ..jmap.properties import Prop, PropertyTable
from ..jmap.query import QueryArgs, Window
from ..jmap.registry import Method, Registry
from ..jmap.types import is_string, is_utc_date, parse_date
from ..mime import BlobNotFound, BuildError, ParsedMessage, build_message, parse_message
from ..mime.parse import decode_body_values
from ..store.base import EmailRow, Transaction
from . import emailquery
from .counts import CountChanges
from .emailview import (
    ALL_PROPERTIES,
    DEFAULT_PROPERTIES,
    NEEDS_STRUCTURE,
    Bodies,
    BodyOptions,
    BodyValueSource,
    RangedBodies,
    email_view,
    header_properties,
    load_documents,
)
from .ids import EMAIL, MAILBOX, THREAD, from_wire, to_wire
from .ingest import Prepared, ingest, prepare, received_time, trash_mailbox
from .keywords import MAX_KEYWORDS, parse_keywords
from .mailbox import MAIL

SERVER_SET = ("id", "blobId", "threadId", "size", "hasAttachment", "preview")
PROPERTIES = PropertyTable(
    [
        *(Prop(name, server_set=True, immutable=True) for name in SERVER_SET),
        Prop("mailboxIds"),
        Prop("keywords", default={}),
        *(Prop(name, immutable=True) for name in ALL_PROPERTIES if name not in SERVER_SET
          and name not in ("mailboxIds", "keywords")),
    ]
)
GET_ARGUMENTS = frozenset(
    {"bodyProperties", "fetchTextBodyValues", "fetchHTMLBodyValues", "fetchAllBodyValues", "maxBodyValueBytes"}
)
MAX_QUERY_LIMIT = 1000


def email_pk(wire_id: Any) -> int | None:
    return from_wire(EMAIL, wire_id)


class EmailType(DataType):
    name = "Email"
    capability = MAIL
    properties = PROPERTIES
    query_arguments = frozenset({"collapseThreads"})
    sort_extra_keys = ("keyword",)
    max_query_limit = MAX_QUERY_LIMIT

    def __init__(self, domain: str, max_size_attachments: int | None = None) -> None:
        self.domain = domain
        self.max_size_attachments = max_size_attachments

    # -- helpers

    def _mailboxes(self, ctx: CallContext, tx: Transaction, value: Any, prop: str = "mailboxIds") -> set[int]:
        """A mailboxIds map as mailbox rows that exist; at least one (RFC 8621 §4.1.1)."""
        if not isinstance(value, dict) or not value:
            raise invalid_properties(prop, description="An Email must be in at least one mailbox.")
        existing = {row.id for row in tx.mailboxes.all()}
        out = set()
        for key, flag in value.items():
            resolved = ctx.resolve_creation_id(key) if isinstance(key, str) else None
            pk = from_wire(MAILBOX, resolved)
            if flag is not True or pk is None or pk not in existing:
                raise invalid_properties(prop, description=f"No mailbox {key!r}.")
            out.add(pk)
        return out

    def _keywords(self, value: Any, prop: str = "keywords") -> frozenset[str]:
        keywords = parse_keywords(value)
        if keywords is None:
            raise invalid_properties(prop, description="Keywords must be valid IMAP keywords mapped to true.")
        if len(keywords) > MAX_KEYWORDS:
            raise SetError("tooManyKeywords", f"At most {MAX_KEYWORDS} keywords per email.")
        return keywords

    # -- /get

    def get(self, ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        unknown = set(args) - {"accountId", "ids", "properties", *GET_ARGUMENTS}
        if unknown:
            raise invalid_arguments(f"Unknown arguments: {sorted(unknown)}.")
        properties, headers = _properties(args.get("properties"), DEFAULT_PROPERTIES, with_id=True)
        options = BodyOptions(args)
        ids = args.get("ids")
        services = ctx.services
        with services.backend.read(ctx.account_id) as tx:
            state = tx.state(self.name)
            if ids is None:
                pks = tx.emails.all_ids()
                if len(pks) > ctx.limits.max_objects_in_get:
                    raise MethodError("requestTooLarge", "Too many emails to get at once; give ids.")
                wanted = [to_wire(EMAIL, pk) for pk in pks]
            else:
                if not isinstance(ids, list) or not all(is_string(i) for i in ids):
                    raise invalid_arguments("'ids' must be an array of ids.")
                if len(ids) > ctx.limits.max_objects_in_get:
                    raise MethodError("requestTooLarge", f"At most {ctx.limits.max_objects_in_get} ids.")
                wanted = list(dict.fromkeys(ctx.resolve_creation_id(i) or i for i in ids))
            pks_by_wire = {w: email_pk(w) for w in wanted}
            need_structure = bool(headers) or bool(NEEDS_STRUCTURE.intersection(properties)) or (
                "bodyValues" in properties
            )
            rows = tx.emails.rows([p for p in pks_by_wire.values() if p is not None], structure=need_structure)
            listed, not_found = [], []
            for wire in wanted:
                row = rows.get(pks_by_wire[wire] or -1)
                if row is None:
                    not_found.append(wire)
                    continue
                summary, structure = load_documents(row)
                listed.append(
                    email_view(row, row.blob_id, row.size, summary, structure, properties, headers, options,
                               _parser(services, tx, row.blob_id, structure))
                )
        return {"accountId": ctx.account_id, "state": state, "list": listed, "notFound": not_found}

    # -- /set

    def prepare_create(self, ctx: CallContext, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise SetError("invalidProperties", "A create value must be an object.")
        bad = [k for k in obj if k in SERVER_SET or k in ("headers",)]
        if bad:
            raise invalid_properties(*bad, description="Server-set properties cannot be given.")
        return dict(obj)

    def create(self, ctx: CallContext, tx: Any, obj: dict[str, Any]) -> dict[str, Any]:
        mailboxes = self._mailboxes(ctx, tx, obj.get("mailboxIds"))
        keywords = self._keywords(obj.get("keywords", {}))
        received_at = _received_at(obj.get("receivedAt"))
        content = {k: v for k, v in obj.items() if k not in ("mailboxIds", "keywords", "receivedAt")}
        services = ctx.services
        sizes: dict[str, int] = {}

        def fetch_blob(blob_id: str) -> bytes | None:
            data = services.blobs.read(tx, blob_id)
            if data is not None:
                sizes[blob_id] = len(data)
            return data

        try:
            raw = build_message(content, fetch_blob=fetch_blob, domain=self.domain)
        except BuildError as exc:
            raise invalid_properties(*exc.properties, description=exc.description) from None
        except BlobNotFound as exc:
            raise SetError("blobNotFound", str(exc), notFound=exc.blob_ids) from None
        # RFC 8621 §1.3.1: maxSizeAttachmentsPerEmail bounds the sum of the unencoded attachments
        # (every part given by blobId, counted as often as it is used); past it, tooLarge (RFC 8620 §5.3).
        attached = sum(sizes.get(blob_id, 0) for blob_id in _blob_references(content))
        if self.max_size_attachments is not None and attached > self.max_size_attachments:
            raise SetError(
                "tooLarge", f"The attachments add up to {attached} octets; at most {self.max_size_attachments}."
            )
        row = ingest(tx, prepare(services.backend.blobs, raw), mailboxes, keywords, received_at)
        return _created(row)

    def load_for_update(self, ctx: CallContext, tx: Any, obj_id: str, touched: set[str]) -> dict[str, Any] | None:
        pk = email_pk(obj_id)
        rows = tx.emails.rows([pk]) if pk is not None else {}
        row = rows.get(pk)
        if row is None:
            return None
        out: dict[str, Any] = {
            "id": obj_id,
            "mailboxIds": {to_wire(MAILBOX, m): True for m in row.mailbox_ids},
            "keywords": {k: True for k in row.keywords},
        }
        other = sorted(touched - {"mailboxIds", "keywords", "id"})
        if other:
            # Whole objects may be sent back (RFC 8620 §5.3): compare immutable properties' values.
            full = tx.emails.rows([pk], structure=True)[pk]
            summary, structure = load_documents(full)
            props, headers = _properties(other, (), with_id=False)
            out.update(email_view(full, full.blob_id, full.size, summary, structure, props, headers,
                                  BodyOptions({}), _parser(ctx.services, tx, full.blob_id, structure)))
        return out

    def update(
        self,
        ctx: CallContext,
        tx: Any,
        obj_id: str,
        current: dict[str, Any],
        new: dict[str, Any],
        changed: set[str],
    ) -> dict[str, Any] | None:
        pk = email_pk(obj_id)
        assert pk is not None
        row = tx.emails.rows([pk])[pk]
        # Patched maps keep creation-id keys ("#m1") that must be resolved, and "x": null removals.
        mailboxes = (
            self._mailboxes(ctx, tx, new.get("mailboxIds")) if "mailboxIds" in changed else set(row.mailbox_ids)
        )
        keywords = self._keywords(new.get("keywords") or {}) if "keywords" in changed else row.keywords
        apply_change(tx, row, frozenset(mailboxes), keywords)
        return None

    def destroy(self, ctx: CallContext, tx: Any, obj_id: str, args: dict[str, Any]) -> None:
        pk = email_pk(obj_id)
        rows = tx.emails.rows([pk]) if pk is not None else {}
        row = rows.get(pk)
        if row is None:
            raise SetError("notFound", "No such email.")
        remove_email(tx, row)

    # -- /query

    def check_condition(self, condition: dict[str, Any]) -> None:
        emailquery.check_condition(condition)

    def sortable(self, prop: str) -> bool:
        return prop in emailquery.SORTS

    def _store_query(
        self, ctx: CallContext, tx: Any, query: QueryArgs, args: dict[str, Any], *, whole: bool
    ) -> tuple[list[int], int, int | None]:
        collapse = args.get("collapseThreads", False)
        if collapse is None:
            collapse = False
        if not isinstance(collapse, bool):
            raise invalid_arguments("'collapseThreads' must be a boolean.")
        store_filter = emailquery.normalise(query.filter, ctx.resolve_creation_id)
        sort = emailquery.sort_for_store(query.sort) or [emailquery.EmailSort("receivedAt", False)]
        if whole:
            return tx.emails.query(store_filter, sort, collapse, 0, None, None, 0, False)
        anchor = None
        if query.anchor is not None:
            anchor = email_pk(query.anchor)
            if anchor is None:
                raise MethodError("anchorNotFound", "The anchor is not in the results.")
        limit = query.limit if query.limit is not None and query.limit <= MAX_QUERY_LIMIT else MAX_QUERY_LIMIT
        try:
            return tx.emails.query(
                store_filter, sort, collapse, query.position, limit, anchor, query.anchor_offset,
                query.calculate_total,
            )
        except LookupError:
            raise MethodError("anchorNotFound", "The anchor is not in the results.") from None

    def query_window(
        self, ctx: CallContext, tx: Any, query: QueryArgs, args: dict[str, Any]
    ) -> tuple[Window, int | None]:
        ids, position, total = self._store_query(ctx, tx, query, args, whole=False)
        enforced = MAX_QUERY_LIMIT if query.limit is None or query.limit > MAX_QUERY_LIMIT else None
        return Window(position, [to_wire(EMAIL, i) for i in ids], total or 0), enforced

    def query_ids(self, ctx: CallContext, tx: Any, query: QueryArgs, args: dict[str, Any]) -> Sequence[str]:
        ids, _, _ = self._store_query(ctx, tx, query, args, whole=True)
        return [to_wire(EMAIL, i) for i in ids]

    def query_changed_ids(self, ctx: CallContext, tx: Any, since: str, args: dict[str, Any]) -> set[str] | None:
        changed = tx.changed_since(self.name, since)
        if changed is None or not (args.get("collapseThreads") is True or emailquery.thread_dependent(args)):
            return changed
        # With collapsed threads, or thread-keyword conditions or sorts (RFC 8621 §4.4), a change to one
        # email can move its unchanged thread mates in or out of the results: they count as changed too.
        threads = tx.changed_since("Thread", since) or set()
        pks = {p for p in (from_wire(THREAD, t) for t in threads) if p is not None}
        emails = [p for p in (email_pk(e) for e in changed) if p is not None]
        pks.update(row.thread_id for row in tx.emails.rows(emails).values())
        for members in tx.emails.thread_email_ids(sorted(pks)).values():
            changed.update(to_wire(EMAIL, m) for m in members)
        return changed

    # -- /import (RFC 8621 §4.8)

    def import_(self, ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        unknown = set(args) - {"accountId", "ifInState", "emails"}
        if unknown:
            raise invalid_arguments(f"Unknown arguments: {sorted(unknown)}.")
        emails = args.get("emails")
        if not isinstance(emails, dict):
            raise invalid_arguments("'emails' must be a map of creation ids to EmailImport objects.")
        if len(emails) > ctx.limits.max_objects_in_set:
            raise MethodError("requestTooLarge", f"At most {ctx.limits.max_objects_in_set} emails per import.")
        if_in_state = args.get("ifInState")
        if if_in_state is not None and not is_string(if_in_state):
            raise invalid_arguments("'ifInState' must be a string or null.")
        services = ctx.services
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        with services.backend.write(ctx.account_id) as tx:
            old_state = tx.state(self.name)
            if if_in_state is not None and if_in_state != old_state:
                raise MethodError("stateMismatch", f"The state is '{old_state}', not '{if_in_state}'.")
            for creation_id, spec in emails.items():
                try:
                    with tx.savepoint():
                        row = self._import_one(ctx, tx, spec)
                except SetError as error:
                    not_created[creation_id] = error.to_json()
                    continue
                created[creation_id] = _created(row)
                ctx.created_ids[creation_id] = to_wire(EMAIL, row.id)
            new_state = tx.state(self.name)
        return {
            "accountId": ctx.account_id,
            "oldState": old_state,
            "newState": new_state,
            "created": created or None,
            "notCreated": not_created or None,
        }

    def _import_one(self, ctx: CallContext, tx: Transaction, spec: Any) -> EmailRow:
        if not isinstance(spec, dict):
            raise SetError("invalidProperties", "An EmailImport must be an object.")
        unknown = set(spec) - {"blobId", "mailboxIds", "keywords", "receivedAt"}
        if unknown:
            raise invalid_properties(*unknown, description="Unknown EmailImport properties.")
        blob_id = spec.get("blobId")
        if not is_string(blob_id):
            raise invalid_properties("blobId")
        mailboxes = self._mailboxes(ctx, tx, spec.get("mailboxIds"))
        keywords = self._keywords(spec.get("keywords", {}) or {})
        if spec.get("receivedAt") is not None and not is_utc_date(spec["receivedAt"]):
            raise invalid_properties("receivedAt")
        services = ctx.services
        content = services.blobs.resolve(tx, blob_id)
        if content is None:
            raise invalid_properties("blobId", description="No such blob in this account.")
        raw = services.blobs.read(tx, content.blob_id)
        if raw is None:
            raise invalid_properties("blobId", description="No such blob in this account.")
        prepared = prepare(services.backend.blobs, raw)
        received = _received_at(spec.get("receivedAt"))
        if spec.get("receivedAt") is None:
            received = received_time(prepared.parsed) or int(time.time())
        return ingest(tx, prepared, mailboxes, keywords, received)

    # -- /copy (RFC 8621 §4.7, RFC 8620 §5.4)

    def copy(self, ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        allowed = {"fromAccountId", "ifFromInState", "accountId", "ifInState", "create", "onSuccessDestroyOriginal",
                   "destroyFromIfInState"}
        unknown = set(args) - allowed
        if unknown:
            raise invalid_arguments(f"Unknown arguments: {sorted(unknown)}.")
        from_id = args.get("fromAccountId")
        if from_id == ctx.account_id:
            raise invalid_arguments("'fromAccountId' must differ from 'accountId'.")
        if not isinstance(from_id, str) or from_id not in ctx.principal.accounts:
            raise MethodError("fromAccountNotFound", "No such from account.")
        if MAIL not in ctx.principal.accounts[from_id].capabilities:
            raise MethodError("fromAccountNotSupportedByMethod", "The from account has no mail.")
        create = args.get("create")
        if not isinstance(create, dict):
            raise invalid_arguments("'create' must be a map of creation ids to Email objects.")
        services = ctx.services
        sources: dict[str, tuple[EmailRow, bytes]] = {}
        with services.backend.read(from_id) as tx:
            if args.get("ifFromInState") is not None and args["ifFromInState"] != tx.state(self.name):
                raise MethodError("stateMismatch", "ifFromInState does not match.")
            for creation_id, spec in create.items():
                pk = email_pk(spec.get("id")) if isinstance(spec, dict) else None
                row = tx.emails.rows([pk]).get(pk) if pk is not None else None
                if row is not None:
                    raw = services.backend.blobs.read(row.blob_id)
                    if raw is not None:
                        sources[creation_id] = (row, raw)
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        copied_from: list[str] = []
        with services.backend.write(ctx.account_id) as tx:
            old_state = tx.state(self.name)
            if args.get("ifInState") is not None and args["ifInState"] != old_state:
                raise MethodError("stateMismatch", "ifInState does not match.")
            for creation_id, spec in create.items():
                try:
                    if creation_id not in sources:
                        raise SetError("notFound", "No such email in the from account.")
                    extra = set(spec) - {"id", "mailboxIds", "keywords", "receivedAt"}
                    if extra:
                        raise invalid_properties(*extra, description="Only mailboxIds, keywords and receivedAt.")
                    source, raw = sources[creation_id]
                    mailboxes = self._mailboxes(ctx, tx, spec.get("mailboxIds"))
                    keywords = self._keywords(spec["keywords"]) if "keywords" in spec else source.keywords
                    received = _received_at(spec["receivedAt"]) if "receivedAt" in spec else source.received_at
                    with tx.savepoint():
                        blob_id = services.backend.blobs.put(raw)
                        row = ingest(tx, Prepared(blob_id, parse_message(raw)), mailboxes, keywords, received)
                except SetError as error:
                    not_created[creation_id] = error.to_json()
                    continue
                created[creation_id] = _created(row)
                ctx.created_ids[creation_id] = to_wire(EMAIL, row.id)
                copied_from.append(to_wire(EMAIL, source.id))
            new_state = tx.state(self.name)
        response = {
            "fromAccountId": from_id,
            "accountId": ctx.account_id,
            "oldState": old_state,
            "newState": new_state,
            "created": created or None,
            "notCreated": not_created or None,
        }
        if args.get("onSuccessDestroyOriginal") and copied_from:
            # RFC 8620 §5.4: an implicit Email/set in the from account, its response following ours.
            destroy_ctx = CallContext(ctx.principal, ctx.using, ctx.created_ids, ctx.limits, ctx.services,
                                      ctx.call_id, "Email/set", ctx.principal.accounts[from_id])
            set_args = {"accountId": from_id, "destroy": copied_from,
                        "ifInState": args.get("destroyFromIfInState")}
            try:
                ctx.extra_responses.append(("Email/set", standard_set(destroy_ctx, self, set_args)))
            except MethodError as error:
                ctx.extra_responses.append(("error", error.to_json()))
        return response

    # -- /parse (RFC 8621 §4.9)

    def parse(self, ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        unknown = set(args) - {"accountId", "blobIds", "properties", *GET_ARGUMENTS}
        if unknown:
            raise invalid_arguments(f"Unknown arguments: {sorted(unknown)}.")
        blob_ids = args.get("blobIds")
        if not isinstance(blob_ids, list) or not all(is_string(b) for b in blob_ids):
            raise invalid_arguments("'blobIds' must be an array of ids.")
        if len(blob_ids) > ctx.limits.max_objects_in_get:
            raise MethodError("requestTooLarge", f"At most {ctx.limits.max_objects_in_get} blobs.")
        default = [p for p in DEFAULT_PROPERTIES if p not in ("id", "threadId", "mailboxIds", "keywords",
                                                               "receivedAt", "blobId", "size")]
        properties, headers = _properties(args.get("properties"), default, with_id=False)
        options = BodyOptions(args)
        parsed_out: dict[str, Any] = {}
        not_parsable: list[str] = []
        not_found: list[str] = []
        services = ctx.services
        with services.backend.read(ctx.account_id) as tx:
            for blob_id in dict.fromkeys(blob_ids):
                raw = services.blobs.read(tx, blob_id)
                if raw is None:
                    not_found.append(blob_id)
                    continue
                message = _parse_or_none(raw)
                if message is None or not message.headers:
                    not_parsable.append(blob_id)
                    continue
                from .ingest import structure_document, summary_document

                summary = summary_document(message)
                structure = structure_document(message)
                parsed_out[blob_id] = email_view(
                    None, blob_id, message.size, summary, structure, properties, headers, options,
                    lambda message=message: message,  # type: ignore[misc]
                )
        return {
            "accountId": ctx.account_id,
            "parsed": parsed_out or None,
            "notParsable": not_parsable or None,
            "notFound": not_found or None,
        }


def _parse_or_none(raw: bytes) -> ParsedMessage | None:
    try:
        return parse_message(raw)
    except Exception:  # the parser promises not to raise; a message it cannot read is notParsable
        return None


def _parser(
    services: Any, tx: Transaction, blob_id: str, structure: dict[str, Any] | None
) -> Callable[[], BodyValueSource | None]:
    def parse() -> BodyValueSource | None:
        # Only the text parts are decoded: the rest of a full parse is in the stored documents.
        raw = services.backend.blobs.read(blob_id)
        if raw is None:
            return None
        ranges = structure.get("textRanges") if structure is not None else None
        if ranges is not None:
            # Where ingest recorded each text part's octets, only the parts asked for are decoded,
            # each from its slice: no parse of the message (nor of its attachments).
            return RangedBodies(raw, ranges)
        return Bodies(decode_body_values(raw))

    return parse


def _properties(value: Any, default: Iterable[str], *, with_id: bool) -> tuple[list[str], dict[str, Any]]:
    if value is None:
        props = list(default)
    else:
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise invalid_arguments("'properties' must be an array of strings or null.")
        props = list(dict.fromkeys(value))
    headers = header_properties(props, ALL_PROPERTIES)
    plain = [p for p in props if p in ALL_PROPERTIES]
    if with_id and "id" not in plain:
        plain.insert(0, "id")
    return plain, headers


def _received_at(value: Any) -> int:
    if value is None:
        return int(time.time())
    if not is_utc_date(value):
        raise invalid_properties("receivedAt", description="receivedAt must be a UTCDate.")
    moment = parse_date(value)
    assert moment is not None
    return int(moment.timestamp())


def _created(row: EmailRow) -> dict[str, Any]:
    # RFC 8621 §4.6: the created response holds id, blobId, threadId and size.
    return {"id": to_wire(EMAIL, row.id), "blobId": row.blob_id, "threadId": to_wire(THREAD, row.thread_id),
            "size": row.size}


def apply_change(tx: Transaction, row: EmailRow, mailboxes: frozenset[int], keywords: frozenset[str]) -> None:
    """Move an email between mailboxes and/or change its keywords, keeping every count exact."""
    if mailboxes == row.mailbox_ids and keywords == row.keywords:
        return
    unread_after = "$seen" not in keywords and "$draft" not in keywords
    if mailboxes == row.mailbox_ids and unread_after == row.unread:
        # A keyword that is neither $seen nor $draft ($flagged, $answered, ...): the mailbox counts and the
        # (mailbox, thread) summaries depend only on membership, receivedAt and unread-ness, so none of
        # them can move; skip reading the thread and the trash mailbox.
        tx.emails.set_keywords(row.id, keywords)
        tx.record("Email", to_wire(EMAIL, row.id), "updated")
        return
    counts = CountChanges()
    counts.email_delta(tx, row.mailbox_ids, row.unread, mailboxes, unread_after)
    if keywords != row.keywords:
        tx.emails.set_keywords(row.id, keywords)
    if mailboxes != row.mailbox_ids:
        tx.emails.set_mailboxes(row.id, set(mailboxes - row.mailbox_ids), set(row.mailbox_ids - mailboxes),
                                row.received_at)
    counts.refresh_thread(tx, row.thread_id, trash_mailbox(tx))
    tx.record("Email", to_wire(EMAIL, row.id), "updated")
    # The Thread object (its emailIds) is unchanged by keywords or mailboxes; only counts move.
    counts.log(tx)


def remove_email(tx: Transaction, row: EmailRow) -> None:
    """Destroy an email: counts, thread, full-text index, blob reference and change log."""
    counts = CountChanges()
    counts.email_delta(tx, row.mailbox_ids, row.unread, frozenset(), False)
    tx.emails.unindex_text(row.id)
    tx.emails.delete(row.id)
    tx.ref_blob(row.blob_id, "message/rfc822", row.size, -1)
    counts.refresh_thread(tx, row.thread_id, trash_mailbox(tx))
    tx.record("Email", to_wire(EMAIL, row.id), "destroyed")
    if tx.emails.thread_email_ids([row.thread_id]).get(row.thread_id):
        tx.record("Thread", to_wire(THREAD, row.thread_id), "updated")
    else:
        tx.emails.delete_thread(row.thread_id)
        tx.record("Thread", to_wire(THREAD, row.thread_id), "destroyed")
    counts.log(tx)


def remove_from_mailbox(ctx: CallContext, tx: Transaction, mailbox_id: int) -> None:
    """Mailbox/set onDestroyRemoveEmails (RFC 8621 §2.5): leave the mailbox; destroy if in no other."""
    email_ids = tx.emails.in_mailbox(mailbox_id)
    for row in tx.emails.rows(email_ids).values():
        remaining = row.mailbox_ids - {mailbox_id}
        if remaining:
            apply_change(tx, row, remaining, row.keywords)
        else:
            remove_email(tx, row)


def recount_trash_threads(ctx: CallContext, tx: Transaction, mailbox_id: int) -> None:
    """A mailbox gained or lost the trash role: recount the threads of its emails (RFC 8621 §2
    unreadThreads ignores emails only in the trash for other mailboxes, and the reverse)."""
    rows = tx.emails.rows(tx.emails.in_mailbox(mailbox_id))
    counts = CountChanges()
    trash = trash_mailbox(tx)
    for thread_id in sorted({row.thread_id for row in rows.values()}):
        counts.refresh_thread(tx, thread_id, trash)
    counts.log(tx)

def _blob_references(content: dict[str, Any]) -> list[str]:
    """The blobIds of every body part of an Email/set create, once per use."""
    found: list[str] = []

    def walk(part: Any) -> None:
        if not isinstance(part, dict):
            return
        if isinstance(part.get("blobId"), str):
            found.append(part["blobId"])
        for sub in part.get("subParts") or ():
            walk(sub)

    walk(content.get("bodyStructure"))
    for key in ("textBody", "htmlBody", "attachments"):
        for part in content.get(key) or ():
            walk(part)
    return found


def register(registry: Registry, email: EmailType) -> None:
    registry.add(Method("Email/get", MAIL, email.get))
    registry.add(Method("Email/changes", MAIL, lambda ctx, args: standard_changes(ctx, email, args)))
    registry.add(Method("Email/set", MAIL, lambda ctx, args: standard_set(ctx, email, args), writes=True))
    registry.add(Method("Email/query", MAIL, lambda ctx, args: standard_query(ctx, email, args)))
    registry.add(Method("Email/queryChanges", MAIL, lambda ctx, args: standard_query_changes(ctx, email, args)))
    registry.add(Method("Email/copy", MAIL, email.copy, writes=True))
    registry.add(Method("Email/import", MAIL, email.import_, writes=True))
    registry.add(Method("Email/parse", MAIL, email.parse))


__all__ = ["EmailType", "apply_change", "recount_trash_threads", "register", "remove_email", "remove_from_mailbox"]

