"""Charset decoding, RFC 2047 encoded-words and RFC 2231 parameters.

Everything here turns bytes (or header text holding encoded sections) into ``str``
and reports whether the decoding met a problem, so that callers can set
``isEncodingProblem`` (RFC 8621 §4.1.4) without guessing.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from functools import lru_cache

__all__ = [
    "decode_bytes",
    "decode_encoded_words",
    "decode_header_bytes",
    "lookup_charset",
    "parse_parameters",
    "split_parameters",
]

# Labels seen in real mail that Python does not know, or knows as a narrower codec than
# what senders actually use. Superset mappings follow the WHATWG Encoding Standard:
# mail clients label Windows code pages with the ISO or national name they extend.
_ALIASES: dict[str, str] = {
    "utf8": "utf-8",
    "utf-8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "unicode-2-0-utf-7": "utf-7",
    "x-unicode-2-0-utf-7": "utf-7",
    "unicode-1-1-utf-8": "utf-8",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "iso-ir-6": "ascii",
    "646": "ascii",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "iso_8859-1:1987": "cp1252",
    "x-user-defined": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "logical": "iso-8859-8",
    "visual": "iso-8859-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "chinese": "gb18030",
    "csgb2312": "gb18030",
    "x-euc-cn": "gb18030",
    "gb_2312-80": "gb18030",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601-1989": "cp949",
    "ksc5601": "cp949",
    "ksc_5601": "cp949",
    "korean": "cp949",
    "euc-kr": "cp949",
    "csksc56011987": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "csshiftjis": "cp932",
    "x-ms-cp932": "cp932",
    "euc-jp": "euc_jis_2004",
    "x-euc-jp": "euc_jis_2004",
    "iso-2022-jp": "iso2022_jp_ext",
    "csiso2022jp": "iso2022_jp_ext",
    "iso-2022-jp-2": "iso2022_jp_2",
    "koi8-r": "koi8_r",
    "koi8-u": "koi8_u",
    "koi8-ru": "koi8_u",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "x-mac-cyrillic": "mac_cyrillic",
    "windows-1250": "cp1250",
    "windows-1251": "cp1251",
    "windows-1252": "cp1252",
    "windows-1253": "cp1253",
    "windows-1254": "cp1254",
    "windows-1255": "cp1255",
    "windows-1256": "cp1256",
    "windows-1257": "cp1257",
    "windows-1258": "cp1258",
    "x-cp1250": "cp1250",
    "x-cp1251": "cp1251",
}

# Codecs that are not text encodings (``codecs.lookup`` knows them, decoding with
# them would be nonsense or dangerous).
_NOT_CHARSETS = frozenset(
    {"base64", "base64_codec", "bz2_codec", "hex_codec", "quopri_codec", "rot_13", "uu_codec", "zlib_codec",
     "idna", "punycode", "raw_unicode_escape", "unicode_escape", "undefined", "mbcs", "oem"}
)


@lru_cache(maxsize=256)
def lookup_charset(label: str | None) -> str | None:
    """The Python codec name for a MIME charset label, or None when unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if not name:
        return None
    alias = _ALIASES.get(name)
    if alias is not None:
        return alias
    for candidate in (name, name.replace("_", "-"), name.removeprefix("x-"), name.removeprefix("cs")):
        alias = _ALIASES.get(candidate)
        if alias is not None:
            return alias
        try:
            info = codecs.lookup(candidate)
        except (LookupError, ValueError):
            continue
        if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
            return None
        return info.name
    return None


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, bool]:
    """Decode ``data`` labelled ``charset``; returns ``(text, is_encoding_problem)``.

    RFC 8621 §4.1.4 (EmailBodyValue): decoding is best effort, U+FFFD replaces malformed
    sections, and ``isEncodingProblem`` is true when a malformed section was found or the
    charset is unknown. The server MAY use heuristics when no charset is given or the label
    is wrong: ``us-ascii`` (the implicit MIME default) with 8-bit content is read as UTF-8
    when it is valid UTF-8, else as windows-1252, and this is not flagged as a problem.
    """
    if data.isascii():
        # Every ASCII-compatible charset maps ASCII bytes to themselves; only the
        # ESC-based ISO-2022 family and the UTF-7/16/32 family need their codec.
        codec = lookup_charset(charset)
        if codec is None or not codec.startswith(("utf_7", "utf-7", "utf_16", "utf-16", "utf_32", "utf-32",
                                                 "iso2022", "hz")):
            return data.decode("ascii"), codec is None and charset is not None and not _is_implicit(charset)
    codec = lookup_charset(charset)
    if codec is None:
        if not charset or _is_implicit(charset):
            return _heuristic(data), False
        text, _ = _utf8_or_cp1252(data)
        return text, True
    if codec == "ascii":
        return _heuristic(data), False
    try:
        return data.decode(codec), False
    except UnicodeDecodeError:
        pass
    except LookupError:  # pragma: no cover - lookup_charset already checked
        return data.decode("utf-8", "replace"), True
    if codec == "iso2022_jp_ext":
        try:
            return data.decode("iso2022_jp_2"), False
        except UnicodeDecodeError:
            pass
    return data.decode(codec, "replace"), True


