"""HTTP authentication: Basic (RFC 7617) against account passwords, and Bearer tokens (RFC 6750)."""

from __future__ import annotations

import base64
import binascii

from ..accounts import Accounts
from ..store.base import User

CHALLENGE = b'Basic realm="Tidings", charset="UTF-8", Bearer realm="Tidings"'


def authenticate(accounts: Accounts, authorization: str | None) -> User | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        login, sep, password = decoded.partition(":")
        if not sep or not login:
            return None
        return accounts.check_password(login, password)
    if scheme == "bearer" and credentials:
        return accounts.check_token(credentials)
    return None
