"""The MIME tree of a message as JMAP EmailBodyParts, RFC 8621 §4.1.4.

Theory of operation
-------------------
The standard library's feed parser builds the MIME tree. Three adjustments make it fit
JMAP and hostile input:

* a policy that keeps every header value exactly as it was after the colon (folding and
  the leading space kept), as the Raw form needs (RFC 8621 §4.1.2.1);
* every ``message/*`` entity is a leaf: JMAP does not descend into attached messages
  (RFC 8621 §4.1.4 bodyStructure), and the leaf keeps the attached message's exact bytes;
* multiparts nested deeper than :data:`MAX_DEPTH` are leaves, so hostile nesting costs
  neither stack nor time.

:func:`walk` then turns the tree into :class:`Part` nodes with IMAP-like partIds ("1",
"2", "2.1", ...; multipart containers have none), and :func:`classify` ports the
textBody/htmlBody/attachments algorithm of RFC 8621 §4.1.4.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.feedparser import BytesFeedParser
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from typing import Any

from tidings.mime.decode import decode_header_bytes, parse_parameters
from tidings.mime.headers import unfold

__all__ = ["MAX_DEPTH", "Part", "classify", "decode_transfer", "parse_tree", "walk"]

MAX_DEPTH = 32
"""Multipart nesting below this depth is not split further (the part becomes a leaf)."""

_DEFAULT_DEPTH_ATTR = "tidings_depth"


class _RawPolicy(Compat32):
    """compat32, but header values are kept byte for byte (RFC 8621 §4.1.2.1 Raw)."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = sourcelines[0].split(":", 1)
        if len(sourcelines) > 1:
            value += "".join(sourcelines[1:])
        return name, value.rstrip("\r\n")

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_POLICY = _RawPolicy()


class _ParseMessage(Message):
    """A Message that hides ``message/*`` and over-deep multiparts from the feed parser."""

    tidings_depth = 0

    def get_content_type(self) -> str:
        ctype = super().get_content_type()
        if ctype.startswith("message/") or (
            ctype.startswith("multipart/") and self.tidings_depth >= MAX_DEPTH
        ):
            return "application/octet-stream"
        return ctype


class _Parser(BytesFeedParser):
    def _new_message(self) -> None:
        super()._new_message()  # type: ignore[misc]
        stack = getattr(self, "_msgstack", ())
        if stack:
            stack[-1].tidings_depth = len(stack) - 1


# RFC 5322 §4.5 obs-optional: white space allowed between a field name and its colon.
_OBS_FIELD_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:", re.MULTILINE)
_FIELD_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t]|From ")


def _fix_obsolete_field_names(raw: bytes) -> bytes:
    """Drop white space before the colon in the top-level header fields, which the feed
    parser would otherwise take for the start of the body. Values are left untouched."""
    # Only the header can hold field names: look no further than its end, the first empty line.
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if i >= 0]
    header_end = min(ends) + 1 if ends else len(raw)
    if not _OBS_FIELD_NAME.search(raw, 0, min(header_end, 64 * 1024)):
        return raw
    lines = raw.splitlines(keepends=True)
    changed = False
    for i, line in enumerate(lines):
        if not _FIELD_LINE.match(line):
            break  # the end of the header, as the parser will see it
        fixed = _OBS_FIELD_NAME.match(line)
        if fixed:
            lines[i] = fixed.group(1) + b":" + line[fixed.end():]
            changed = True
    return b"".join(lines) if changed else raw


def parse_tree(raw: bytes) -> Message:
    """The stdlib MIME tree of ``raw``. Never raises: on parser failure, headers only."""
    raw = _fix_obsolete_field_names(raw)
    try:
        parser = _Parser(_ParseMessage, policy=_POLICY)
        parser.feed(raw)
        return parser.close()
    except Exception:  # RecursionError, or any parser bug on hostile input
        try:
            return BytesParser(_ParseMessage, policy=_POLICY).parsebytes(raw, headersonly=True)
        except Exception:
            msg = _ParseMessage(policy=_POLICY)
            msg.set_payload(raw.decode("ascii", "surrogateescape"))
            return msg


# --- content transfer encodings (RFC 2045 §6) -------------------------------------------------

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_DELETE = bytes(b for b in range(256) if b not in _B64_ALPHABET)
_IDENTITY = frozenset({"", "7bit", "8bit", "binary", "7-bit", "8-bit", "7bits", "8bits"})


def normalise_cte(value: str | None) -> str:
    if value is None:
        return ""
    text = unfold(value).strip().strip(";").strip().strip('"').lower()
    return re.split(r"[\s;(]", text, maxsplit=1)[0] if text else ""


