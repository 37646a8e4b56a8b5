"""MIME for Tidings: bytes in, values out (RFC 5322, MIME, RFC 8621 §4).

Knows nothing of storage, the JMAP wire or HTTP.
"""
