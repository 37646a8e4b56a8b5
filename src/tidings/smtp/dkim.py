"""DKIM signing of outgoing mail (RFC 6376), with dkimpy.

Messages whose From domain is one of the server's local domains are signed with the configured
selector and key (RSA, or Ed25519 per RFC 8463); others are sent unsigned.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from email.parser import BytesHeaderParser
from email.utils import getaddresses

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# RFC 6376 §5.4.1: the fields that SHOULD be signed (those present are).
SIGNED_HEADERS = [
    b"from", b"reply-to", b"subject", b"date", b"to", b"cc", b"resent-date", b"resent-from", b"resent-to",
    b"resent-cc", b"in-reply-to", b"references", b"list-id", b"list-help", b"list-unsubscribe",
    b"list-subscribe", b"list-post", b"list-owner", b"list-archive", b"message-id", b"mime-version",
    b"content-type", b"content-transfer-encoding", b"auto-submitted",
]


class Signer:
    def __init__(self, selector: str, key_pem: bytes, domains: Iterable[str]) -> None:
        self.selector = selector.encode()
        self.domains = frozenset(d.lower() for d in domains)
        key = serialization.load_pem_private_key(key_pem, password=None)
        if isinstance(key, Ed25519PrivateKey):
            raw = key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            self.key = base64.b64encode(raw)
            self.algorithm = b"ed25519-sha256"
        else:
            self.key = key_pem
            self.algorithm = b"rsa-sha256"

    def domain_of(self, message: bytes) -> str | None:
        headers = BytesHeaderParser().parsebytes(message)
        found = getaddresses([str(v) for v in headers.get_all("From", [])])
        if not found:
            return None
        domain = found[0][1].rpartition("@")[2].lower()
        return domain if domain in self.domains else None

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature field on top, or unchanged when its From is not ours."""
        domain = self.domain_of(message)
        if domain is None:
            return message
        present = {line.split(b":", 1)[0].strip().lower() for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")}
        include = [h for h in SIGNED_HEADERS if h in present]
        signature = dkim.sign(
            message,
            self.selector,
            domain.encode(),
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=self.algorithm,
            include_headers=include,
        )
        return bytes(signature) + message
