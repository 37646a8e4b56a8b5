"""Header field parsed forms, RFC 8621 §4.1.2, and ``header:`` property names (§4.1.3).

Every ``as_*`` function takes a *Raw* value (RFC 8621 §4.1.2.1: the text after the colon,
folding kept, already decoded from octets by :func:`tidings.mime.decode.decode_header_bytes`)
and never raises. Parsing is best effort, as §4.1.2.3 asks for invalid or half-finished input.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_tz
from typing import Any

from tidings.mime.decode import decode_encoded_words

__all__ = [
    "FORMS",
    "EmailAddress",
    "EmailAddressGroup",
    "HeaderProperty",
    "InvalidHeaderProperty",
    "as_addresses",
    "as_date",
    "as_grouped_addresses",
    "as_message_ids",
    "as_raw",
    "as_text",
    "as_urls",
    "form_allowed",
    "format_utc_offset_date",
    "header_values",
    "lookup_header",
    "parse_header_form",
    "parse_header_property",
]

EmailAddress = dict[str, Any]
"""``{"name": str | None, "email": str}`` (RFC 8621 §4.1.2.3)."""
EmailAddressGroup = dict[str, Any]
"""``{"name": str | None, "addresses": [EmailAddress]}`` (RFC 8621 §4.1.2.4)."""

FORMS = ("Raw", "Text", "Addresses", "GroupedAddresses", "MessageIds", "Date", "URLs")


# --- Raw and Text ------------------------------------------------------------------------------


def as_raw(raw: str) -> str:
    """RFC 8621 §4.1.2.1: the value as it is (octet decoding happened when it was read)."""
    return raw


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAK = re.compile(r"[\r\n]")


def unfold(raw: str) -> str:
    """RFC 5322 §2.2.3: remove each CRLF that is followed by WSP; drop any other CR/LF."""
    if "\n" not in raw and "\r" not in raw:
        return raw
    return _LINE_BREAK.sub("", _FOLD.sub("", raw))


def as_text(raw: str) -> str:
    """RFC 8621 §4.1.2.2: unfold, drop leading SP, decode RFC 2047 words, NFC."""
    text = unfold(raw).lstrip(" \t")
    return decode_encoded_words(text)


# --- tokenizer for structured fields (RFC 5322 §3.2) -------------------------------------------

_SPECIALS = '()<>,;:@."[]'


@dataclass(slots=True)
class _Tok:
    kind: str  # "atom", "qs", "comment", "angle", or a special character
    text: str
    space_before: bool


def _tokenize(value: str) -> list[_Tok]:
    text = unfold(value)
    toks: list[_Tok] = []
    i = 0
    n = len(text)
    space = False
    while i < n:
        c = text[i]
        if c in " \t":
            space = True
            i += 1
            continue
        if c == "(":
            end, content = _read_comment(text, i)
            toks.append(_Tok("comment", content, space))
            i = end
        elif c == '"':
            end, content = _read_quoted(text, i)
            toks.append(_Tok("qs", content, space))
            i = end
        elif c == "<":
            end, content = _read_angle(text, i)
            toks.append(_Tok("angle", content, space))
            i = end
        elif c == "[":
            end = text.find("]", i)
            end = n if end < 0 else end + 1
            toks.append(_Tok("atom", text[i:end], space))
            i = end
        elif c == ">":
            i += 1  # stray closing bracket
        elif c in _SPECIALS:
            toks.append(_Tok(c, c, space))
            i += 1
        else:
            start = i
            while i < n and text[i] not in _SPECIALS and text[i] not in " \t":
                i += 1
            toks.append(_Tok("atom", text[start:i], space))
        space = False
    return toks


def _read_comment(text: str, i: int) -> tuple[int, str]:
    depth = 0
    out: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if c == "(":
            depth += 1
            if depth > 1:
                out.append(c)
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1, "".join(out)
            out.append(c)
        else:
            out.append(c)
        i += 1
    return n, "".join(out)


def _read_quoted(text: str, i: int) -> tuple[int, str]:
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return i + 1, "".join(out)
        out.append(c)
        i += 1
    return n, "".join(out)


def _read_angle(text: str, i: int) -> tuple[int, str]:
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == ">":
            return i + 1, "".join(out)
        if c == "(":
            i, _ = _read_comment(text, i)
            continue
        if c == '"':
            end, content = _read_quoted(text, i)
            out.append('"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"')
            i = end
            continue
        if c not in " \t":
            out.append(c)
        i += 1
    return n, "".join(out)


def _phrase(toks: Sequence[_Tok]) -> str | None:
    """Display-name from phrase tokens (RFC 8621 §4.1.2.3 name rules)."""
    parts: list[str] = []
    for tok in toks:
        if tok.kind == "comment":
            continue
        if tok.kind == "qs":
            word = decode_encoded_words(tok.text, strict_placement=False)
        elif tok.kind == "angle":
            continue
        else:
            word = tok.text
        if parts and (tok.space_before or tok.kind == "qs"):
            parts.append(" ")
        parts.append(word)
    if not parts:
        return None
    name = decode_encoded_words("".join(parts)).strip()
    return name or None


def _addr_spec(toks: Sequence[_Tok]) -> str:
    out: list[str] = []
    for tok in toks:
        if tok.kind == "comment":
            continue
        if tok.kind == "qs":
            out.append('"' + tok.text.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(tok.text)
    return "".join(out)


def _angle_email(content: str) -> str:
    # obs-route (RFC 5322 §4.4): "<@a.example,@b.example:user@example.com>"
    if content.startswith("@") and ":" in content:
        content = content.split(":", 1)[1]
    return content


def _mailbox(toks: list[_Tok]) -> EmailAddress | None:
    for idx, tok in enumerate(toks):
        if tok.kind == "angle":
            return {"name": _phrase(toks[:idx]), "email": _angle_email(tok.text)}
    if any(tok.kind == "@" for tok in toks):
        email = _addr_spec(toks)
    else:
        # No addr-spec at all (a half-typed draft, a bare name): keep the words apart.
        email = " ".join(tok.text for tok in toks if tok.kind != "comment")
    if not email:
        return None
    name: str | None = None
    # RFC 8621 §4.1.2.3: a comment right after the addr-spec stands in for a display-name.
    for tok in toks:
        if tok.kind == "comment":
            name = decode_encoded_words(tok.text, strict_placement=False).strip() or None
            break
    return {"name": name, "email": email}


def _bare_addresses(toks: list[_Tok]) -> list[list[_Tok]]:
    """Split "a@x.example b@y.example" (addresses missing their comma, common in the wild) into one token
    run per address; any other element is left whole. Without this the addr-specs would be glued
    together into one address that exists nowhere."""
    if any(tok.kind == "angle" for tok in toks):
        return [toks]
    runs: list[list[_Tok]] = []
    for tok in toks:
        if tok.kind == "comment":
            if runs:
                runs[-1].append(tok)
            continue
        if not runs or (tok.space_before and tok.kind == "atom" and any(t.kind == "@" for t in runs[-1])):
            runs.append([tok])
        else:
            runs[-1].append(tok)
    if len(runs) > 1 and all(sum(t.kind == "@" for t in run) == 1 for run in runs):
        return runs
    return [toks]


def as_grouped_addresses(raw: str) -> list[EmailAddressGroup]:
    """RFC 8621 §4.1.2.4: address-list with groups kept; other mailboxes in null groups."""
    groups: list[EmailAddressGroup] = []
    loose: list[EmailAddress] | None = None
    group: EmailAddressGroup | None = None
    elem: list[_Tok] = []

    def finish() -> None:
        nonlocal loose
        mailboxes = [m for m in (_mailbox(run) for run in _bare_addresses(elem)) if m is not None]
        elem.clear()
        for mailbox in mailboxes:
            if group is not None:
                group["addresses"].append(mailbox)
            else:
                if loose is None:
                    loose = []
                    groups.append({"name": None, "addresses": loose})
                loose.append(mailbox)

    for tok in _tokenize(raw):
        if tok.kind == ",":
            finish()
        elif tok.kind == ":" and group is None and not any(t.kind == "angle" for t in elem):
            # RFC 5322 §3.4: group = display-name ":" [group-list] ";"
            group = {"name": _phrase(elem), "addresses": []}
            groups.append(group)
            loose = None
            elem.clear()
        elif tok.kind == ";":
            finish()
            group = None
        else:
            elem.append(tok)
    finish()
    return groups


def as_addresses(raw: str) -> list[EmailAddress]:
    """RFC 8621 §4.1.2.3: every mailbox of the address-list; groups and comments dropped."""
    return [addr for group in as_grouped_addresses(raw) for addr in group["addresses"]]


def as_message_ids(raw: str) -> list[str] | None:
    """RFC 8621 §4.1.2.5: msg-id list without CFWS and angle brackets; null on failure.

    Phrases (obs-in-reply-to, RFC 5322 §4.5.4) are skipped. A lone bracketless id with
    an ``@`` is accepted, since such headers are common in the wild.
    """
    toks = _tokenize(raw)
    ids = [tok.text for tok in toks if tok.kind == "angle" and tok.text]
    if ids:
        return ids
    words = [t for t in toks if t.kind != "comment"]
    if words and not any(t.space_before for t in words[1:]):
        word = _addr_spec(words)
        if "@" in word and "<" not in word and ">" not in word:
            return [word]
    return None


def as_urls(raw: str) -> list[str] | None:
    """RFC 8621 §4.1.2.7: the URLs in angle brackets (RFC 2369 §2); null when there are none."""
    urls = [tok.text for tok in _tokenize(raw) if tok.kind == "angle" and tok.text]
    return urls or None


def format_utc_offset_date(value: datetime) -> str:
    """RFC 8620 §1.4 Date: RFC 3339 date-time, offset kept, ``Z`` for a zero offset."""
    offset = value.utcoffset() or timedelta(0)
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if not offset:
        return base + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{base}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
_TIME_SPACING = re.compile(r"\s*:\s*")


def as_date(raw: str) -> str | None:
    """RFC 8621 §4.1.2.6: RFC 5322 date-time (obsolete syntax too) as an RFC 3339 Date.

    The original offset is kept (``-0330`` gives ``-03:30``); ``+0000``, ``-0000`` and
    unknown zone names give ``Z`` (RFC 5322 §4.3 treats unknown zones as ``-0000``).
    Returns None when the value is not a valid date.
    """
    text = unfold(raw).strip()
    if not text:
        return None
    if "(" in text:
        # RFC 5322 §4.3 obsolete date-time: CFWS may appear between the time's parts.
        text = _TIME_SPACING.sub(":", _COMMENT.sub(" ", text)).strip()
    try:
        parsed = parsedate_tz(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    year, month, day, hour, minute, second = parsed[:6]
    offset = parsed[9] or 0
    if second == 60:
        second = 59  # leap second: RFC 3339 allows it, datetime does not
    try:
        if abs(offset) >= 24 * 3600:
            return None
        value = datetime(year, month, day, hour, minute, second, tzinfo=timezone(timedelta(seconds=offset)))
    except (ValueError, OverflowError):
        return None
    return format_utc_offset_date(value)


# --- dispatch and the allowed-forms table ------------------------------------------------------

_PARSERS: dict[str, Callable[[str], Any]] = {
    "Raw": as_raw,
    "Text": as_text,
    "Addresses": as_addresses,
    "GroupedAddresses": as_grouped_addresses,
    "MessageIds": as_message_ids,
    "Date": as_date,
    "URLs": as_urls,
}


def parse_header_form(form: str, raw_value: str) -> Any:
    """Parse one Raw value into ``form`` (one of :data:`FORMS`)."""
    try:
        parser = _PARSERS[form]
    except KeyError:
        raise InvalidHeaderProperty(f"unknown header form {form!r}") from None
    return parser(raw_value)


_ADDRESS_FIELDS = frozenset(
    {"from", "sender", "reply-to", "to", "cc", "bcc",
     "resent-from", "resent-sender", "resent-reply-to", "resent-to", "resent-cc", "resent-bcc"}
)
_URL_FIELDS = frozenset({"list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
                         "list-archive"})
# RFC 8621 §4.1.2: which parsed forms each field defined in RFC 5322 or RFC 2369 allows.
# Raw is always allowed; any other field allows every form.
_ALLOWED: dict[str, frozenset[str]] = {
    **{name: frozenset({"Raw", "Text"}) for name in ("subject", "comments", "keywords", "list-id")},
    **{name: frozenset({"Raw", "Addresses", "GroupedAddresses"}) for name in _ADDRESS_FIELDS},
    **{name: frozenset({"Raw", "MessageIds"}) for name in ("message-id", "in-reply-to", "references",
                                                          "resent-message-id")},
    **{name: frozenset({"Raw", "Date"}) for name in ("date", "resent-date")},
    **{name: frozenset({"Raw", "URLs"}) for name in _URL_FIELDS},
    # Defined in RFC 5322 but listed under no parsed form.
    "return-path": frozenset({"Raw"}),
    "received": frozenset({"Raw"}),
}


def form_allowed(header_name: str, form: str) -> bool:
    """RFC 8621 §4.1.2: may ``form`` be used for this header field (case-insensitive)?"""
    if form not in _PARSERS:
        return False
    allowed = _ALLOWED.get(header_name.lower())
    return allowed is None or form in allowed


class InvalidHeaderProperty(ValueError):
    """A malformed ``header:`` property, or a form that field does not allow."""


@dataclass(frozen=True, slots=True)
class HeaderProperty:
    """A parsed ``header:{name}[:as{form}][:all]`` property (RFC 8621 §4.1.3)."""

    prop: str
    """The property as the client spelled it (responses must echo it exactly)."""
    name: str
    """The header field name as given; match it case-insensitively."""
    form: str
    """One of :data:`FORMS`; ``Raw`` when no ``:as`` suffix was given."""
    all: bool

    @property
    def key(self) -> str:
        """The lowercased field name, for matching."""
        return self.name.lower()


_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")


def parse_header_property(prop: str) -> HeaderProperty | None:
    """Parse ``header:{name}[:as{form}][:all]``; None when ``prop`` is not a header property.

    Raises :class:`InvalidHeaderProperty` when the name is not 1+ printable ASCII without
    a colon, the form is unknown, the suffixes are out of order, or the form is not
    allowed for that field (RFC 8621 §4.1.2: rejected with ``invalidArguments``).
    """
    if not prop.startswith("header:"):
        return None
    pieces = prop[len("header:"):].split(":")
    name = pieces[0]
    if not _FIELD_NAME.match(name):
        raise InvalidHeaderProperty(f"invalid header field name in {prop!r}")
    form = "Raw"
    want_all = False
    rest = pieces[1:]
    if rest and rest[0].startswith("as"):
        form = rest[0][2:]
        if form not in _PARSERS:
            raise InvalidHeaderProperty(f"unknown header form in {prop!r}")
        rest = rest[1:]
    if rest and rest[0] == "all":
        want_all = True
        rest = rest[1:]
    if rest:
        raise InvalidHeaderProperty(f"malformed header property {prop!r}")
    if not form_allowed(name, form):
        raise InvalidHeaderProperty(f"form {form} is not allowed for header field {name}")
    return HeaderProperty(prop=prop, name=name, form=form, all=want_all)


def header_values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    """Raw values of every field called ``name`` (case-insensitive), in message order."""
    key = name.lower()
    return [value for field, value in headers if field.lower() == key]


def lookup_header(headers: Sequence[tuple[str, str]], prop: HeaderProperty) -> Any:
    """The value of a ``header:`` property over a ``(name, raw)`` list (RFC 8621 §4.1.3).

    The last instance, or null; with ``:all`` a list over every instance (empty if none).
    """
    values = header_values(headers, prop.name)
    parser = _PARSERS[prop.form]
    if prop.all:
        return [parser(v) for v in values]
    return parser(values[-1]) if values else None


def nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)
