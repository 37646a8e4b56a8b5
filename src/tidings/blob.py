"""Binary data (RFC 8620 §6): uploads, access checks for downloads, Blob/copy.

Stored blobs ("B..." ids) are content-addressed: files, or rows in the database for small ones
(store/blobs.py). Other features may add derived blobs (an attachment inside a stored message, say)
by registering a resolver for their id prefix; a resolver checks the account's access and returns
the bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jmap.context import CORE, CallContext
from .jmap.errors import MethodError, SetError, invalid_arguments
from .jmap.registry import Method, Registry
from .jmap.types import is_string
from .store.base import Store, Transaction
from .store.blobs import is_blob_id


@dataclass(frozen=True)
class BlobContent:
    """What a download serves: a file on disk, or bytes (a small blob kept in the database, or bytes
    computed from another blob)."""

    blob_id: str
    size: int
    path: Path | None = None
    data: bytes | None = None


Resolver = Callable[[Transaction, str], BlobContent | None]


class Blobs:
    def __init__(self, store: Store, upload_ttl: int) -> None:
        self.store = store
        self.upload_ttl = upload_ttl
        self.resolvers: dict[str, Resolver] = {}

    def register_resolver(self, prefix: str, resolver: Resolver) -> None:
        self.resolvers[prefix] = resolver

    def resolve(self, tx: Transaction, blob_id: str) -> BlobContent | None:
        """The content of a blob the account may read, or None (unknown or not theirs)."""
        if is_blob_id(blob_id):
            info = tx.blob(blob_id)
            if info is None:
                return None
            path = self.store.blobs.path(blob_id)
            if path.is_file():
                return BlobContent(blob_id, info.size, path=path)
            # A small blob kept in the database (store/blobs.py).
            data = self.store.blobs.read(blob_id)
            return BlobContent(blob_id, len(data), data=data) if data is not None else None
        resolver = self.resolvers.get(blob_id[:1])
        return resolver(tx, blob_id) if resolver else None

    def read(self, tx: Transaction, blob_id: str) -> bytes | None:
        content = self.resolve(tx, blob_id)
        if content is None:
            return None
        if content.data is not None:
            return content.data
        assert content.path is not None
        return content.path.read_bytes()

    def record_upload(self, account_id: str, blob_id: str, media_type: str, size: int) -> None:
        """Make an uploaded blob readable by the account until it expires (RFC 8620 §6.1)."""
        with self.store.write(account_id) as tx:
            tx.add_upload(blob_id, media_type, size, int(time.time()) + self.upload_ttl)

    def copy(self, ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        """Blob/copy (RFC 8620 §6.3)."""
        unknown = set(args) - {"fromAccountId", "accountId", "blobIds"}
        if unknown:
            raise invalid_arguments(f"Unknown arguments: {sorted(unknown)}.")
        try:
            from_account = ctx.lookup_account(args.get("fromAccountId"), CORE)
        except MethodError as error:
            if error.kind != "accountNotFound":
                raise
            # RFC 8620 §6.3: an unknown fromAccountId has its own error.
            raise MethodError("fromAccountNotFound", str(error)) from None
        blob_ids = args.get("blobIds")
        if not isinstance(blob_ids, list) or not all(is_string(b) for b in blob_ids):
            raise invalid_arguments("'blobIds' must be an array of ids.")
        found: dict[str, BlobContent] = {}
        with self.store.read(from_account.id) as tx:
            for blob_id in blob_ids:
                content = self.resolve(tx, blob_id)
                if content is not None:
                    found[blob_id] = content
        copied: dict[str, str] = {}
        not_copied: dict[str, Any] = {}
        with self.store.write(ctx.account_id) as tx:
            for blob_id in blob_ids:
                content = found.get(blob_id)
                if content is None:
                    not_copied[blob_id] = SetError("notFound", "No such blob in the from account.").to_json()
                    continue
                target = blob_id
                if content.data is not None and not is_blob_id(blob_id):
                    # A derived blob (a part of a message) becomes a blob of its own; a stored one,
                    # file or database row, is shared as it is (content-addressed, immutable).
                    target = self.store.blobs.put(content.data)
                tx.add_upload(target, "application/octet-stream", content.size, int(time.time()) + self.upload_ttl)
                copied[blob_id] = target
        return {
            "fromAccountId": from_account.id,
            "accountId": ctx.account_id,
            "copied": copied or None,
            "notCopied": not_copied or None,
        }


def register(registry: Registry, blobs: Blobs) -> None:
    registry.add(Method("Blob/copy", CORE, blobs.copy, writes=True))
