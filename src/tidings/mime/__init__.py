"""MIME for Tidings: bytes in, values out (RFC 5322, MIME, RFC 8621 §4).

Knows nothing of storage, the JMAP wire or HTTP.
"""

from tidings.mime.build import BlobNotFound, BuildError, FetchBlob, build_message
from tidings.mime.decode import (
    decode_bytes,
    decode_encoded_words,
    decode_header_bytes,
    lookup_charset,
    parse_parameters,
)
from tidings.mime.headers import (
    FORMS,
    EmailAddress,
    EmailAddressGroup,
    HeaderProperty,
    InvalidHeaderProperty,
    as_addresses,
    as_date,
    as_grouped_addresses,
    as_message_ids,
    as_raw,
    as_text,
    as_urls,
    form_allowed,
    header_values,
    lookup_header,
    parse_header_form,
    parse_header_property,
)
from tidings.mime.html import escape, html_to_text
from tidings.mime.parse import (
    PREVIEW_LENGTH,
    BodyValue,
    ExtractedPart,
    ParsedMessage,
    SearchText,
    extract_part,
    parse_message,
    truncate_utf8,
)
from tidings.mime.subject import base_subject

__all__ = [
    "FORMS",
    "PREVIEW_LENGTH",
    "BlobNotFound",
    "BodyValue",
    "BuildError",
    "EmailAddress",
    "EmailAddressGroup",
    "ExtractedPart",
    "FetchBlob",
    "HeaderProperty",
    "InvalidHeaderProperty",
    "ParsedMessage",
    "SearchText",
    "as_addresses",
    "as_date",
    "as_grouped_addresses",
    "as_message_ids",
    "as_raw",
    "as_text",
    "as_urls",
    "base_subject",
    "build_message",
    "decode_bytes",
    "decode_encoded_words",
    "decode_header_bytes",
    "escape",
    "extract_part",
    "form_allowed",
    "header_values",
    "html_to_text",
    "lookup_charset",
    "lookup_header",
    "parse_header_form",
    "parse_header_property",
    "parse_message",
    "parse_parameters",
    "truncate_utf8",
]
