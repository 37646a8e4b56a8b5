"""The DSN parameters of RFC 3461 §4: NOTIFY and ORCPT on RCPT TO, RET and ENVID on MAIL FROM.

Used three ways: EmailSubmission/set checks the decoded values a client gives in the envelope
(RFC 8621 §7: "any xtext or unitext encodings are removed"), the outbound queue encodes them for a
next hop that offers DSN, and the LMTP/SMTP listeners check the encoded values a client sends.

    notify-esmtp-value  = "NEVER" / 1#notify-list-element
    notify-list-element = "SUCCESS" / "FAILURE" / "DELAY"
    orcpt-parameter     = "ORCPT=" original-recipient-address
    original-recipient-address = addr-type ";" xtext
    ret-value           = "FULL" / "HDRS"
    envid-parameter     = "ENVID=" xtext
    xtext               = *( xchar / hexchar )   ; xchar: "!".."~" but "+" and "="; hexchar: "+" 2HEXDIG
"""

from __future__ import annotations

import re

MAIL_PARAMETERS = frozenset({"RET", "ENVID"})
RCPT_PARAMETERS = frozenset({"NOTIFY", "ORCPT"})
NOTIFY_KEYWORDS = ("SUCCESS", "FAILURE", "DELAY")
# RFC 3461 §4.4 and §4.2 (with §5.4's limits): an ENVID of up to 100 characters, an original
# recipient address of up to 500, both printable US-ASCII before xtext encoding.
MAX_ENVID = 100
MAX_ORCPT = 500
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")


class ParameterError(ValueError):
    """A DSN parameter whose value breaks RFC 3461's grammar; the message says which and why."""


def xtext_encode(text: str) -> str:
    """RFC 3461 §4: "+" followed by two upper-case hex digits for "+", "=" and anything outside
    "!".."~"."""
    return "".join(c if "!" <= c <= "~" and c not in "+=" else f"+{ord(c):02X}" for c in text)


def xtext_decode(text: str) -> str:
    """The value an xtext stands for; ParameterError when it is not xtext."""
    if any(not ("!" <= c <= "~") or c == "=" for c in text):
        raise ParameterError("not xtext (RFC 3461 §4)")
    pieces = text.split("+")
    out = [pieces[0]]
    for piece in pieces[1:]:
        found = _HEXCHAR.match("+" + piece)
        if found is None:
            raise ParameterError("a '+' in xtext must be followed by two upper-case hex digits (RFC 3461 §4)")
        out.append(chr(int(found.group(1), 16)) + piece[2:])
    return "".join(out)


def _printable(text: str) -> bool:
    return all(" " <= c <= "~" for c in text)


def check_notify(value: str | None) -> str:
    """NOTIFY (§4.1): NEVER alone, or SUCCESS/FAILURE/DELAY once each. Normalised to upper case."""
    if not isinstance(value, str) or not value:
        raise ParameterError("NOTIFY needs a value: NEVER, or any of SUCCESS, FAILURE, DELAY")
    keywords = [k.strip().upper() for k in value.split(",")]
    if keywords == ["NEVER"]:
        return "NEVER"
    if not keywords or any(k not in NOTIFY_KEYWORDS for k in keywords) or len(set(keywords)) != len(keywords):
        raise ParameterError("NOTIFY must be NEVER, or a list of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1)")
    return ",".join(keywords)


def check_ret(value: str | None) -> str:
    """RET (§4.3): FULL or HDRS."""
    if not isinstance(value, str) or value.upper() not in ("FULL", "HDRS"):
        raise ParameterError("RET must be FULL or HDRS (RFC 3461 §4.3)")
    return value.upper()


def check_envid(value: str | None) -> str:
    """ENVID (§4.4), decoded: 1 to 100 printable US-ASCII characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_ENVID or not _printable(value):
        raise ParameterError(f"ENVID must be 1 to {MAX_ENVID} printable US-ASCII characters (RFC 3461 §4.4)")
    return value


def check_orcpt(value: str | None) -> str:
    """ORCPT (§4.2), decoded: addr-type ";" address, printable US-ASCII, at most 500 characters."""
    if not isinstance(value, str) or len(value) > MAX_ORCPT or not _printable(value):
        raise ParameterError(f"ORCPT must be addr-type;address in printable US-ASCII, at most {MAX_ORCPT} characters")
    addr_type, semicolon, address = value.partition(";")
    if not semicolon or not _ATOM.fullmatch(addr_type) or not address.strip():
        raise ParameterError("ORCPT must be addr-type;address, e.g. rfc822;bob@example.com (RFC 3461 §4.2)")
    return value


CHECKS = {"NOTIFY": check_notify, "RET": check_ret, "ENVID": check_envid, "ORCPT": check_orcpt}


def check_decoded(name: str, value: str | None) -> str:
    """A decoded value (as JMAP carries it) of one of the four parameters, normalised."""
    return CHECKS[name.upper()](value)


def check_encoded(name: str, value: str | None) -> str:
    """An encoded value (as SMTP carries it) of one of the four, decoded and normalised."""
    upper = name.upper()
    if upper in ("ENVID", "ORCPT"):
        if not isinstance(value, str) or not value:
            raise ParameterError(f"{upper} needs a value")
        if upper == "ORCPT":
            addr_type, semicolon, address = value.partition(";")
            return check_orcpt(addr_type + semicolon + xtext_decode(address))
        return check_envid(xtext_decode(value))
    return CHECKS[upper](value)


def encode(name: str, value: str) -> str:
    """`NAME=value` as sent on MAIL FROM or RCPT TO (xtext where the grammar says so)."""
    if name == "ENVID":
        return f"ENVID={xtext_encode(value)}"
    if name == "ORCPT":
        addr_type, _, address = value.partition(";")
        return f"ORCPT={addr_type};{xtext_encode(address)}"
    return f"{name}={value}"


def wants(notify: str | None, keyword: str) -> bool:
    """Whether a recipient's NOTIFY asks for a DSN of this kind. Without NOTIFY, failures are
    reported and successes are not (§4.1 leaves it to the MTA; this is what MTAs do)."""
    if notify is None:
        return keyword != "SUCCESS"
    return keyword in notify.split(",")


__all__ = [
    "MAIL_PARAMETERS",
    "RCPT_PARAMETERS",
    "ParameterError",
    "check_decoded",
    "check_encoded",
    "encode",
    "wants",
    "xtext_decode",
    "xtext_encode",
]
