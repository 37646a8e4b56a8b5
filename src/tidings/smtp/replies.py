"""Every SMTP/LMTP reply Tidings sends itself, by name (RFC 5321 §4.2 codes, RFC 3463 enhanced
status codes). Replies aiosmtpd sends for protocol errors (syntax, sequence, line length, SIZE) are
its own."""

from __future__ import annotations

# MAIL
SENDER_OK = "250 2.1.0 Sender OK"

# RCPT
RECIPIENT_OK = "250 2.1.5 Recipient OK"
UNKNOWN_USER = "550 5.1.1 No such user here"
# RFC 5321 §3.6.2 / RFC 3463 5.7.1: this server is not a relay for other domains.
RELAY_DENIED = "550 5.7.1 Relaying denied: not a local domain"
BAD_RECIPIENT = "501 5.1.3 Bad recipient address syntax"
# RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted; past the limit, 452.
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
RCPT_PARAMETERS = "555 5.5.4 RCPT TO parameters not supported"
LOOKUP_FAILED = "451 4.3.0 Temporary recipient lookup failure, try again later"

# After DATA (for LMTP, one per accepted recipient, RFC 2033 §4.2)
DELIVERED = "250 2.0.0 Delivered"
DUPLICATE = "250 2.0.0 Delivered (duplicate suppressed)"
STORE_FAILED = "451 4.3.0 Could not store the message, try again later"
NUL_BYTES = "554 5.6.0 Message contains NUL characters"
# RFC 5321 §2.3.8: lines end with CRLF; a lone CR or LF is not a line ending (nor accepted as one).
BARE_LINE_ENDING = "554 5.6.0 Message contains a bare CR or LF"
# RFC 6532 §3, RFC 6531 §3.2: UTF-8 in header fields needs SMTPUTF8 on MAIL FROM.
EIGHT_BIT_HEADERS = "554 5.6.7 Non-ASCII header fields need SMTPUTF8"
NO_HEADERS = "554 5.6.0 Message has no header fields"

# Anything unexpected
INTERNAL_ERROR = "451 4.3.0 Internal error, try again later"
