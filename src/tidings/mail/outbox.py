"""The mail side of the outbound queue: adding messages to it, and reflecting each attempt's outcome
onto the EmailSubmission that asked for it (RFC 8621 §7 deliveryStatus, undoStatus, dsnBlobIds).

The transport (smtp/outbound.py) decides what happened to each recipient; everything written about
it happens here, in the account's write transaction, through the change log, so /changes and push
see the queue progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..store.base import QueueEntry, SubmissionRow, Transaction

PENDING, SENT, FAILED = "pending", "sent", "failed"
SUBMISSION = "S"  # wire ids of EmailSubmission: "S12"


@dataclass(frozen=True)
class RecipientResult:
    """What one attempt did for a recipient: state is PENDING (try again), SENT or FAILED;
    delivered is the DeliveryStatus value (queued, yes, no, unknown)."""

    state: str
    reply: str
    delivered: str


def queue_message(
    tx: Transaction,
    blob_id: str,
    size: int,
    mail_from: str,
    recipients: list[str],
    *,
    now: float,
    send_at: float,
    give_up: float,
    submission_id: int | None = None,
    parameters: dict[str, Any] | None = None,
) -> int:
    """Add a message to the queue; the entry holds a reference on the blob until it is done.
    `parameters`: the DSN parameters to send it with (store/base.py `QueueEntry`)."""
    tx.ref_blob(blob_id, "message/rfc822", size, +1)
    entry = QueueEntry(
        id=0,
        account_id=tx.account_id,
        submission_id=submission_id,
        blob_id=blob_id,
        mail_from=mail_from,
        recipients=[[address, PENDING, ""] for address in recipients],
        created_at=now,
        due_at=send_at,
        expires_at=send_at + give_up,
        parameters=parameters,
    )
    return tx.outbound.enqueue(entry)


def record_attempt(
    tx: Transaction,
    entry: QueueEntry,
    results: dict[str, RecipientResult],
    *,
    next_due: float | None,
    error: str | None,
    dsn_blob: tuple[str, int] | None = None,
) -> QueueEntry | None:
    """Write an attempt's outcome. Recipients still pending are tried again at `next_due`; when none
    is pending (or `next_due` is None) the entry is done and leaves the queue. Returns the entry as
    it now stands in the queue, or None when it is done."""
    current = tx.outbound.get(entry.id)
    if current is None:
        return None
    recipients = [list(r) for r in current.recipients]
    for item in recipients:
        result = results.get(item[0])
        if result is not None and item[1] == PENDING:
            item[1], item[2] = result.state, result.reply
    still_pending = any(item[1] == PENDING for item in recipients)
    done = not still_pending or next_due is None
    if done:
        tx.outbound.delete(entry.id)
        size = tx.blob(entry.blob_id)
        tx.ref_blob(entry.blob_id, "message/rfc822", size.size if size else 0, -1)
    else:
        assert next_due is not None
        tx.outbound.reschedule(entry.id, recipients, next_due, current.attempts + 1, error)
    if current.submission_id is not None:
        _update_submission(tx, current.submission_id, results, dsn_blob)
    if done:
        return None
    current.recipients, current.due_at, current.attempts = recipients, next_due or 0.0, current.attempts + 1
    return current


def _update_submission(
    tx: Transaction, submission_id: int, results: dict[str, RecipientResult], dsn_blob: tuple[str, int] | None
) -> None:
    found = tx.submissions.rows([submission_id])
    if not found:
        return
    row: SubmissionRow = found[0]
    status = {k: dict(v) for k, v in row.delivery_status.items()}
    for address, result in results.items():
        previous = status.get(address, {})
        status[address] = {
            "smtpReply": result.reply,
            "delivered": result.delivered,
            "displayed": previous.get("displayed", "unknown"),
        }
    fields: dict[str, object] = {"delivery_status": status}
    # RFC 8621 §7: once an attempt has begun, the message cannot be recalled.
    if row.undo_status == "pending":
        fields["undo_status"] = "final"
    if dsn_blob is not None:
        blob_id, size = dsn_blob
        tx.ref_blob(blob_id, "message/rfc822", size, +1)
        fields["dsn_blob_ids"] = [*row.dsn_blob_ids, blob_id]
    tx.submissions.update(submission_id, fields)
    tx.record("EmailSubmission", f"{SUBMISSION}{submission_id}", "updated")
