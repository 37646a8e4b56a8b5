"""Blob ids for body parts: an attachment is downloadable without being stored twice.

A part's blobId is "P" + the hex digest of the message blob + "-" + its partId, with "." written as
"_" (JMAP ids allow only A-Za-z0-9_-). A part of a message attached inside another message appends
another "-partId", so Email/parse of an attached message gives parts that download too. Reading
one checks that the account may read the outer message blob, then decodes the part.
"""

from __future__ import annotations

from ..blob import BlobContent, Blobs
from ..mime import extract_part
from ..store.base import Transaction
from ..store.blobs import is_blob_id

PREFIX = "P"


def part_blob_id(container_blob_id: str, part_id: str) -> str:
    encoded = part_id.replace(".", "_")
    if container_blob_id.startswith("B"):
        return f"{PREFIX}{container_blob_id[1:]}-{encoded}"
    return f"{container_blob_id}-{encoded}"


def split(blob_id: str) -> tuple[str, list[str]] | None:
    """("B<hex>", [partId, ...]) for a part blob id, or None when it is not one."""
    if not blob_id.startswith(PREFIX):
        return None
    hex_digest, *parts = blob_id[1:].split("-")
    container = "B" + hex_digest
    if not parts or not is_blob_id(container) or not all(parts):
        return None
    return container, [p.replace("_", ".") for p in parts]


def install(blobs: Blobs) -> None:
    def resolve(tx: Transaction, blob_id: str) -> BlobContent | None:
        found = split(blob_id)
        if found is None:
            return None
        container, part_ids = found
        data = blobs.read(tx, container)
        for part_id in part_ids:
            if data is None:
                return None
            part = extract_part(data, part_id)
            data = part.data if part is not None else None
        if data is None:
            return None
        return BlobContent(blob_id, len(data), data=data)

    blobs.register_resolver(PREFIX, resolve)
