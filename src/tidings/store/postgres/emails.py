"""Emails on PostgreSQL: the SQLite repository's SQL (see dialect.py) with its own full-text index.

Full-text search uses a tsvector per searchable field plus one for the whole document, indexed with
GIN, under the `tidings_search` configuration (unaccent + simple: case- and accent-insensitive, no
stemming, as SQLite's unicode61 tokenizer). Text is split into words here, the same way for the
index and the queries, so both backends find the same messages. A search term is a phrase
(`a <-> b`), and a word that is not in quotes also matches as a prefix (`:*`), like FTS5's `"a b"*`.
Snippets come from ts_headline with the markers the mail layer expects (\\x01, \\x02).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ..base import EmailFilter, SearchDocument
from ..sqlite.emails import SqliteEmails

_WORD = re.compile(r"[^\W_]+")
# ts_headline options: the subject in full; one fragment of the body, about as long as FTS5's.
_SUBJECT_OPTIONS = "HighlightAll=TRUE, StartSel=\"\x01\", StopSel=\"\x02\""
_BODY_OPTIONS = ("StartSel=\"\x01\", StopSel=\"\x02\", MaxWords=24, MinWords=12, ShortWord=0, MaxFragments=1,"
                 " FragmentDelimiter=\"…\"")
_TO_TSQUERY = "to_tsquery('tidings_search', ?)"
_MAX_INDEXED = 500_000  # characters per field: a tsvector is limited to 1 MB
_COLUMNS = {
    "text": ("subject_tsv", "from_tsv", "to_tsv", "cc_tsv", "bcc_tsv", "body_tsv"),
    "from": ("from_tsv",),
    "to": ("to_tsv",),
    "cc": ("cc_tsv",),
    "bcc": ("bcc_tsv",),
    "subject": ("subject_tsv",),
    "body": ("body_tsv",),
}


def words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFC", text[:_MAX_INDEXED]))


def tsquery(term: tuple[bool, str]) -> str | None:
    """One search term as to_tsquery input: a phrase, its last word a prefix unless quoted."""
    is_phrase, text = term
    found = words(text)
    if not found:
        return None
    parts = [f"'{w}'" for w in found]
    if not is_phrase:
        parts[-1] += ":*"
    return " <-> ".join(parts)


class PgEmails(SqliteEmails):
    def index_text(self, email_id: int, document: SearchDocument) -> None:
        fields = [" ".join(words(v)) for v in (document.subject, document.from_, document.to, document.cc,
                                               document.bcc, document.body + " " + document.attachments)]
        self.conn.execute(
            "INSERT INTO email_fts (email_id, account_id, subject, body, subject_tsv, from_tsv, to_tsv, cc_tsv,"
            " bcc_tsv, body_tsv, document) SELECT ?, ?, ?, ?, s, f, t, c, b, x, s || f || t || c || b || x FROM"
            " (SELECT to_tsvector('tidings_search', ?) AS s, to_tsvector('tidings_search', ?) AS f,"
            " to_tsvector('tidings_search', ?) AS t, to_tsvector('tidings_search', ?) AS c,"
            " to_tsvector('tidings_search', ?) AS b, to_tsvector('tidings_search', ?) AS x) AS v",
            (email_id, self.account_pk, document.subject, document.body[:_MAX_INDEXED], *fields),
        )

    def unindex_text(self, email_id: int) -> None:
        self.conn.execute("DELETE FROM email_fts WHERE email_id = ?", (email_id,))

    def _text_condition(self, kind: str, terms: list[tuple[bool, str]]) -> tuple[str, list[Any]]:
        queries = [q for q in map(tsquery, terms) if q is not None]
        if not queries:
            return "1 = 1", []
        # The GIN index finds candidates by the whole document; each term must then match in one of
        # the filter's fields (a phrase never spans two fields).
        conditions = ["f.document @@ to_tsquery('tidings_search', ?)"]
        params: list[Any] = [" & ".join(f"({q})" for q in queries)]
        for query in queries:
            either = " OR ".join(f"f.{column} @@ to_tsquery('tidings_search', ?)" for column in _COLUMNS[kind])
            conditions.append(f"({either})")
            params.extend([query] * len(_COLUMNS[kind]))
        return f"e.id IN (SELECT f.email_id FROM email_fts f WHERE {' AND '.join(conditions)})", params

    def snippets(self, email_ids: list[int], fts_query: EmailFilter) -> dict[int, tuple[str | None, str | None]]:
        subject_terms: list[str] = []
        body_terms: list[str] = []

        def walk(node: EmailFilter, negated: bool) -> None:
            kind = node[0]
            if kind in ("and", "or", "not"):
                for child in node[1]:
                    walk(child, negated != (kind == "not"))
            elif kind in _COLUMNS and not negated:
                queries = [q for q in map(tsquery, node[1]) if q is not None]
                if kind in ("text", "subject"):
                    subject_terms.extend(queries)
                if kind in ("text", "body"):
                    body_terms.extend(queries)

        walk(fts_query, False)
        out: dict[int, tuple[str | None, str | None]] = {}
        if not email_ids or not (subject_terms or body_terms):
            return out
        # No terms for a field: a NULL query, which matches nothing. ts_headline drops what its parser
        # takes for HTML tags, but snippets keep the text as it is (the mail layer escapes it), so "<"
        # travels as \x03 and comes back after.
        subject = ("CASE WHEN subject_tsv @@ sq"
                   " THEN ts_headline('tidings_search', replace(subject, '<', chr(3)), sq, ?) END")
        body = "CASE WHEN body_tsv @@ bq THEN ts_headline('tidings_search', replace(body, '<', chr(3)), bq, ?) END"
        queries = ", ".join(
            f"{_TO_TSQUERY if terms else 'NULL::tsquery'} AS {name}"
            for terms, name in ((subject_terms, "sq"), (body_terms, "bq"))
        )
        params = [_SUBJECT_OPTIONS, _BODY_OPTIONS]
        params += [" | ".join(f"({q})" for q in terms) for terms in (subject_terms, body_terms) if terms]
        marks = ",".join("?" * len(email_ids))
        rows = self.conn.execute(
            f"SELECT email_id, {subject}, {body} FROM email_fts, (SELECT {queries}) AS q WHERE email_id IN ({marks})",
            (*params, *email_ids),
        )
        for email_id, marked_subject, marked_body in rows:
            out[email_id] = (_restore(marked_subject), _restore(_trim(marked_body)))
        return out


def _restore(text: str | None) -> str | None:
    return text.replace("\x03", "<") if text else text


def _trim(fragment: str | None) -> str | None:
    return " ".join(fragment.split()) if fragment else fragment