def cte_known(cte: str) -> bool:
    return cte in _IDENTITY or cte in ("base64", "quoted-printable")


def _b64_clean(body: bytes) -> bytes:
    cleaned = body.translate(None, _B64_DELETE)
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]  # a lone trailing sextet carries no whole octet
    return cleaned


def b64_decoded_size(body: bytes) -> int:
    """Exact decoded size of a lenient base64 body without decoding it."""
    n = len(_b64_clean(body))
    return (n // 4) * 3 + (0, 0, 1, 2)[n % 4]


def decode_transfer(body: bytes, cte: str) -> bytes:
    """Undo a Content-Transfer-Encoding; unknown encodings are identity (RFC 8621 §4.1.4)."""
    if cte == "base64":
        cleaned = _b64_clean(body)
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            return binascii.a2b_base64(cleaned)
        except binascii.Error:  # pragma: no cover - cleaned input is always valid
            return b""
    if cte == "quoted-printable":
        return binascii.a2b_qp(body)
    return body


# --- the tree ---------------------------------------------------------------------------------

_TYPE_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+$")


@dataclass(slots=True, eq=False)
class Part:
    """One EmailBodyPart (RFC 8621 §4.1.4), plus what is needed to decode it."""

    part_id: str | None
    type: str
    charset: str | None
    disposition: str | None
    name: str | None
    cid: str | None
    language: list[str] | None
    location: str | None
    headers: list[tuple[str, str]]
    sub_parts: list[Part] | None
    body: bytes = b""
    cte: str = ""
    size: int = 0
    decoded: bytes | None = field(default=None, repr=False)

    def content(self) -> bytes:
        """The body after transfer decoding (cached)."""
        if self.decoded is None:
            self.decoded = decode_transfer(self.body, self.cte)
        return self.decoded

    def to_json(self) -> dict[str, Any]:
        """The EmailBodyPart as JSON-able dict, without ``blobId`` (the caller adds it)."""
        return {
            "partId": self.part_id,
            "size": self.size,
            "headers": [{"name": n, "value": v} for n, v in self.headers],
            "name": self.name,
            "type": self.type,
            "charset": self.charset,
            "disposition": self.disposition,
            "cid": self.cid,
            "language": self.language,
            "location": self.location,
            "subParts": None if self.sub_parts is None else [p.to_json() for p in self.sub_parts],
        }

    def leaves(self) -> Iterator[Part]:
        if self.sub_parts is None:
            yield self
            return
        for sub in self.sub_parts:
            yield from sub.leaves()


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    for field_name, value in headers:
        if field_name.lower() == name:
            return value
    return None


def _cid(value: str | None) -> str | None:
    """RFC 8621 §4.1.4 cid: CFWS and surrounding angle brackets removed."""
    if value is None:
        return None
    text = re.sub(r"\([^()]*\)", "", unfold(value)).strip()
    if text.startswith("<"):
        end = text.find(">")
        text = text[1:end] if end > 0 else text[1:]
    text = text.strip()
    return text or None


def _language(value: str | None) -> list[str] | None:
    """RFC 8621 §4.1.4 language: the RFC 3282 language tags of Content-Language."""
    if value is None:
        return None
    text = re.sub(r"\([^()]*\)", "", unfold(value))
    tags = [tag.strip() for tag in text.split(",") if tag.strip()]
    return tags or None


def _location(value: str | None) -> str | None:
    """RFC 8621 §4.1.4 location: the Content-Location URI (RFC 2557 §4.2, folding removed)."""
    if value is None:
        return None
    text = re.sub(r"\s+", "", unfold(value)).strip('"')
    return text or None


def walk(msg: Message, *, parent_type: str = "", path: str = "", depth: int = 0) -> Part:
    """Turn a stdlib MIME tree into :class:`Part` nodes (RFC 8621 §4.1.4)."""
    headers = [(decode_header_bytes(n).rstrip(" \t"), decode_header_bytes(v)) for n, v in msg.raw_items()]
    raw_ctype = _first(headers, "content-type")
    params: dict[str, str] = {}
    if raw_ctype is None:
        # RFC 2046 §5.1.5: the default in a multipart/digest is message/rfc822.
        ctype = "message/rfc822" if parent_type == "multipart/digest" else "text/plain"
    else:
        head, params = parse_parameters(unfold(raw_ctype))
        ctype = re.sub(r"\s+", "", head).lower()
        if not _TYPE_RE.match(ctype):
            ctype = "text/plain"  # RFC 2045 §5.2: invalid Content-Type means the default
    # The stored payload, not get_payload(): that would decode 8-bit text by its charset.
    payload = getattr(msg, "_payload", None)
    raw_disp = _first(headers, "content-disposition")
    disposition: str | None = None
    disp_params: dict[str, str] = {}
    if raw_disp is not None:
        head, disp_params = parse_parameters(unfold(raw_disp))
        disposition = head.lower() or None
    name = (disp_params.get("filename") or params.get("name") or "").strip() or None
    charset = params.get("charset") or None
    if charset is None and (ctype.startswith("text/") or raw_ctype is None):
        charset = "us-ascii"  # RFC 2045 §5.2 implicit charset
    part = Part(
        part_id=None,
        type=ctype,
        charset=charset,
        disposition=disposition,
        name=name,
        cid=_cid(_first(headers, "content-id")),
        language=_language(_first(headers, "content-language")),
        location=_location(_first(headers, "content-location")),
        headers=headers,
        sub_parts=None,
    )
    if isinstance(payload, list):
        if not ctype.startswith("multipart/"):
            part.type = "multipart/mixed"
        part.charset = params.get("charset") or None
        part.sub_parts = [
            walk(child, parent_type=part.type, path=f"{path}.{i}" if path else str(i), depth=depth + 1)
            for i, child in enumerate(payload, start=1)
            if isinstance(child, Message)
        ]
        return part
    if ctype.startswith("multipart/"):
        # A multipart we did not split: no boundary or none found (read it as text, as
        # mail clients do), or nested too deep (keep it downloadable as octets).
        part.type = "application/octet-stream" if depth >= MAX_DEPTH else "text/plain"
        part.charset = None if depth >= MAX_DEPTH else (params.get("charset") or "us-ascii")
    part.part_id = path or "1"
    text = payload if isinstance(payload, str) else ""
    part.body = text.encode("ascii", "surrogateescape") if not text.isascii() else text.encode("ascii")
    part.cte = normalise_cte(_first(headers, "content-transfer-encoding"))
    if part.cte == "base64":
        part.size = b64_decoded_size(part.body)
    elif part.cte == "quoted-printable":
        part.size = len(part.content())
    else:
        part.size = len(part.body)
    return part


def find_part(root: Part, part_id: str) -> Part | None:
    for leaf in root.leaves():
        if leaf.part_id == part_id:
            return leaf
    return None


# --- RFC 8621 §4.1.4 textBody / htmlBody / attachments -----------------------------------------


def _is_inline_media_type(ctype: str) -> bool:
    return ctype.startswith(("image/", "audio/", "video/"))


def classify(root: Part) -> tuple[list[Part], list[Part], list[Part]]:
    """``(text_body, html_body, attachments)`` by the algorithm of RFC 8621 §4.1.4.

    A faithful port of the specification's ``parseStructure`` pseudocode. JavaScript's
    "truthy array" tests become ``is not None`` tests: an empty list still counts.
    """
    text_body: list[Part] = []
    html_body: list[Part] = []
    attachments: list[Part] = []
    _parse_structure([root], "mixed", False, html_body, text_body, attachments)
    return text_body, html_body, attachments


def _parse_structure(
    parts: list[Part],
    multipart_type: str,
    in_alternative: bool,
    html_body: list[Part] | None,
    text_body: list[Part] | None,
    attachments: list[Part],
) -> None:
    # For multipart_type == "alternative"
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1

    for i, part in enumerate(parts):
        is_multipart = part.type.startswith("multipart/")
        # Is this a body part rather than an attachment
        is_inline = (
            part.disposition != "attachment"
            # Must be one of the allowed body types
            and (part.type in ("text/plain", "text/html") or _is_inline_media_type(part.type))
            # If multipart/related, only the first part can be inline
            # If a text part with a filename, and not the first item
            # in the multipart, assume it is an attachment
            and (i == 0 or (multipart_type != "related" and (_is_inline_media_type(part.type) or not part.name)))
        )
        if is_multipart:
            sub_multi_type = part.type.split("/", 1)[1]
            _parse_structure(
                part.sub_parts or [],
                sub_multi_type,
                in_alternative or sub_multi_type == "alternative",
                html_body,
                text_body,
                attachments,
            )
        elif is_inline:
            if multipart_type == "alternative":
                # The pseudocode assumes both lists exist here; an alternative nested
                # below a part that already chose one view has only that view's list.
                if part.type == "text/plain":
                    if text_body is not None:
                        text_body.append(part)
                elif part.type == "text/html":
                    if html_body is not None:
                        html_body.append(part)
                else:
                    attachments.append(part)
                continue
            elif in_alternative:
                if part.type == "text/plain":
                    html_body = None
                if part.type == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and _is_inline_media_type(part.type):
                attachments.append(part)
        else:
            attachments.append(part)

    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        # Found HTML part only
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])
        # Found plaintext part only
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])
