"""The repositories whose SQL cannot be shared with SQLite as is (see dialect.py)."""

from __future__ import annotations

from typing import Any, cast

from ..base import QueueEntry
from ..sqlite.directory import SqliteDirectory
from ..sqlite.outbound import _COLUMNS as _QUEUE_COLUMNS
from ..sqlite.outbound import SqliteOutboundQueue, _entry
from ..sqlite.push import SqlitePushSubscriptions


class PgPushSubscriptions(SqlitePushSubscriptions):
    def delete(self, subscription_id: str) -> bool:
        # RFC 8620 §7.2: erase the URL and keys. The overwrite is a new row version; VACUUM reclaims
        # the old ones (PostgreSQL has no secure_delete).
        self.conn.execute(
            "UPDATE push_subscriptions SET url = repeat('0', length(url)), p256dh = NULL, auth = NULL WHERE id = ?",
            (subscription_id,),
        )
        cur = self.conn.execute("DELETE FROM push_subscriptions WHERE id = ?", (subscription_id,))
        return cur.rowcount > 0


class PgDirectory(SqliteDirectory):
    push_repository = PgPushSubscriptions


class PgOutboundQueue(SqliteOutboundQueue):
    def claim(self, owner: str, now: float, lease_until: float, limit: int) -> list[QueueEntry]:
        # In PostgreSQL the subquery's rows are not re-checked after waiting for a concurrent
        # claimer's row lock, so lock them in the subquery and skip those another claimer holds.
        rows = self.conn.execute(
            "UPDATE outbound_queue SET lease_owner = ?, lease_until = ? WHERE id IN ("
            " SELECT id FROM outbound_queue WHERE due_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
            " ORDER BY due_at LIMIT ? FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_QUEUE_COLUMNS}",
            (owner, lease_until, now, now, limit),
        ).fetchall()
        return [_entry(cast(tuple[Any, ...], r)) for r in sorted(rows, key=lambda r: (r[7], r[0]))]
