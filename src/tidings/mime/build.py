"""Compose a MIME message from Email/set create properties (RFC 8621 §4.6).

:func:`build_message` validates the creation constraints of RFC 8621 §4.6, then writes
CRLF-terminated octets: headers in ASCII (RFC 2047 encoded-words for non-ASCII text and
display-names, RFC 2231 for non-ASCII parameters; addresses and Raw values may carry
UTF-8 per RFC 6532), bodies in 7bit, quoted-printable or base64.

Errors name the offending properties as paths from the Email object, e.g. ``from``,
``header:X-Foo:asText``, ``bodyStructure/subParts/1/type``, ``textBody/0/charset``,
``bodyValues/3``, so the caller can return an ``invalidProperties`` SetError.
"""

from __future__ import annotations

import binascii
import re
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from tidings.mime.decode import parse_parameters
from tidings.mime.headers import HeaderProperty, InvalidHeaderProperty, parse_header_property

__all__ = ["BlobNotFound", "BuildError", "FetchBlob", "build_message"]

FetchBlob = Callable[[str], "bytes | None"]
"""Returns the octets of a blob, or None when the blob does not exist."""

_CRLF = "\r\n"
_LINE = 78  # RFC 5322 §2.1.1 SHOULD limit


class BuildError(ValueError):
    """The Email cannot be created as given: an ``invalidProperties`` SetError."""

    def __init__(self, properties: list[str], description: str) -> None:
        super().__init__(description)
        self.properties = properties
        self.description = description


class BlobNotFound(LookupError):
    """Blob ids referenced by body parts do not exist: a ``blobNotFound`` SetError."""

    def __init__(self, blob_ids: list[str]) -> None:
        super().__init__(f"blobs not found: {', '.join(blob_ids)}")
        self.blob_ids = blob_ids


# Convenience properties (RFC 8621 §4.1.3) -> (header field, parsed form).
_CONVENIENCE: dict[str, tuple[str, str]] = {
    "from": ("From", "Addresses"),
    "sender": ("Sender", "Addresses"),
    "replyTo": ("Reply-To", "Addresses"),
    "to": ("To", "Addresses"),
    "cc": ("Cc", "Addresses"),
    "bcc": ("Bcc", "Addresses"),
    "subject": ("Subject", "Text"),
    "sentAt": ("Date", "Date"),
    "messageId": ("Message-ID", "MessageIds"),
    "inReplyTo": ("In-Reply-To", "MessageIds"),
    "references": ("References", "MessageIds"),
}

# EmailBodyPart properties that stand for a header field (RFC 8621 §4.1.4).
_PART_FIELDS: dict[str, str] = {
    "type": "content-type",
    "charset": "content-type",
    "name": "content-disposition",
    "disposition": "content-disposition",
    "cid": "content-id",
    "language": "content-language",
    "location": "content-location",
}
_PART_KEYS = frozenset({"partId", "blobId", "size", "subParts", "headers", *_PART_FIELDS})


# --- header rendering ---------------------------------------------------------------------------

_ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+$")
_Q_PHRASE_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_BAD_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _check_text(value: Any, prop: str) -> str:
    if not isinstance(value, str):
        raise BuildError([prop], "expected a string")
    if _BAD_CHARS.search(value):
        raise BuildError([prop], "control characters are not allowed")
    return value


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 encoded-words of at most 75 characters, never splitting a character.

    Q encoding restricted to the characters allowed in a phrase (RFC 2047 §5 (3)), so
    the words are valid in Subject and in display-names alike.
    """
    data = text.encode("utf-8")
    non_ascii = sum(1 for b in data if b >= 0x80)
    use_b = non_ascii * 3 > len(data)
    words: list[str] = []
    payload: list[str] = []
    size = 0
    limit = 45 if use_b else 63  # 45 octets -> 60 base64 chars; 10 + 63 + 2 = 75
    chunk = bytearray()
    for char in text:
        octets = char.encode("utf-8")
        if use_b:
            if len(chunk) + len(octets) > limit:
                words.append("=?UTF-8?B?" + binascii.b2a_base64(bytes(chunk), newline=False).decode() + "?=")
                chunk.clear()
            chunk.extend(octets)
            continue
        piece = "".join(
            "_" if b == 0x20 else chr(b) if b in _Q_PHRASE_SAFE else f"={b:02X}" for b in octets
        )
        if size + len(piece) > limit:
            words.append("=?UTF-8?Q?" + "".join(payload) + "?=")
            payload.clear()
            size = 0
        payload.append(piece)
        size += len(piece)
    if use_b and chunk:
        words.append("=?UTF-8?B?" + binascii.b2a_base64(bytes(chunk), newline=False).decode() + "?=")
    if not use_b and payload:
        words.append("=?UTF-8?Q?" + "".join(payload) + "?=")
    return words


def _fold(name: str, items: Sequence[str], sep: str) -> str:
    """``Name: item1<sep> item2...``, folding before an item that would pass 78 columns."""
    line = f"{name}:"
    out: list[str] = []
    for i, item in enumerate(items):
        piece = item + (sep if i < len(items) - 1 else "")
        if len(line) + 1 + len(piece) > _LINE and line.strip() != f"{name}:":
            out.append(line)
            line = " " + piece
        else:
            line += " " + piece
    out.append(line)
    return _CRLF.join(out)


def _render_text(name: str, value: str) -> str:
    """RFC 8621 §4.1.2.2 Text form, written back (RFC 2047 when needed)."""
    if value.isascii() and "=?" not in value and "  " not in value and value == value.strip():
        return _fold(name, value.split(" "), "") if value else f"{name}:"
    return _fold(name, _encoded_words(value), "")


def _phrase(name: str) -> str:
    if name.isascii() and "=?" not in name:
        if _ATEXT.match(name) and "  " not in name and name == name.strip() and "=?" not in name:
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return " ".join(_encoded_words(name))


def _mailbox(value: Any, prop: str) -> str:
    if not isinstance(value, Mapping) or not isinstance(value.get("email"), str):
        raise BuildError([prop], "an EmailAddress needs an email string")
    email = _check_text(value["email"], prop)
    if any(c in email for c in "<>\r\n"):
        raise BuildError([prop], "invalid character in email")
    name = value.get("name")
    if name is None or name == "":
        return email
    return f"{_phrase(_check_text(name, prop))} <{email}>"


def _render_addresses(name: str, value: Any, prop: str) -> str:
    if not isinstance(value, list):
        raise BuildError([prop], "expected an EmailAddress list")
    return _fold(name, [_mailbox(v, prop) for v in value], ",")


def _render_groups(name: str, value: Any, prop: str) -> str:
    if not isinstance(value, list):
        raise BuildError([prop], "expected an EmailAddressGroup list")
    items: list[str] = []
    for group in value:
        if not isinstance(group, Mapping) or not isinstance(group.get("addresses"), list):
            raise BuildError([prop], "an EmailAddressGroup needs an addresses list")
        mailboxes = [_mailbox(v, prop) for v in group["addresses"]]
        gname = group.get("name")
        if gname is None:
            items.extend(mailboxes)
            continue
        label = _phrase(_check_text(gname, prop)) + ":"
        if not mailboxes:
            items.append(label + ";")
            continue
        mailboxes[0] = f"{label} {mailboxes[0]}"
        mailboxes[-1] += ";"
        items.extend(mailboxes)
    # Separators by hand: none after a group's closing ";", a comma after anything else.
    return _fold(name, [item if item.endswith(";") or i == len(items) - 1 else item + ","
                        for i, item in enumerate(items)], "")


def _render_message_ids(name: str, value: Any, prop: str) -> str:
    if not isinstance(value, list) or not value:
        raise BuildError([prop], "expected a non-empty list of message ids")
    ids = []
    for item in value:
        text = _check_text(item, prop)
        if not text or any(c in text for c in "<> \t") or "@" not in text:
            raise BuildError([prop], f"invalid message id {text!r}")
        ids.append(f"<{text}>")
    return _fold(name, ids, "")


def _parse_date(value: Any, prop: str) -> datetime:
    text = _check_text(value, prop)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BuildError([prop], "expected an RFC 3339 date-time") from None
    if parsed.tzinfo is None or "T" not in text.upper():
        raise BuildError([prop], "expected an RFC 3339 date-time with a time offset")
    return parsed


def _render_urls(name: str, value: Any, prop: str) -> str:
    if not isinstance(value, list):
        raise BuildError([prop], "expected a list of URLs")
    urls = []
    for item in value:
        text = _check_text(item, prop)
        if any(c in text for c in "<> \t"):
            raise BuildError([prop], f"invalid URL {text!r}")
        urls.append(f"<{text}>")
    return _fold(name, urls, ",")


def _render_raw(name: str, value: Any, prop: str) -> str:
    if not isinstance(value, str):
        raise BuildError([prop], "expected a string")
    text = value.replace("\r\n", "\n")
    if "\x00" in text or "\r" in text or re.search(r"\n(?![ \t])", text):
        raise BuildError([prop], "a Raw value may only contain folded line breaks")
    text = text.replace("\n", _CRLF)
    # RFC 8621 §4.1.2.1: Raw starts after the colon; most generators put a space there.
    return f"{name}:{text}" if text[:1] in (" ", "\t") else f"{name}: {text}"


def _render(name: str, form: str, value: Any, prop: str) -> str:
    if form == "Raw":
        return _render_raw(name, value, prop)
    if form == "Text":
        return _render_text(name, _check_text(value, prop))
    if form == "Addresses":
        return _render_addresses(name, value, prop)
    if form == "GroupedAddresses":
        return _render_groups(name, value, prop)
    if form == "MessageIds":
        return _render_message_ids(name, value, prop)
    if form == "Date":
        return f"{name}: {format_datetime(_parse_date(value, prop))}"
    if form == "URLs":
        return _render_urls(name, value, prop)
    raise BuildError([prop], f"unknown form {form}")  # pragma: no cover - parse_header_property checks


def _header_props(obj: Mapping[str, Any], where: str) -> list[tuple[str, HeaderProperty, Any]]:
    """``(path, property, value)`` for every ``header:`` key, validated (RFC 8621 §4.6)."""
    found = []
    for key, value in obj.items():
        try:
            prop = parse_header_property(key)
        except InvalidHeaderProperty as exc:
            raise BuildError([where + key], str(exc)) from None
        if prop is not None:
            found.append((where + key, prop, value))
    return found


def _header_lines(path: str, prop: HeaderProperty, value: Any) -> list[str]:
    if value is None:
        return []
    if prop.all:
        if not isinstance(value, list):
            raise BuildError([path], "a :all header property takes a list")
        return [_render(prop.name, prop.form, v, path) for v in value if v is not None]
    return [_render(prop.name, prop.form, value, path)]


# --- parameters ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _param(name: str, value: str) -> list[str]:
    """One parameter, RFC 2231-encoded (with continuations) when not plain ASCII."""
    if value.isascii() and not _BAD_CHARS.search(value):
        if _TOKEN.match(value):
            return [f"{name}={value}"]
        if len(value) < 900:
            return [f'{name}="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"']
    encoded = quote(value.encode("utf-8"), safe="!#$&+-.^_`|~")
    if len(encoded) + len(name) < 60:
        return [f"{name}*=utf-8''{encoded}"]
    pieces: list[str] = []
    rest = encoded
    first = True
    while rest:
        cut = min(len(rest), 50)
        while cut < len(rest) and "%" in rest[cut - 2 : cut]:
            cut -= 1  # never split a %XX triplet
        head = "utf-8''" if first else ""
        pieces.append(f"{name}*{len(pieces)}*={head}{rest[:cut]}")
        rest = rest[cut:]
        first = False
    return pieces


def _content_header(name: str, value: str, params: list[tuple[str, str]]) -> str:
    items = [value] + [p for key, val in params for p in _param(key, val)]
    if len(items) == 1:
        return f"{name}: {value}"
    return f"{name}: " + (";" + _CRLF + " ").join(items)


# --- body parts ---------------------------------------------------------------------------------


@dataclass
class _Node:
    path: str
    type: str
    headers: list[str] = field(default_factory=list)
    """Extra header lines from ``header:`` properties of the part."""
    content_type_raw: str | None = None
    disposition_raw: str | None = None
    charset: str | None = None
    name: str | None = None
    disposition: str | None = None
    cid: str | None = None
    language: list[str] | None = None
    location: str | None = None
    text: str | None = None
    blob_id: str | None = None
    children: list[_Node] | None = None


class _Builder:
    def __init__(self, email: Mapping[str, Any], fetch_blob: FetchBlob) -> None:
        self.email = email
        self.fetch_blob = fetch_blob
        self.body_values = self._body_values(email.get("bodyValues"))
        self.used_values: set[str] = set()
        self.blobs: dict[str, bytes | None] = {}

    # RFC 8621 §4.6: "isEncodingProblem and isTruncated MUST be either false or omitted".
    def _body_values(self, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise BuildError(["bodyValues"], "expected an object")
        out: dict[str, str] = {}
        for part_id, body in value.items():
            path = f"bodyValues/{part_id}"
            if not isinstance(body, Mapping) or not isinstance(body.get("value"), str):
                raise BuildError([path], "an EmailBodyValue needs a string value")
            for flag in ("isEncodingProblem", "isTruncated"):
                if body.get(flag, False) is not False:
                    raise BuildError([f"{path}/{flag}"], f"{flag} must be false or omitted")
            out[part_id] = body["value"]
        return out

    def node(self, part: Any, path: str, *, default_type: str | None = None) -> _Node:
        if not isinstance(part, Mapping):
            raise BuildError([path], "an EmailBodyPart must be an object")
        # RFC 8621 §4.6: no "headers"; only known properties.
        for key in part:
            if key == "headers":
                raise BuildError([f"{path}/headers"], "headers must not be given; use header: properties")
            if key not in _PART_KEYS and not key.startswith("header:"):
                raise BuildError([f"{path}/{key}"], "unknown EmailBodyPart property")
        header_props = _header_props(part, f"{path}/")
        given_fields: dict[str, str] = {}
        for key, field_name in _PART_FIELDS.items():
            if part.get(key) is not None:
                given_fields.setdefault(field_name, f"{path}/{key}")
        node = _Node(path=path, type="")
        seen: dict[str, str] = {}
        for prop_path, prop, value in header_props:
            key = prop.key
            # RFC 8621 §4.6: "A Content-Transfer-Encoding header field MUST NOT be given."
            if key == "content-transfer-encoding":
                raise BuildError([prop_path], "Content-Transfer-Encoding must not be given")
            # RFC 8621 §4.6: no two properties for the same header field.
            other = given_fields.get(key) or seen.get(key)
            if other is not None:
                raise BuildError([other, prop_path], f"two properties represent the {prop.name} header field")
            seen[key] = prop_path
            lines = _header_lines(prop_path, prop, value)
            if key == "content-type" and lines:
                node.content_type_raw = lines[-1].split(":", 1)[1].strip()
            elif key == "content-disposition" and lines:
                node.disposition_raw = lines[-1].split(":", 1)[1].strip()
            else:
                node.headers.extend(lines)
        ctype = part.get("type")
        if ctype is None and node.content_type_raw is not None:
            ctype = parse_parameters(node.content_type_raw)[0].lower()
        if ctype is not None:
            ctype = _check_text(ctype, f"{path}/type").strip().lower()
            if not re.match(r"^[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+$", ctype):
                raise BuildError([f"{path}/type"], f"invalid media type {ctype!r}")
        part_id = part.get("partId")
        blob_id = part.get("blobId")
        sub_parts = part.get("subParts")
        if sub_parts is not None:
            ctype = ctype or "multipart/mixed"
            if not ctype.startswith("multipart/"):
                raise BuildError([f"{path}/type"], "a part with subParts must be multipart/*")
            if part_id is not None or blob_id is not None:
                raise BuildError([f"{path}/subParts"], "a multipart has neither partId nor blobId")
            if not isinstance(sub_parts, list):
                raise BuildError([f"{path}/subParts"], "expected a list")
            node.type = ctype
            node.children = [self.node(sub, f"{path}/subParts/{i}") for i, sub in enumerate(sub_parts)]
            return self._common(node, part, path)
        if ctype is not None and ctype.startswith("multipart/"):
            raise BuildError([f"{path}/subParts"], "a multipart part needs subParts")
        # RFC 8621 §4.6: "The client may specify a partId OR a blobId, but not both."
        if (part_id is None) == (blob_id is None):
            raise BuildError([f"{path}/partId", f"{path}/blobId"], "give exactly one of partId and blobId")
        if part_id is not None:
            if not isinstance(part_id, str) or part_id not in self.body_values:
                raise BuildError([f"{path}/partId"], "partId must be a key of bodyValues")
            # RFC 8621 §4.6: charset and size MUST be omitted when a partId is given.
            for key in ("charset", "size"):
                if part.get(key) is not None:
                    raise BuildError([f"{path}/{key}"], f"{key} must be omitted when partId is given")
            self.used_values.add(part_id)
            node.text = self.body_values[part_id]
            node.type = ctype or default_type or "text/plain"
        else:
            if not isinstance(blob_id, str):
                raise BuildError([f"{path}/blobId"], "expected a string")
            node.blob_id = blob_id
            if blob_id not in self.blobs:
                self.blobs[blob_id] = self.fetch_blob(blob_id)
            node.type = ctype or default_type or "application/octet-stream"
            charset = part.get("charset")
            if charset is not None:
                node.charset = _check_text(charset, f"{path}/charset")
        return self._common(node, part, path)

    def _common(self, node: _Node, part: Mapping[str, Any], path: str) -> _Node:
        for key in ("name", "disposition", "cid", "location"):
            value = part.get(key)
            if value is not None:
                setattr(node, key, _check_text(value, f"{path}/{key}"))
        if node.disposition is not None:
            node.disposition = node.disposition.strip().lower()
        language = part.get("language")
        if language is not None:
            if not isinstance(language, list) or not all(isinstance(x, str) for x in language):
                raise BuildError([f"{path}/language"], "expected a list of language tags")
            node.language = [_check_text(x, f"{path}/language") for x in language]
        if node.cid is not None and any(c in node.cid for c in "<> \t"):
            raise BuildError([f"{path}/cid"], "cid is given without angle brackets or spaces")
        return node


def _flat_body(builder: _Builder, email: Mapping[str, Any]) -> _Node:
    """textBody/htmlBody/attachments -> one MIME tree (RFC 8621 §4.6)."""

    def single(key: str, ctype: str) -> _Node | None:
        value = email.get(key)
        if value is None:
            return None
        # RFC 8621 §4.6: exactly one part, of type text/plain (textBody) or text/html (htmlBody).
        if not isinstance(value, list) or len(value) != 1:
            raise BuildError([key], f"{key} must contain exactly one body part")
        node = builder.node(value[0], f"{key}/0", default_type=ctype)
        if node.type != ctype or node.children is not None:
            raise BuildError([f"{key}/0/type"], f"{key} must be of type {ctype}")
        return node

    text = single("textBody", "text/plain")
    html = single("htmlBody", "text/html")
    attachments = email.get("attachments") or []
    if not isinstance(attachments, list):
        raise BuildError(["attachments"], "expected a list")
    inline: list[_Node] = []
    mixed: list[_Node] = []
    for i, item in enumerate(attachments):
        node = builder.node(item, f"attachments/{i}")
        if node.disposition is None:
            node.disposition = "inline" if node.cid is not None and html is not None else "attachment"
        # Parts referenced by Content-ID go with the HTML in a multipart/related (RFC 2387).
        (inline if html is not None and node.cid is not None and node.disposition == "inline" else mixed).append(
            node
        )
    if html is not None and inline:
        html = _Node(path="htmlBody", type="multipart/related", children=[html, *inline])
    if text is not None and html is not None:
        body: _Node | None = _Node(path="textBody", type="multipart/alternative", children=[text, html])
    else:
        body = text or html
    if body is None and not mixed:
        body = _Node(path="textBody", type="text/plain", text="")
    if mixed:
        return _Node(path="attachments", type="multipart/mixed", children=([body] if body else []) + mixed)
    assert body is not None
    return body


# --- body encoding ------------------------------------------------------------------------------


def _lines_ok(data: bytes, *, crlf_only: bool) -> bool:
    if b"\x00" in data:
        return False
    if crlf_only and (data.count(b"\n") != data.count(b"\r\n") or data.count(b"\r") != data.count(b"\r\n")):
        return False
    return all(len(line) <= 998 for line in data.split(b"\n"))


def _base64(data: bytes) -> str:
    encoded = binascii.b2a_base64(data, newline=False).decode("ascii")
    return _CRLF.join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def _encode_body(node: _Node, data: bytes, *, is_text_value: bool) -> tuple[str, str]:
    """``(cte, encoded body)``; text from bodyValues is already CRLF-normalised."""
    ctype = node.type
    if ctype.startswith("message/"):
        # RFC 2046 §5.2.1: message/rfc822 may only be 7bit, 8bit or binary.
        if data.isascii() and _lines_ok(data, crlf_only=True):
            return "7bit", data.decode("ascii")
        if _lines_ok(data, crlf_only=True):
            return "8bit", data.decode("utf-8", "surrogateescape")
        return "base64", _base64(data)
    if data.isascii() and _lines_ok(data, crlf_only=True):
        return "7bit", data.decode("ascii")
    if ctype.startswith("text/"):
        high = sum(1 for b in data if b >= 0x80 or b < 0x09)
        if high * 4 < len(data):
            if is_text_value:
                qp = binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=True).replace(b"\n", b"\r\n")
            else:
                qp = binascii.b2a_qp(data, istext=False).replace(b"\n", b"\r\n")
            # b2a_qp does not protect a line that begins with "." or "From "; both are harmless here.
            return "quoted-printable", qp.decode("ascii")
    return "base64", _base64(data)


def _boundary() -> str:
    # "=_" cannot occur in quoted-printable or base64 output (RFC 2045 §6.7, RFC 2046 §5.1.1).
    return "=_" + secrets.token_hex(16)


def _render_node(node: _Node, blobs: Mapping[str, bytes | None]) -> tuple[list[str], str]:
    """``(header lines, body)`` of one part."""
    headers: list[str] = []
    if node.children is not None:
        given = parse_parameters(node.content_type_raw)[1].get("boundary") if node.content_type_raw else None
        boundary = given or _boundary()
        if given:
            headers.append(f"Content-Type: {node.content_type_raw}")
        else:
            headers.append(_content_header("Content-Type", node.content_type_raw or node.type,
                                           [("boundary", boundary)]))
        headers.extend(_part_headers(node))
        chunks: list[str] = []
        for child in node.children:
            child_headers, child_body = _render_node(child, blobs)
            chunks.append(f"--{boundary}{_CRLF}" + _CRLF.join(child_headers) + _CRLF + _CRLF + child_body + _CRLF)
        return headers, "".join(chunks) + f"--{boundary}--{_CRLF}"
    if node.text is not None:
        text = node.text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", _CRLF)
        data = text.encode("utf-8")
        charset: str | None = "utf-8" if node.type.startswith("text/") else None
        is_text_value = True
    else:
        assert node.blob_id is not None
        data = blobs[node.blob_id] or b""
        charset = node.charset
        is_text_value = False
    params: list[tuple[str, str]] = []
    if charset:
        params.append(("charset", charset))
    if node.name is not None and node.disposition_raw is None:
        params.append(("name", node.name))
    if node.content_type_raw is not None:
        headers.append(f"Content-Type: {node.content_type_raw}")
    else:
        headers.append(_content_header("Content-Type", node.type, params))
    cte, body = _encode_body(node, data, is_text_value=is_text_value)
    headers.append(f"Content-Transfer-Encoding: {cte}")
    headers.extend(_part_headers(node))
    return headers, body


def _part_headers(node: _Node) -> list[str]:
    headers: list[str] = []
    if node.disposition_raw is not None:
        headers.append(f"Content-Disposition: {node.disposition_raw}")
    elif node.disposition is not None or (node.name is not None and node.children is None):
        disp_params = [("filename", node.name)] if node.name is not None else []
        headers.append(_content_header("Content-Disposition", node.disposition or "attachment", disp_params))
    if node.cid is not None:
        headers.append(f"Content-ID: <{node.cid}>")
    if node.language:
        headers.append(_fold("Content-Language", node.language, ","))
    if node.location is not None:
        headers.append(f"Content-Location: {node.location}")
    headers.extend(node.headers)
    return headers


# --- the message ----------------------------------------------------------------------------------


def build_message(
    email: Mapping[str, Any],
    *,
    fetch_blob: FetchBlob,
    domain: str,
    now: datetime | None = None,
) -> bytes:
    """The RFC 5322 octets for an Email/set ``create`` object (RFC 8621 §4.6).

    Reads only the content properties (header and convenience properties, bodyStructure,
    textBody, htmlBody, attachments, bodyValues); mailboxIds, keywords, receivedAt and the
    like are the caller's. Adds ``Date`` (``now``, default the current time) and
    ``Message-ID`` (``<random@domain>``) when not given, and ``MIME-Version``.

    Raises :class:`BuildError` for a violated constraint and :class:`BlobNotFound` with
    every missing blob id.
    """
    # RFC 8621 §4.6: "The headers property MUST NOT be given".
    if "headers" in email:
        raise BuildError(["headers"], "headers must not be given; use header: properties")
    header_props = _header_props(email, "")
    represented: dict[str, str] = {}
    lines_by_field: list[str] = []
    for key, (field_name, form) in _CONVENIENCE.items():
        if key not in email:
            continue
        represented[field_name.lower()] = key
        value = email[key]
        if value is None:
            continue
        if key == "subject":
            lines_by_field.append(_render_text(field_name, _check_text(value, key)))
        else:
            lines_by_field.append(_render(field_name, form, value, key))
    for path, prop, value in header_props:
        # RFC 8621 §4.6: "Header fields beginning with Content- MUST NOT be specified on the
        # Email object, only on EmailBodyPart objects."
        if prop.key.startswith("content-"):
            raise BuildError([path], "Content-* header fields belong on body parts")
        other = represented.get(prop.key)
        if other is not None:
            raise BuildError([other, path], f"two properties represent the {prop.name} header field")
        represented[prop.key] = path
        lines_by_field.extend(_header_lines(path, prop, value))

    builder = _Builder(email, fetch_blob)
    structure = email.get("bodyStructure")
    if structure is not None:
        # RFC 8621 §4.6: bodyStructure excludes textBody, htmlBody and attachments.
        clash = [k for k in ("textBody", "htmlBody", "attachments") if email.get(k) is not None]
        if clash:
            raise BuildError(["bodyStructure", *clash], "bodyStructure excludes textBody/htmlBody/attachments")
        if isinstance(structure, Mapping):
            for path, prop, _ in _header_props(structure, "bodyStructure/"):
                other = represented.get(prop.key)
                if other is not None:
                    raise BuildError([other, path], f"{prop.name} is already defined on the Email")
        root = builder.node(structure, "bodyStructure")
    else:
        root = _flat_body(builder, email)
    unused = sorted(set(builder.body_values) - builder.used_values)
    if unused:
        raise BuildError([f"bodyValues/{u}" for u in unused], "bodyValues not referenced by any body part")
    missing = [blob_id for blob_id, data in builder.blobs.items() if data is None]
    if missing:
        raise BlobNotFound(missing)

    lines = list(lines_by_field)
    emitted = {line.split(":", 1)[0].lower() for line in lines}
    # RFC 8621 §4.6: the server MUST set Message-ID and Date when they are not given.
    if "date" not in emitted:
        lines.append(f"Date: {format_datetime(now or datetime.now(UTC))}")
    if "message-id" not in emitted:
        lines.append(f"Message-ID: <{uuid.uuid4().hex}@{domain}>")
    if "mime-version" not in emitted:
        lines.append("MIME-Version: 1.0")
    part_headers, body = _render_node(root, builder.blobs)
    lines.extend(part_headers)
    message = _CRLF.join(lines) + _CRLF + _CRLF + body
    return message.encode("utf-8", "surrogateescape")
