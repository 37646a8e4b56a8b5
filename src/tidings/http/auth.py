"""HTTP authentication: Basic (RFC 7617) against account passwords, and Bearer tokens (RFC 6750).

Each success also names the credential used (store/base.py credential ids), which push subscriptions
are tied to (RFC 8620 §7.2).
"""

from __future__ import annotations

import base64
import binascii

from ..accounts import Accounts, token_digest
from ..store.base import User, password_credential, token_credential

CHALLENGE = b'Basic realm="Tidings", charset="UTF-8", Bearer realm="Tidings"'


def authenticate(accounts: Accounts, authorization: str | None) -> tuple[User, str] | None:
    """The user and the credential id of an Authorization header, or None."""
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
        user = accounts.check_password(login, password)
        # The hash just verified against, so the id names exactly the password that was accepted.
        return None if user is None else (user, password_credential(user.id, user.password_hash))
    if scheme == "bearer" and credentials:
        user = accounts.check_token(credentials)
        return None if user is None else (user, token_credential(token_digest(credentials)))
    return None
