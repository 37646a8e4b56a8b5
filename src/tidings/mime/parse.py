"""Parse a message into the values of a JMAP Email (RFC 8621 §4.1): bytes in, values out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tidings.mime.decode import decode_bytes
from tidings.mime.headers import (
    EmailAddress,
    HeaderProperty,
    as_addresses,
    as_date,
    as_message_ids,
    as_text,
    header_values,
    lookup_header,
)
from tidings.mime.html import html_to_text
from tidings.mime.structure import Part, classify, cte_known, decode_transfer, find_part, parse_tree, walk

__all__ = [
    "PREVIEW_LENGTH",
    "BodyValue",
    "ExtractedPart",
    "ParsedMessage",
    "SearchText",
    "TextRange",
    "body_value_at",
    "extract_part",
    "parse_message",
    "truncate_utf8",
]

PREVIEW_LENGTH = 256
"""RFC 8621 §4.1.4 preview: MUST NOT be more than 256 characters."""

TextRange = tuple[int, int, str, str | None]
"""Where a text part's body lies in the raw message: [start, end) octets, its transfer encoding and
charset. `body_value_at` turns it into the part's EmailBodyValue."""


@dataclass(frozen=True, slots=True)
class BodyValue:
    """RFC 8621 §4.1.4 EmailBodyValue, before any truncation."""

    value: str
    is_encoding_problem: bool = False

    def to_json(self, max_bytes: int = 0, *, html: bool = False) -> dict[str, Any]:
        """The wire EmailBodyValue, truncated to ``max_bytes`` octets when > 0 (§4.2)."""
        value, truncated = truncate_utf8(self.value, max_bytes, html=html) if max_bytes > 0 else (self.value,
                                                                                              False)
        return {"value": value, "isEncodingProblem": self.is_encoding_problem, "isTruncated": truncated}


@dataclass(frozen=True, slots=True)
class ExtractedPart:
    """The decoded content of one leaf part, e.g. to serve its blobId."""

    part_id: str
    data: bytes
    type: str
    name: str | None
    charset: str | None
    disposition: str | None


@dataclass(frozen=True, slots=True)
class SearchText:
    """Plain text of a message for full-text indexing."""

    subject: str
    from_: str
    to: str
    cc: str
    bcc: str
    body: str
    """Text of the textBody parts (HTML converted to text)."""
    attachment_names: tuple[str, ...]
    attachment_text: str
    """Text of text/* parts that are neither in textBody nor htmlBody."""


@dataclass(frozen=True)
class ParsedMessage:
    """Everything RFC 8621 derives from a message's octets.

    ``body_structure`` is the EmailBodyPart tree as JSON-able dicts (camelCase keys, no
    ``blobId``: the caller derives it from its own blob id and the ``partId``). Multipart
    containers have ``partId`` null and ``size`` 0. ``text_body``, ``html_body`` and
    ``attachments`` hold partIds.

    ``has_attachment`` is true when ``attachments`` holds a part that is not an embedded
    image: a part with a Content-ID that an HTML body part references by a ``cid:`` URL,
    and whose disposition is not ``attachment``, is not counted (RFC 8621 §4.1.4 allows
    ignoring "parts ... referenced as embedded images in one of the text/html parts").
    """

    size: int
    headers: list[tuple[str, str]]
    body_structure: dict[str, Any]
    text_body: list[str]
    html_body: list[str]
    attachments: list[str]
    has_attachment: bool
    preview: str
    body_values: dict[str, BodyValue]
    message_id: list[str] | None
    in_reply_to: list[str] | None
    references: list[str] | None
    subject: str | None
    sent_at: str | None
    from_: list[EmailAddress] | None
    sender: list[EmailAddress] | None
    to: list[EmailAddress] | None
    cc: list[EmailAddress] | None
    bcc: list[EmailAddress] | None
    reply_to: list[EmailAddress] | None
    parts: dict[str, dict[str, Any]] = field(repr=False, compare=False)
    """partId -> the body part dict inside ``body_structure``."""
    text_ranges: dict[str, TextRange] | None = field(default=None, repr=False, compare=False)
    """partId -> where each text/* leaf's body lies in the message (None: not all could be placed)."""

    def header(self, prop: HeaderProperty) -> Any:
        """The value of a top-level ``header:`` property (RFC 8621 §4.1.3)."""
        return lookup_header(self.headers, prop)

    def part(self, part_id: str) -> dict[str, Any] | None:
        return self.parts.get(part_id)

    def body_value_json(self, part_id: str, max_bytes: int = 0) -> dict[str, Any] | None:
        """The wire EmailBodyValue of a text part, truncated per maxBodyValueBytes."""
        value = self.body_values.get(part_id)
        if value is None:
            return None
        part = self.parts.get(part_id)
        return value.to_json(max_bytes, html=part is not None and part["type"] == "text/html")

    def search_text(self) -> SearchText:
        """Plain text for full-text indexing (computed on each call)."""
        in_body = set(self.text_body) | set(self.html_body)
        body = [self._plain(pid) for pid in self.text_body if pid in self.body_values]
        extra = [self._plain(pid) for pid in self.attachments if pid in self.body_values and pid not in in_body]
        names = tuple(p["name"] for pid in self.attachments if (p := self.parts.get(pid)) and p["name"])
        return SearchText(
            subject=self.subject or "",
            from_=_addresses_text(self.from_),
            to=_addresses_text(self.to),
            cc=_addresses_text(self.cc),
            bcc=_addresses_text(self.bcc),
            body="\n".join(t for t in body if t),
            attachment_names=names,
            attachment_text="\n".join(t for t in extra if t),
        )

    def _plain(self, part_id: str) -> str:
        value = self.body_values[part_id].value
        part = self.parts.get(part_id)
        return html_to_text(value) if part is not None and part["type"] == "text/html" else value


