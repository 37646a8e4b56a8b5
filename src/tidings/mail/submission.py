"""EmailSubmission (RFC 8621 §7): /get /changes /query /queryChanges /set.

Creating a submission checks the message and the envelope, strips Bcc, stores the message to send
as a blob and adds it to the outbound queue, in the same transaction as the submission record. The
queue worker (smtp/outbound.py) sends it at `sendAt` and writes the progress back through
mail/outbox.py. undoStatus is `pending` until the first attempt begins; a pending submission can be
canceled (its queue entry is removed atomically, or `cannotUnsend` if an attempt has begun).

Delayed send is FUTURERELEASE (RFC 4865): HOLDFOR / HOLDUNTIL parameters of the envelope's
mailFrom, up to maxDelayedSend seconds ahead. The DSN extension (RFC 3461): RET and ENVID on
mailFrom, NOTIFY and ORCPT on each rcptTo, checked here and kept with the queue entry, which passes
them on to a next hop that offers DSN and acts on them itself otherwise (smtp/outbound.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..jmap.context import CallContext
from ..jmap.errors import MethodError, SetError, invalid_arguments, invalid_properties
from ..jmap.methods import (
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
from ..jmap.types import format_utc, is_object, is_string, is_utc_date, list_of, nullable, parse_date
from ..mime import parse_message
from ..store.base import Store, SubmissionRow, User
from . import dsnparams
from .delivery import Resolver
from .email import EmailType
from .identity import IDENTITY, SUBMISSION_CAPABILITY, IdentityType
from .ids import EMAIL, THREAD, from_wire, to_wire
from .outbox import SUBMISSION, queue_message

MAX_RECIPIENTS = 1000
UNDO_STATUSES = ("pending", "final", "canceled")
QUEUED_REPLY = "250 2.0.0 Queued for delivery"
CANCELED_REPLY = "554 5.0.0 Submission canceled"
# mailFrom parameters accepted: RFC 4865 HOLDFOR/HOLDUNTIL and RFC 3461 RET/ENVID are acted on;
# SIZE, BODY and SMTPUTF8 are ones this server sets itself when sending (from the message), so a
# client's value changes nothing. rcptTo parameters: RFC 3461 NOTIFY and ORCPT.
MAIL_PARAMETERS = frozenset({"HOLDFOR", "HOLDUNTIL", "SIZE", "BODY", "SMTPUTF8"}) | dsnparams.MAIL_PARAMETERS
RCPT_PARAMETERS = dsnparams.RCPT_PARAMETERS
# An addr-spec good enough to send to: no spaces, controls or angle brackets; a dotted domain or an
# address literal.
_LABEL = r"[A-Za-z0-9\-\u0080-\U0010ffff]+"
_ADDRESS = re.compile(
    r"[^\s<>()\[\]\\,;:\"@\x00-\x1f\x7f]+@(" + _LABEL + r"(\." + _LABEL + r")*|\[[^\]\s]+\])"
)


def is_address(value: Any) -> bool:
    """An Address object of an Envelope (RFC 8621 §7): {email, parameters: Object|null}."""
    if not isinstance(value, dict) or set(value) - {"email", "parameters"} or not is_string(value.get("email")):
        return False
    params = value.get("parameters")
    return params is None or (
        isinstance(params, dict) and all(isinstance(k, str) and (v is None or is_string(v)) for k, v in params.items())
    )


def is_envelope(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"mailFrom", "rcptTo"}
        and is_address(value["mailFrom"])
        and isinstance(value["rcptTo"], list)
        and all(is_address(a) for a in value["rcptTo"])
    )


PROPERTIES = PropertyTable(
    [
        Prop("id", server_set=True, immutable=True),
        Prop("identityId", is_string, immutable=True),
        Prop("emailId", is_string, immutable=True),
        Prop("threadId", server_set=True, immutable=True),
        Prop("envelope", nullable(is_envelope), immutable=True, default=None),
        Prop("sendAt", server_set=True, immutable=True),
        Prop("undoStatus", lambda v: v in UNDO_STATUSES, default="pending"),
        Prop("deliveryStatus", server_set=True),
        Prop("dsnBlobIds", server_set=True),
        Prop("mdnBlobIds", server_set=True),
    ]
)
FILTERS: dict[str, Callable[[Any], bool]] = {
    "identityIds": list_of(is_string),
    "emailIds": list_of(is_string),
    "threadIds": list_of(is_string),
    "undoStatus": lambda v: v in UNDO_STATUSES,
    "before": is_utc_date,
    "after": is_utc_date,
}
# RFC 8621 §7.3 names the sort "sentAt" (the property is sendAt); both are accepted.
SORTS = ("emailId", "threadId", "sentAt", "sendAt")


def to_json(row: SubmissionRow) -> dict[str, Any]:
    return {
        "id": to_wire(SUBMISSION, row.id),
        "identityId": row.identity_id,
        "emailId": row.email_id,
        "threadId": row.thread_id,
        "envelope": row.envelope,
        "sendAt": format_utc(row.send_at),
        "undoStatus": row.undo_status,
        "deliveryStatus": row.delivery_status,
        "dsnBlobIds": row.dsn_blob_ids,
        "mdnBlobIds": row.mdn_blob_ids,
    }


def strip_bcc(raw: bytes) -> bytes:
    """The message without its Bcc header fields (RFC 8621 §7.5: MUST remove them)."""
    end = raw.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = raw.find(b"\n\n"), 2
    if end < 0:
        end, sep = len(raw), 0
    lines = raw[:end].split(b"\n")
    kept: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() == b"bcc"
        if not dropping:
            kept.append(line)
    return b"\n".join(kept) + raw[end : end + sep] + raw[end + sep :]


def hold_until(params: dict[str, Any] | None, now: float, max_delay: int) -> float:
    """The release time asked for with FUTURERELEASE (RFC 4865 §3), or now. SetError if invalid."""
    params = params or {}
    unknown = {k.upper() for k in params} - MAIL_PARAMETERS
    if unknown:
        raise invalid_properties("envelope", description=f"Unsupported mailFrom parameters: {sorted(unknown)}.")
    upper = {k.upper(): v for k, v in params.items()}
    if "SIZE" in upper and not (isinstance(upper["SIZE"], str) and upper["SIZE"].isdigit()):
        raise invalid_properties("envelope", description="SIZE must be a number of octets (RFC 1870).")
    if "HOLDFOR" in upper and "HOLDUNTIL" in upper:
        raise invalid_properties("envelope", description="HOLDFOR and HOLDUNTIL cannot be combined (RFC 4865 §3).")
    if "HOLDFOR" not in upper and "HOLDUNTIL" not in upper:
        return now
    if max_delay <= 0:
        raise invalid_properties("envelope", description="Delayed sending is not supported.")
    if "HOLDFOR" in upper:
        # RFC 4865 §4: hold-for-value = 1*9DIGIT, seconds.
        value = upper["HOLDFOR"]
        if not isinstance(value, str) or not value.isdigit() or len(value) > 9:
            raise invalid_properties("envelope", description="HOLDFOR must be a number of seconds.")
        delay = int(value)
    else:
        value = upper["HOLDUNTIL"]
        moment = parse_date(value) if isinstance(value, str) else None
        if moment is None:
            raise invalid_properties("envelope", description="HOLDUNTIL must be an RFC 3339 date-time.")
        delay = max(0, int(moment.timestamp() - now))
    if delay > max_delay:
        raise invalid_properties("envelope", description=f"At most {max_delay} seconds ahead (maxDelayedSend).")
    return now + delay


def dsn_parameters(envelope: dict[str, Any], recipients: list[str]) -> dict[str, Any] | None:
    """The envelope's DSN parameters (RFC 3461 §4), checked and normalised, as the queue entry keeps
    them: {"mail": {...}, "rcpt": {address: {...}}}; None when there are none. SetError if invalid."""

    def checked(params: dict[str, Any] | None, allowed: frozenset[str], where: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in (params or {}).items():
            upper = name.upper()
            if upper not in allowed:
                continue
            if upper in out:
                raise invalid_properties("envelope", description=f"{upper} is given twice on {where}.")
            try:
                out[upper] = dsnparams.check_decoded(upper, value)
            except dsnparams.ParameterError as error:
                raise invalid_properties("envelope", description=f"{where}: {error}.") from None
        return out

    mail = checked(envelope["mailFrom"].get("parameters"), dsnparams.MAIL_PARAMETERS, "mailFrom")
    rcpt: dict[str, dict[str, str]] = {}
    for address in envelope["rcptTo"]:
        params = address.get("parameters") or {}
        unknown = {k.upper() for k in params} - RCPT_PARAMETERS
        if unknown:
            raise invalid_properties("envelope", description=f"Unsupported rcptTo parameters: {sorted(unknown)}.")
        found = checked(params, RCPT_PARAMETERS, f"rcptTo {address['email']}")
        # A recipient given twice is sent to once, with the parameters it was first given.
        if found and address["email"] in recipients and address["email"] not in rcpt:
            rcpt[address["email"]] = found
    if not mail and not rcpt:
        return None
    return {"mail": mail, "rcpt": rcpt}


def _addresses(values: Iterable[Any] | None) -> list[str]:
    return [a["email"] for a in values or [] if isinstance(a, dict) and a.get("email")]


class SubmissionType(DataType):
    name = "EmailSubmission"
    capability = SUBMISSION_CAPABILITY
    properties = PROPERTIES

    def __init__(
        self,
        store: Store,
        resolver: Resolver,
        identities: IdentityType,
        emails: EmailType,
        *,
        max_size: int,
        max_delayed_send: int,
        give_up: float,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.identities = identities
        self.emails = emails
        self.max_size = max_size
        self.max_delayed_send = max_delayed_send
        self.give_up = give_up
        self.on_enqueued = on_enqueued

    # -- /get

    def load(
        self, ctx: CallContext, tx: Any, ids: Sequence[str] | None, properties: set[str]
    ) -> Iterable[dict[str, Any]]:
        if ids is None:
            rows = tx.submissions.rows(None)
        else:
            pks = [p for p in (from_wire(SUBMISSION, i) for i in ids) if p is not None]
            rows = tx.submissions.rows(pks)
        return [to_json(r) for r in rows]

    # -- /set

    def set_arguments(self) -> set[str]:
        return {"onSuccessUpdateEmail", "onSuccessDestroyEmail"}

    def check_set_arguments(self, args: dict[str, Any]) -> None:
        update = args.get("onSuccessUpdateEmail")
        if update is not None and not (isinstance(update, dict) and all(is_object(v) for v in update.values())):
            raise invalid_arguments("'onSuccessUpdateEmail' must be a map of ids to PatchObjects or null.")
        destroy = args.get("onSuccessDestroyEmail")
        if destroy is not None and not list_of(is_string)(destroy):
            raise invalid_arguments("'onSuccessDestroyEmail' must be an array of ids or null.")

    def create(self, ctx: CallContext, tx: Any, obj: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        if obj.get("undoStatus", "pending") != "pending":
            raise invalid_properties("undoStatus", description="A new submission is pending.")
        # The identity and the email must exist (§7.5: else invalidProperties).
        identity_wire = ctx.resolve_creation_id(obj["identityId"]) or ""
        identity_pk = from_wire(IDENTITY, identity_wire)
        identity = next((r for r in tx.identities.all() if r.id == identity_pk), None)
        if identity is None:
            raise invalid_properties("identityId", description="No such identity.")
        email_wire = ctx.resolve_creation_id(obj["emailId"]) or ""
        email_pk = from_wire(EMAIL, email_wire)
        email = tx.emails.rows([email_pk]).get(email_pk) if email_pk is not None else None
        if email is None:
            raise invalid_properties("emailId", description="No such email.")
        raw = self.store.blobs.read(email.blob_id)
        if raw is None:
            raise invalid_properties("emailId", description="The email's content is missing.")
        # §7.5: tooLarge with maxSize.
        if len(raw) > self.max_size:
            raise SetError("tooLarge", f"At most {self.max_size} octets can be sent.", maxSize=self.max_size)
        parsed = parse_message(raw)
        user = self.identities.owner(ctx)
        if user is None:
            raise SetError("forbiddenToSend", "No user to send as.")
        from_addresses = _addresses(parsed.from_)
        if not from_addresses:
            raise SetError("invalidEmail", "The email has no From address.", properties=["from"])
        # §7.5 forbiddenFrom: every From address must be the user's own.
        bad_from = [a for a in from_addresses if not self.resolver.owns(user, a)]
        if bad_from:
            raise SetError("forbiddenFrom", f"You may not send as {', '.join(bad_from)}.")
        envelope = obj.get("envelope")
        if envelope is None:
            envelope = self._derive_envelope(parsed, identity.email, user)
        mail_from = envelope["mailFrom"]["email"]
        if not mail_from or not self.resolver.owns(user, mail_from):
            raise SetError("forbiddenMailFrom", f"You may not use {mail_from!r} as the envelope sender.")
        send_at = hold_until(envelope["mailFrom"].get("parameters"), now, self.max_delayed_send)
        recipients = list(dict.fromkeys(a["email"] for a in envelope["rcptTo"]))
        if not recipients:
            raise SetError("noRecipients", "The envelope has no recipients.")
        if len(recipients) > MAX_RECIPIENTS:
            raise SetError("tooManyRecipients", f"At most {MAX_RECIPIENTS} recipients.", maxRecipients=MAX_RECIPIENTS)
        invalid = [a for a in recipients if not _ADDRESS.fullmatch(a)]
        parameters = dsn_parameters(envelope, recipients)
        if invalid:
            raise SetError("invalidRecipients", "Invalid recipient addresses.", invalidRecipients=invalid)

        message = strip_bcc(raw)
        blob_id = self.store.blobs.put(message)
        row = SubmissionRow(
            id=0,
            identity_id=identity_wire,
            email_id=email_wire,
            thread_id=to_wire(THREAD, email.thread_id),
            envelope=envelope,
            send_at=int(send_at),
            undo_status="pending",
            delivery_status={
                a: {"smtpReply": QUEUED_REPLY, "delivered": "queued", "displayed": "unknown"} for a in recipients
            },
            dsn_blob_ids=[],
            mdn_blob_ids=[],
            created_at=int(now),
            # Reports about the message name it by Message-ID (mail/reports.py).
            message_id=parsed.message_id[0] if parsed.message_id else None,
        )
        row.id = tx.submissions.insert(row)
        queue_message(tx, blob_id, len(message), mail_from, recipients, now=now, send_at=send_at,
                      give_up=self.give_up, submission_id=row.id, parameters=parameters)
        wire = to_wire(SUBMISSION, row.id)
        tx.record(self.name, wire, "created")
        out = {k: v for k, v in to_json(row).items() if k not in ("identityId", "emailId")}
        return out | {"id": wire}

    def _derive_envelope(self, parsed: Any, identity_email: str, user: User) -> dict[str, Any]:
        """RFC 8621 §7: the envelope from the headers when the client gave none."""
        senders = [(n, v) for n, v in parsed.headers if n.lower() in ("sender",)]
        froms = [(n, v) for n, v in parsed.headers if n.lower() in ("from",)]
        source = parsed.sender if senders else parsed.from_
        fields = senders or froms
        addresses = _addresses(source)
        # "If multiple addresses are present ... or there is more than one Sender/From header field,
        # the server SHOULD reject the EmailSubmission as invalid."
        if len(fields) > 1 or len(addresses) > 1:
            raise SetError("invalidEmail", "More than one Sender/From address.",
                           properties=["sender" if senders else "from"])
        mail_from = addresses[0] if addresses else identity_email
        if not _identity_allows(identity_email, mail_from):
            mail_from = identity_email
        rcpt = list(dict.fromkeys(_addresses(parsed.to) + _addresses(parsed.cc) + _addresses(parsed.bcc)))
        return {
            "mailFrom": {"email": mail_from, "parameters": None},
            "rcptTo": [{"email": a, "parameters": None} for a in rcpt],
        }

    def update(
        self,
        ctx: CallContext,
        tx: Any,
        obj_id: str,
        current: dict[str, Any],
        new: dict[str, Any],
        changed: set[str],
    ) -> dict[str, Any] | None:
        pk = from_wire(SUBMISSION, obj_id)
        assert pk is not None
        # §7: the only change a client can make is pending -> canceled.
        if new["undoStatus"] != "canceled":
            raise invalid_properties("undoStatus", description="undoStatus can only be set to canceled.")
        if current["undoStatus"] != "pending" or not tx.outbound.cancel(pk, time.time()):
            raise SetError("cannotUnsend", "The message is already being sent.")
        status = {
            address: {**value, "smtpReply": CANCELED_REPLY, "delivered": "no"}
            for address, value in current["deliveryStatus"].items()
        }
        tx.submissions.update(pk, {"undo_status": "canceled", "delivery_status": status})
        tx.record(self.name, obj_id, "updated")
        return {"deliveryStatus": status}

    def destroy(self, ctx: CallContext, tx: Any, obj_id: str, args: dict[str, Any]) -> None:
        pk = from_wire(SUBMISSION, obj_id)
        rows = tx.submissions.rows([pk]) if pk is not None else []
        if not rows:
            raise SetError("notFound", "No such submission.")
        # §7.5: removing the record does not affect the delivery (the queue entry stays, unlinked).
        for blob_id in [*rows[0].dsn_blob_ids, *rows[0].mdn_blob_ids]:
            tx.ref_blob(blob_id, "message/rfc822", 0, -1)
        tx.submissions.delete(rows[0].id)
        tx.record(self.name, obj_id, "destroyed")

    # -- /query

    def check_condition(self, condition: dict[str, Any]) -> None:
        check_conditions(condition, FILTERS, "EmailSubmission")

    def sortable(self, prop: str) -> bool:
        return prop in SORTS

    def _matches(self, ctx: CallContext, row: SubmissionRow, node: Any) -> bool:
        return filter_matches(node, lambda condition: self._condition_matches(ctx, row, condition))

    def _condition_matches(self, ctx: CallContext, row: SubmissionRow, condition: dict[str, Any]) -> bool:
        for key, value in condition.items():
            if key in ("identityIds", "emailIds", "threadIds"):
                attribute = {"identityIds": row.identity_id, "emailIds": row.email_id, "threadIds": row.thread_id}[key]
                if attribute not in {ctx.resolve_creation_id(v) or v for v in value}:
                    return False
            elif key == "undoStatus" and row.undo_status != value:
                return False
            elif key in ("before", "after"):
                moment = parse_date(value)
                assert moment is not None
                if key == "before" and not row.send_at < moment.timestamp():
                    return False
                if key == "after" and not row.send_at >= moment.timestamp():
                    return False
        return True

    def query_ids(self, ctx: CallContext, tx: Any, query: QueryArgs, args: dict[str, Any]) -> Sequence[str]:
        rows = [r for r in tx.submissions.rows(None) if self._matches(ctx, r, query.filter)]
        rows.sort(key=lambda r: r.id)
        for comparator in reversed(query.sort):
            prop = comparator.property

            def key(r: SubmissionRow, prop: str = prop) -> Any:
                if prop in ("sentAt", "sendAt"):
                    return r.send_at
                wire = r.email_id if prop == "emailId" else r.thread_id
                return (len(wire), wire)

            rows.sort(key=key, reverse=not comparator.is_ascending)
        return [to_wire(SUBMISSION, r.id) for r in rows]

    # -- handlers

    def set(self, ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        self.identities.ensure(ctx)
        # Email ids of the submissions that may be destroyed: their records are gone afterwards.
        email_of: dict[str, str] = {}
        wanted = [i for i in [*(args.get("update") or {}), *(args.get("destroy") or [])] if isinstance(i, str)]
        if wanted:
            with self.store.read(ctx.account_id) as tx:
                pks = [p for p in (from_wire(SUBMISSION, i) for i in wanted) if p is not None]
                email_of = {to_wire(SUBMISSION, r.id): r.email_id for r in tx.submissions.rows(pks)}
        response = standard_set(ctx, self, args)
        for creation_id, created in (response.get("created") or {}).items():
            email_id = ctx.resolve_creation_id((args.get("create") or {})[creation_id].get("emailId", ""))
            if email_id:
                email_of[created["id"]] = email_id
        if response.get("created") and self.on_enqueued is not None:
            self.on_enqueued()
        self._on_success(ctx, args, response, email_of)
        return response

    def _on_success(
        self, ctx: CallContext, args: dict[str, Any], response: dict[str, Any], email_of: dict[str, str]
    ) -> None:
        """§7.5: one implicit Email/set for onSuccessUpdateEmail/onSuccessDestroyEmail, its response
        after ours. Keys are submission ids, or "#creationId" for submissions created in this call."""
        succeeded = {c["id"] for c in (response.get("created") or {}).values()}
        succeeded |= set(response.get("updated") or {})
        succeeded |= set(response.get("destroyed") or [])

        def email_for(key: str) -> str | None:
            submission_id = ctx.created_ids.get(key[1:]) if key.startswith("#") else key
            if submission_id is None or submission_id not in succeeded:
                return None
            return email_of.get(submission_id)

        update: dict[str, Any] = {}
        for key, patch in (args.get("onSuccessUpdateEmail") or {}).items():
            email_id = email_for(key)
            if email_id is not None:
                update[email_id] = patch
        destroy = [e for e in (email_for(k) for k in args.get("onSuccessDestroyEmail") or []) if e is not None]
        if not update and not destroy:
            return
        email_ctx = CallContext(ctx.principal, ctx.using, ctx.created_ids, ctx.limits, ctx.services, ctx.call_id,
                                "Email/set", ctx.account)
        set_args: dict[str, Any] = {"accountId": ctx.account_id}
        if update:
            set_args["update"] = update
        if destroy:
            set_args["destroy"] = list(dict.fromkeys(destroy))
        try:
            ctx.extra_responses.append(("Email/set", standard_set(email_ctx, self.emails, set_args)))
        except MethodError as error:
            ctx.extra_responses.append(("error", error.to_json()))


def _identity_allows(identity_email: str, address: str) -> bool:
    """RFC 8621 §6: an identity's email, or any address of its domain for "*@domain"."""
    local, _, domain = identity_email.rpartition("@")
    if local == "*":
        return address.lower().endswith("@" + domain.lower())
    return address.lower() == identity_email.lower()


def register(registry: Registry, submissions: SubmissionType) -> None:
    cap = SUBMISSION_CAPABILITY
    registry.add(Method("EmailSubmission/get", cap, lambda ctx, args: standard_get(ctx, submissions, args)))
    registry.add(Method("EmailSubmission/changes", cap, lambda ctx, args: standard_changes(ctx, submissions, args)))
    registry.add(Method("EmailSubmission/query", cap, lambda ctx, args: standard_query(ctx, submissions, args)))
    registry.add(
        Method("EmailSubmission/queryChanges", cap, lambda ctx, args: standard_query_changes(ctx, submissions, args))
    )
    registry.add(Method("EmailSubmission/set", cap, submissions.set, writes=True))


__all__ = ["SubmissionType", "hold_until", "register", "strip_bcc", "to_json"]
