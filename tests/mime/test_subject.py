"""RFC 5256 §2.1 base subject."""

from __future__ import annotations

import pytest

from tidings.mime.subject import base_subject


@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("Re: test", "test"),
        ("RE: Re: re: test", "test"),
        ("Fw: test", "test"),
        ("FWD: test", "test"),
        ("Re: [list] Re: topic", "topic"),
        ("[list] Re: topic", "topic"),
        ("Re [2]: topic", "topic"),
        ("test (fwd)", "test"),
        ("test (FWD) (fwd)  ", "test"),
        ("[fwd: Re: wrapped]", "wrapped"),
        ("[Fwd: [fwd: twice]]", "twice"),
        ("  Fwd:  spaced\tout  ", "spaced out"),
        ("[only a blob]", "[only a blob]"),
        ("[a] [b]", "[b]"),
        ("Re:", ""),
        ("", ""),
        ("Report: results", "Report: results"),
        ("Résumé: ok", "Résumé: ok"),
        ("Re: Fwd: [list] Re: (fwd) x (fwd)", "(fwd) x"),
    ],
)
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base
