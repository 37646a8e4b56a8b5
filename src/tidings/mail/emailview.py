"""Email objects as JMAP sees them (RFC 8621 §4.1), built from stored rows without re-parsing.

Only bodyValues need the raw message: they are decoded from the stored blob on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ..jmap.errors import invalid_arguments
from ..jmap.types import format_utc
from ..mime import HeaderProperty, InvalidHeaderProperty, lookup_header, parse_header_property, truncate_utf8
from ..mime.parse import BodyValue, body_value_at
from ..store.base import EmailRow
from .ids import EMAIL, MAILBOX, THREAD, to_wire
from .parts import part_blob_id

METADATA = ("id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt")
CONVENIENCE = (
    "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt",
)
SUMMARY = (*CONVENIENCE, "hasAttachment", "preview")
BODY = ("bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments", "headers")
ALL_PROPERTIES = (*METADATA, *SUMMARY, *BODY)
# RFC 8621 §4.2: the default when `properties` is null.
DEFAULT_PROPERTIES = (
    "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "inReplyTo",
    "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
    "preview", "bodyValues", "textBody", "htmlBody", "attachments",
)
PART_PROPERTIES = (
    "partId", "blobId", "size", "headers", "name", "type", "charset", "disposition", "cid", "language",
    "location", "subParts",
)
DEFAULT_BODY_PROPERTIES = (
    "partId", "blobId", "size", "name", "type", "charset", "disposition", "cid", "language", "location",
)
NEEDS_STRUCTURE = frozenset({"bodyStructure", "textBody", "htmlBody", "attachments", "headers"})


def header_properties(properties: list[str], allowed: tuple[str, ...]) -> dict[str, HeaderProperty]:
    """Split `header:` properties out of a property list; anything else unknown is invalidArguments."""
    headers: dict[str, HeaderProperty] = {}
    for prop in properties:
        if prop in allowed:
            continue
        try:
            parsed = parse_header_property(prop)
        except InvalidHeaderProperty as exc:
            raise invalid_arguments(str(exc)) from None
        if parsed is None:
            raise invalid_arguments(f"Unknown property {prop!r}.")
        headers[prop] = parsed
    return headers


class BodyOptions:
    """The Email/get (and Email/parse) arguments that shape body output (RFC 8621 §4.2)."""

    def __init__(self, args: dict[str, Any]) -> None:
        body_properties = args.get("bodyProperties")
        if body_properties is None:
            body_properties = list(DEFAULT_BODY_PROPERTIES)
        if not isinstance(body_properties, list) or not all(isinstance(p, str) for p in body_properties):
            raise invalid_arguments("'bodyProperties' must be an array of strings.")
        self.part_headers = header_properties(body_properties, PART_PROPERTIES)
        self.part_properties = [p for p in body_properties if p in PART_PROPERTIES]
        self.fetch_text = _flag(args, "fetchTextBodyValues")
        self.fetch_html = _flag(args, "fetchHTMLBodyValues")
        self.fetch_all = _flag(args, "fetchAllBodyValues")
        max_bytes = args.get("maxBodyValueBytes", 0)
        if max_bytes is None:
            max_bytes = 0
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise invalid_arguments("'maxBodyValueBytes' must be an UnsignedInt.")
        self.max_bytes = max_bytes


def _flag(args: dict[str, Any], name: str) -> bool:
    value = args.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid_arguments(f"'{name}' must be a boolean.")
    return value


def part_view(part: dict[str, Any], blob_id: str, options: BodyOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prop in options.part_properties:
        if prop == "blobId":
            out["blobId"] = part_blob_id(blob_id, part["partId"]) if part.get("partId") is not None else None
        elif prop == "subParts":
            subs = part.get("subParts")
            out["subParts"] = [part_view(s, blob_id, options) for s in subs] if subs is not None else None
        else:
            out[prop] = part.get(prop)
    if options.part_headers:
        pairs = [(h["name"], h["value"]) for h in part.get("headers") or ()]
        for prop, header in options.part_headers.items():
            out[prop] = lookup_header(pairs, header)
    return out


def _index(part: dict[str, Any], index: dict[str, dict[str, Any]]) -> None:
    if part.get("partId") is not None:
        index[part["partId"]] = part
    for sub in part.get("subParts") or ():
        _index(sub, index)


class BodyValueSource(Protocol):
    """What bodyValues are decoded from: a ParsedMessage, `Bodies` (only the decoded text parts), or
    `RangedBodies` (text parts decoded one by one, when asked for, from their stored ranges)."""

    @property
    def body_values(self) -> Mapping[str, BodyValue]: ...


@dataclass(frozen=True)
class Bodies:
    body_values: dict[str, BodyValue]


class _RangedValues(Mapping[str, BodyValue]):
    """partId -> EmailBodyValue, each decoded from its slice of the message the first time it is read."""

    def __init__(self, raw: bytes, ranges: dict[str, list[Any]]) -> None:
        self._raw = raw
        self._ranges = ranges
        self._decoded: dict[str, BodyValue] = {}

    def __getitem__(self, part_id: str) -> BodyValue:
        value = self._decoded.get(part_id)
        if value is None:
            value = self._decoded[part_id] = body_value_at(self._raw, self._ranges[part_id])
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._ranges)

    def __len__(self) -> int:
        return len(self._ranges)


class RangedBodies:
    """The body values of a stored message whose text parts' octet ranges were recorded at ingest
    (the structure document's `textRanges`): the same values as a full parse gives."""

    def __init__(self, raw: bytes, ranges: dict[str, list[Any]]) -> None:
        self.body_values: Mapping[str, BodyValue] = _RangedValues(raw, ranges)


def body_values(
    parsed: BodyValueSource, structure: dict[str, Any], options: BodyOptions
) -> dict[str, dict[str, Any]]:
    """bodyValues per the fetch*BodyValues flags and maxBodyValueBytes (RFC 8621 §4.1.4, §4.2)."""
    wanted: list[str] = []
    if options.fetch_all:
        wanted.extend(parsed.body_values)
    else:
        if options.fetch_text:
            wanted.extend(structure["textBody"])
        if options.fetch_html:
            wanted.extend(structure["htmlBody"])
    out: dict[str, dict[str, Any]] = {}
    index: dict[str, dict[str, Any]] = {}
    _index(structure["bodyStructure"], index)
    for part_id in wanted:
        value = parsed.body_values.get(part_id)
        if value is None or part_id in out:
            continue
        text, truncated = value.value, False
        if options.max_bytes:
            is_html = (index.get(part_id) or {}).get("type") == "text/html"
            text, truncated = truncate_utf8(text, options.max_bytes, html=is_html)
        out[part_id] = {"value": text, "isEncodingProblem": value.is_encoding_problem, "isTruncated": truncated}
    return out


def email_view(
    row: EmailRow | None,
    blob_id: str,
    size: int,
    summary: dict[str, Any],
    structure: dict[str, Any] | None,
    properties: list[str],
    headers: dict[str, HeaderProperty],
    options: BodyOptions,
    parse: Callable[[], BodyValueSource | None],
) -> dict[str, Any]:
    """One Email object with the requested properties; `row` is None for Email/parse."""
    out: dict[str, Any] = {}
    for prop in properties:
        if prop == "id":
            out["id"] = to_wire(EMAIL, row.id) if row else None
        elif prop == "blobId":
            out["blobId"] = blob_id
        elif prop == "threadId":
            out["threadId"] = to_wire(THREAD, row.thread_id) if row else None
        elif prop == "mailboxIds":
            out["mailboxIds"] = {to_wire(MAILBOX, m): True for m in sorted(row.mailbox_ids)} if row else None
        elif prop == "keywords":
            out["keywords"] = {k: True for k in sorted(row.keywords)} if row else None
        elif prop == "size":
            out["size"] = size
        elif prop == "receivedAt":
            out["receivedAt"] = format_utc(row.received_at) if row else None
        elif prop in SUMMARY:
            out[prop] = summary.get(prop)
        elif prop == "headers":
            assert structure is not None
            out["headers"] = [{"name": n, "value": v} for n, v in structure["headers"]]
        elif prop == "bodyStructure":
            assert structure is not None
            out["bodyStructure"] = part_view(structure["bodyStructure"], blob_id, options)
        elif prop in ("textBody", "htmlBody", "attachments"):
            assert structure is not None
            index: dict[str, dict[str, Any]] = {}
            _index(structure["bodyStructure"], index)
            out[prop] = [part_view(index[p], blob_id, options) for p in structure[prop] if p in index]
        elif prop == "bodyValues":
            assert structure is not None
            if options.fetch_all or options.fetch_text or options.fetch_html:
                parsed = parse()
                out["bodyValues"] = body_values(parsed, structure, options) if parsed else {}
            else:
                out["bodyValues"] = {}
    if headers:
        assert structure is not None
        pairs = [(n, v) for n, v in structure["headers"]]
        for prop, header in headers.items():
            out[prop] = lookup_header(pairs, header)
    return out


def load_documents(row: EmailRow) -> tuple[dict[str, Any], dict[str, Any] | None]:
    summary = orjson.loads(row.summary)
    structure = orjson.loads(row.structure) if row.structure else None
    return summary, structure
