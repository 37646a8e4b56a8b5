"""Base subject extraction, RFC 5256 §2.1, for threading and subject sorting."""

from __future__ import annotations

import re

__all__ = ["base_subject"]

# RFC 5256 §5 (ABNF):
#   subj-trailer    = "(fwd)" / WSP
#   subj-blob       = "[" *BLOBCHAR "]" *WSP          ; BLOBCHAR = any CHAR except "[" and "]"
#   subj-refwd      = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
#   subj-leader     = (*subj-blob subj-refwd) / WSP
#   subj-fwd        = subj-fwd-hdr subject subj-fwd-trl   ; "[fwd:" ... "]"
_TRAILER = re.compile(r"(?:\s*\(fwd\)|\s)+$", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\]\s*"
_LEADER = re.compile(rf"^(?:(?:{_BLOB})*(?:re|fwd?)\s*(?:{_BLOB})?:|\s+)", re.IGNORECASE)
_LEADING_BLOB = re.compile(rf"^{_BLOB}")
_WSP_RUN = re.compile(r"[ \t\r\n]+")


def base_subject(subject: str) -> str:
    """The base subject of ``subject`` per RFC 5256 §2.1 (case is kept; compare casefolded).

    (1) header unfolded and decoded by the caller; tabs and continuations become a single
    space, runs of spaces collapse; (2) strip trailing ``(fwd)`` and white space; (3) strip
    ``Re:``/``Fw:``/``Fwd:`` leaders with optional ``[blob]``s; (4) strip a leading
    ``[blob]`` unless that would leave nothing; repeat (3)-(4); (5) unwrap ``[fwd: ...]``
    and go back to (2).
    """
    text = _WSP_RUN.sub(" ", subject)
    while True:
        text = _TRAILER.sub("", text)  # step 2
        while True:  # steps 3 and 4 until nothing changes
            before = text
            while True:
                m = _LEADER.match(text)
                if not m or not m.group(0):
                    break
                text = text[m.end():]
            m = _LEADING_BLOB.match(text)
            if m and text[m.end():]:
                text = text[m.end():]
            if text == before:
                break
        # step 5
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            continue
        return text.strip(" ")
