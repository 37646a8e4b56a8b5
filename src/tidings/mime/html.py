"""HTML to plain text for previews and search, and HTML escaping."""

from __future__ import annotations

import html as _html
import re
from html.parser import HTMLParser

__all__ = ["escape", "html_to_text"]

_BLOCK = frozenset(
    {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption",
     "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
     "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"}
)
_HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript", "object", "svg"})
_SPACES = re.compile(r"[ \t\f\v\u00a0\u200b\r]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")


class _TextExtractor(HTMLParser):
    def __init__(self, limit: int | None) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0
        self.size = 0
        self.limit = limit

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCK:
            self.out.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.out.append(data)
            self.size += len(data)


def html_to_text(html: str, *, limit: int | None = None) -> str:
    """Readable text of an HTML document: no tags, scripts or styles; entities decoded;
    runs of spaces collapsed and blank lines squeezed. With ``limit``, conversion may stop
    once about that many characters of text were produced (for previews).
    """
    parser = _TextExtractor(limit)
    try:
        if limit is None:
            parser.feed(html)
        else:
            step = max(4096, limit * 8)
            for start in range(0, len(html), step):
                parser.feed(html[start:start + step])
                if parser.size > limit * 2:
                    break
        parser.close()
    except (AssertionError, ValueError):  # pragma: no cover - html.parser is lenient
        pass
    text = _SPACES.sub(" ", "".join(parser.out))
    lines = [line.strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def escape(text: str) -> str:
    """Escape ``&``, ``<``, ``>``, ``"`` and ``'`` for HTML text and attribute values."""
    return _html.escape(text, quote=True)