def _is_implicit(label: str) -> bool:
    return label.strip().strip("\"'").lower() in ("", "us-ascii", "ascii", "unknown-8bit", "x-unknown",
                                                  "unknown", "default", "8bit", "x-user-defined")


def _heuristic(data: bytes) -> str:
    return _utf8_or_cp1252(data)[0]


def _utf8_or_cp1252(data: bytes) -> tuple[str, bool]:
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; those map through latin-1 instead of failing.
        return data.decode("cp1252", _LATIN1_FALLBACK), False


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


_LATIN1_FALLBACK = "tidings-latin1-fallback"
codecs.register_error(_LATIN1_FALLBACK, _latin1_fallback)


def decode_header_bytes(value: str) -> str:
    """Header text read with surrogateescape -> str, per RFC 8621 §4.1.2.1 (Raw).

    Raw 8-bit octets are decoded as UTF-8 (RFC 6532); an octet run that violates UTF-8
    becomes U+FFFD. NUL octets are dropped.
    """
    if not value.isascii():
        value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value


# --- RFC 2047 ------------------------------------------------------------------------------------

# encoded-word = "=?" charset ["*" language] "?" encoding "?" encoded-text "?="   (RFC 2047 §2, RFC 2231 §5)
_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([QqBb])\?([^?\s]*)\?=")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_Q_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def _decode_q(text: str) -> bytes:
    raw = text.replace("_", " ").encode("ascii", "replace")
    return _Q_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _decode_b(text: str) -> bytes:
    cleaned = text.rstrip("=")
    cleaned = cleaned[: len(cleaned) - (len(cleaned) % 4 == 1)]
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        return b"\xff"  # decodes to U+FFFD below


def decode_encoded_words(text: str, *, strict_placement: bool = True) -> str:
    """Decode RFC 2047 encoded-words in ``text`` (RFC 8621 §4.1.2.2 step 4).

    Only syntactically correct words with a known charset are decoded. Linear white space
    between two adjacent encoded-words is removed (RFC 2047 §6.2); adjacent words in the
    same charset are joined before charset decoding, so a multi-octet character split over
    two words survives. With ``strict_placement`` an encoded-word must be delimited by white
    space or the ends of the text (RFC 2047 §5 (1)), otherwise it is left as it is.
    Decoded control characters are dropped, and the result is NFC-normalised.
    """
    if "=?" not in text:
        return unicodedata.normalize("NFC", text) if not text.isascii() else text
    out: list[str] = []
    pos = 0
    pending_charset: str | None = None
    pending: bytearray = bytearray()
    pending_codec: str | None = None

    def flush() -> None:
        nonlocal pending_charset, pending_codec
        if pending_charset is not None and pending_codec is not None:
            decoded = bytes(pending).decode(pending_codec, "replace")
            out.append(_CONTROL.sub("", decoded))
        pending.clear()
        pending_charset = None
        pending_codec = None

    for match in _ENCODED_WORD.finditer(text):
        start, end = match.span()
        if strict_placement and not _well_placed(text, start, end):
            continue
        codec = lookup_charset(match.group(1))
        if codec is None:
            continue  # unknown charset: leave the word as it is
        between = text[pos:start]
        label = match.group(1).lower()
        if pending_charset is not None and (between == "" or between.isspace()):
            # RFC 2047 §6.2: white space between adjacent encoded-words is ignored.
            if label != pending_charset:
                flush()
        else:
            flush()
            out.append(between)
        payload = match.group(3)
        octets = _decode_q(payload) if match.group(2) in "Qq" else _decode_b(payload)
        pending_charset = label
        pending_codec = codec
        pending.extend(octets)
        pos = end
    flush()
    out.append(text[pos:])
    return unicodedata.normalize("NFC", "".join(out))


