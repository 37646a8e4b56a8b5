"""The Session resource (RFC 8620 §2)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .context import Principal


def session_object(
    principal: Principal,
    capabilities: dict[str, dict[str, Any]],
    *,
    api_url: str,
    download_url: str,
    upload_url: str,
    event_source_url: str,
) -> dict[str, Any]:
    accounts = {
        account.id: {
            "name": account.name,
            "isPersonal": account.is_personal,
            "isReadOnly": account.is_read_only,
            "accountCapabilities": account.capabilities,
        }
        for account in principal.accounts.values()
    }
    session: dict[str, Any] = {
        "capabilities": capabilities,
        "accounts": accounts,
        "primaryAccounts": principal.primary_accounts,
        "username": principal.username,
        "apiUrl": api_url,
        "downloadUrl": download_url,
        "uploadUrl": upload_url,
        "eventSourceUrl": event_source_url,
    }
    session["state"] = session_state(session)
    return session


_URL_KEYS = frozenset({"state", "apiUrl", "downloadUrl", "uploadUrl", "eventSourceUrl"})


def session_state(session: dict[str, Any]) -> str:
    """A short digest of the session's content: it changes exactly when the content does.

    The URLs are left out: they depend on the address a client used to reach the server, while the
    state must be the same for every client of the same user (it is echoed in every API response).
    """
    content = {k: v for k, v in session.items() if k not in _URL_KEYS}
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