def _addresses_text(addresses: list[EmailAddress] | None) -> str:
    if not addresses:
        return ""
    return ", ".join(f"{a['name']} <{a['email']}>" if a["name"] else a["email"] for a in addresses)


def truncate_utf8(text: str, max_bytes: int, *, html: bool = False) -> tuple[str, bool]:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 octets; returns ``(text, truncated)``.

    RFC 8621 §4.2 maxBodyValueBytes: never mid code point; for HTML, never inside a tag
    (an unclosed ``<...`` at the cut is dropped). ``max_bytes <= 0`` means no limit.
    """
    if max_bytes <= 0:
        return text, False
    if len(text) * 4 <= max_bytes:
        return text, False
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return text, False
    cut = data[:max_bytes].decode("utf-8", "ignore")  # drops only a partial final sequence
    if html:
        lt = cut.rfind("<")
        if lt > cut.rfind(">"):
            cut = cut[:lt]
    return cut, True


# --- parsing ----------------------------------------------------------------------------------


def _last(headers: list[tuple[str, str]], name: str) -> str | None:
    values = header_values(headers, name)
    return values[-1] if values else None


def _body_value(part: Part) -> BodyValue:
    return _decoded_value(part.content(), part.cte, part.charset)


def _decoded_value(content: bytes, cte: str, charset: str | None) -> BodyValue:
    # RFC 8621 §4.1.4 EmailBodyValue: CTE and charset decoded, CRLF -> LF.
    text, problem = decode_bytes(content, charset)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return BodyValue(text, problem or not cte_known(cte))


def _text_ranges(raw: bytes, root: Part) -> dict[str, TextRange] | None:
    """Where the body of every text/* leaf lies in `raw`, or None if one cannot be placed.

    Stored at ingest, these let Email/get decode a body value from a slice of the message instead
    of parsing the whole message again, attachments included, as Cyrus's cache file does. The
    slice is found by searching for the part's body itself, so it is equal to what the parser
    read by construction (a body that occurs twice is the same bytes wherever it is taken from).
    """
    ranges: dict[str, TextRange] = {}
    cursor = 0
    for leaf in root.leaves():
        if leaf.part_id is None or not leaf.type.startswith("text/"):
            continue
        body = leaf.body
        if not body:
            ranges[leaf.part_id] = (0, 0, leaf.cte, leaf.charset)
            continue
        start = raw.find(body, cursor)
        if start < 0:
            start = raw.find(body)
            if start < 0:  # a body the parser rebuilt (not the case today): parse at read time
                return None
        cursor = start + len(body)
        ranges[leaf.part_id] = (start, cursor, leaf.cte, leaf.charset)
    return ranges


def body_value_at(raw: bytes, text_range: TextRange | list[Any]) -> BodyValue:
    """The EmailBodyValue of a text part from its stored range (see `_text_ranges`): the same value
    a full parse gives, from a slice of the message."""
    start, end, cte, charset = text_range
    return _decoded_value(decode_transfer(raw[start:end], cte), cte, charset)


_CID_URL = re.compile(r"""cid:([^\s"'<>)]+)""", re.IGNORECASE)
_SPACE_RUN = re.compile(r"\s+")


def _preview(text_body: list[Part], html_body: list[Part], values: dict[str, BodyValue]) -> str:
    """RFC 8621 §4.1.4 preview: first text/plain of textBody, else HTML as text."""
    text = ""
    for part in text_body:
        if part.type == "text/plain" and part.part_id in values:
            text = _readable(values[part.part_id].value[: PREVIEW_LENGTH * 32])
            if text:
                break
    if not text:
        for part in html_body or text_body:
            if part.type == "text/html" and part.part_id in values:
                text = _readable(html_to_text(values[part.part_id].value, limit=PREVIEW_LENGTH * 4))
                if text:
                    break
    return text[:PREVIEW_LENGTH].rstrip()


def _readable(text: str) -> str:
    """Drop quoted lines (``>``) when something else is left, then collapse white space."""
    lines = text.split("\n")
    kept = [line for line in lines if not line.lstrip().startswith(">")]
    chosen = kept if any(line.strip() for line in kept) else lines
    return _SPACE_RUN.sub(" ", " ".join(chosen)).strip()


def _has_attachment(attachments: list[Part], html_body: list[Part], values: dict[str, BodyValue]) -> bool:
    if not attachments:
        return False
    referenced: set[str] = set()
    for part in html_body:
        if part.type == "text/html" and part.part_id in values:
            for m in _CID_URL.finditer(values[part.part_id].value):
                referenced.add(unquote(m.group(1)).lower())
    return any(
        part.cid is None or part.disposition == "attachment" or part.cid.lower() not in referenced
        for part in attachments
    )


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse ``raw`` (RFC 5322/MIME/RFC 6532). Never raises; broken input is parsed best effort."""
    root = walk(parse_tree(raw))
    text_parts, html_parts, attachment_parts = classify(root)
    values = {leaf.part_id: _body_value(leaf) for leaf in root.leaves()
              if leaf.type.startswith("text/") and leaf.part_id is not None}
    text_ranges = _text_ranges(raw, root)
    structure = root.to_json()
    index: dict[str, dict[str, Any]] = {}
    _index(structure, index)
    headers = root.headers

    def addresses(name: str) -> list[EmailAddress] | None:
        value = _last(headers, name)
        return None if value is None else as_addresses(value)

    def ids(name: str) -> list[str] | None:
        value = _last(headers, name)
        return None if value is None else as_message_ids(value)

    subject = _last(headers, "subject")
    date = _last(headers, "date")
    return ParsedMessage(
        size=len(raw),
        headers=headers,
        body_structure=structure,
        text_body=[p.part_id for p in text_parts if p.part_id is not None],
        html_body=[p.part_id for p in html_parts if p.part_id is not None],
        attachments=[p.part_id for p in attachment_parts if p.part_id is not None],
        has_attachment=_has_attachment(attachment_parts, html_parts, values),
        preview=_preview(text_parts, html_parts, values),
        body_values=values,
        message_id=ids("message-id"),
        in_reply_to=ids("in-reply-to"),
        references=ids("references"),
        subject=None if subject is None else as_text(subject),
        sent_at=None if date is None else as_date(date),
        from_=addresses("from"),
        sender=addresses("sender"),
        to=addresses("to"),
        cc=addresses("cc"),
        bcc=addresses("bcc"),
        reply_to=addresses("reply-to"),
        parts=index,
        text_ranges=text_ranges,
    )


def decode_body_values(raw: bytes) -> dict[str, BodyValue]:
    """The ``body_values`` of :func:`parse_message` alone: every text/* leaf decoded the same way,
    without the rest of a full parse (Email/get's fetch*BodyValues needs nothing else)."""
    root = walk(parse_tree(raw))
    return {leaf.part_id: _body_value(leaf) for leaf in root.leaves()
            if leaf.type.startswith("text/") and leaf.part_id is not None}


def _index(part: dict[str, Any], index: dict[str, dict[str, Any]]) -> None:
    if part["partId"] is not None:
        index[part["partId"]] = part
    for sub in part["subParts"] or ():
        _index(sub, index)


def extract_part(raw: bytes, part_id: str) -> ExtractedPart | None:
    """The decoded content of the leaf part ``part_id`` of ``raw``, or None if there is none.

    Uses the same tree walk as :func:`parse_message`, so sizes and partIds agree.
    """
    part = find_part(walk(parse_tree(raw)), part_id)
    if part is None or part.part_id is None:
        return None
    return ExtractedPart(
        part_id=part.part_id,
        data=part.content(),
        type=part.type,
        name=part.name,
        charset=part.charset,
        disposition=part.disposition,
    )