def _well_placed(text: str, start: int, end: int) -> bool:
    before_ok = start == 0 or text[start - 1] in " \t\r\n(\""
    after_ok = end == len(text) or text[end] in " \t\r\n)\""
    return before_ok and after_ok


# --- RFC 2045 / RFC 2231 parameters -------------------------------------------------------------

_PARAM_SECTION = re.compile(r"^(?P<name>[^*]+)(?:\*(?P<index>\d+))?(?P<ext>\*)?$")


def split_parameters(value: str) -> tuple[str, list[tuple[str, str, bool]]]:
    """Split ``token; a=b; c="d"`` into the leading value and ``(name, value, quoted)``.

    Tolerant of the usual breakage: missing semicolons before a parameter, unterminated
    quotes, stray semicolons, comments (RFC 2045 §5.1 allows CFWS).
    """
    value = value.replace("\r", "").replace("\n", "")
    n = len(value)
    i = 0
    head: list[str] = []
    while i < n and value[i] != ";":
        if value[i] == "(":
            i = _skip_comment(value, i)
            continue
        head.append(value[i])
        i += 1
    params: list[tuple[str, str, bool]] = []
    while i < n:
        # at ';' or start of a parameter
        while i < n and (value[i] in "; \t"):
            i += 1
        if i < n and value[i] == "(":
            i = _skip_comment(value, i)
            continue
        start = i
        while i < n and value[i] not in "=;":
            i += 1
        name = value[start:i].strip().lower()
        if i >= n or value[i] == ";":
            continue
        i += 1  # '='
        while i < n and value[i] in " \t":
            i += 1
        if i < n and value[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(value[i])
                i += 1
            i += 1
            if name:
                params.append((name, "".join(chars), True))
        else:
            start = i
            while i < n and value[i] not in "; \t(":
                i += 1
            if name:
                params.append((name, value[start:i], False))
            while i < n and value[i] not in ";":
                if value[i] == "(":
                    i = _skip_comment(value, i)
                    continue
                if value[i] not in " \t":
                    break  # junk without ';' – treat as the start of another parameter
                i += 1
    return "".join(head).strip(), params


def _skip_comment(value: str, i: int) -> int:
    depth = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _percent_decode(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape") if not text.isascii() else text.encode("ascii")
    return re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)


def parse_parameters(value: str) -> tuple[str, dict[str, str]]:
    """Parse a Content-Type/Content-Disposition value into ``(value, params)``.

    Parameter names are lowercased. RFC 2231 continuations (``name*0``, ``name*1*``) are
    joined in index order and extended values (``charset'lang'%XX``) decoded. A value
    that holds RFC 2047 encoded-words (not allowed there, but common for ``name`` and
    ``filename``) is decoded too. The first occurrence of a parameter wins.
    """
    head, raw_params = split_parameters(value)
    simple: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    for name, val, quoted in raw_params:
        m = _PARAM_SECTION.match(name)
        if m is None:
            continue
        base = m.group("name")
        index = m.group("index")
        extended = m.group("ext") is not None and not quoted
        if index is None and not extended:
            simple.setdefault(base, val)
        else:
            sections.setdefault(base, {}).setdefault(int(index or 0), (val, extended))
    result = dict(simple)
    for base, parts in sections.items():
        # RFC 2231 §4.1: the charset is given only in the first section.
        ordered = [parts[k] for k in sorted(parts)]
        charset: str | None = None
        buf = bytearray()
        for pos, (val, extended) in enumerate(ordered):
            if extended:
                if pos == 0 and val.count("'") >= 2:
                    charset, _lang, val = val.split("'", 2)
                buf.extend(_percent_decode(val))
            else:
                buf.extend(val.encode("utf-8", "surrogateescape"))
        if charset:
            text, _ = decode_bytes(bytes(buf), charset)
        else:
            text = bytes(buf).decode("utf-8", "replace")
        result[base] = text  # an RFC 2231 value wins over a plain one (RFC 2231 §4)
    for key, val in result.items():
        if "=?" in val:
            result[key] = decode_encoded_words(val, strict_placement=False)
    return head, result
