"""Users, passwords and bearer tokens: administration (CLI) and authentication (HTTP).

Passwords are hashed with argon2id. Verifying one costs tens of milliseconds by design, so a
successful verification is remembered, keyed by the user and a digest of the password and the stored
hash; a password change or removal changes the stored hash and so invalidates it at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .store.base import Store, Transaction, User

_hasher = PasswordHasher()
_LOGIN = re.compile(r"[A-Za-z0-9._+-]+(@[A-Za-z0-9.-]+)?")
TOKEN_PREFIX = "tdg_"


class AccountError(Exception):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class Accounts:
    store: Store
    domain: str
    # Runs inside the new account's first write transaction (e.g. to create default mailboxes).
    provisioners: list[Callable[[Transaction], None]]

    def __post_init__(self) -> None:
        self._verified: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def address_for(self, login: str) -> str:
        return login if "@" in login else f"{login}@{self.domain}"

    def add_user(self, login: str, password: str) -> User:
        if not _LOGIN.fullmatch(login) or len(login) > 255:
            raise AccountError(f"invalid user name {login!r}: use letters, digits and . _ + - (and one @)")
        if not password:
            raise AccountError("the password must not be empty")
        with self.store.directory(write=True) as directory:
            if directory.user(login) is not None:
                raise AccountError(f"user {login!r} already exists")
            user = directory.add_user(login, self.address_for(login), hash_password(password))
        with self.store.write(user.account_id) as tx:
            for provision in self.provisioners:
                provision(tx)
        return user

    def set_password(self, login: str, password: str) -> None:
        if not password:
            raise AccountError("the password must not be empty")
        with self.store.directory(write=True) as directory:
            if not directory.set_password(login, hash_password(password)):
                raise AccountError(f"no user {login!r}")

    def remove_user(self, login: str) -> None:
        with self.store.directory(write=True) as directory:
            if not directory.remove_user(login):
                raise AccountError(f"no user {login!r}")

    def users(self) -> list[User]:
        with self.store.directory() as directory:
            return directory.users()

    def create_token(self, login: str, label: str | None = None) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.store.directory(write=True) as directory:
            user = directory.user(login)
            if user is None:
                raise AccountError(f"no user {login!r}")
            label = label or f"token-{secrets.token_hex(4)}"
            if any(existing == label for existing, _ in directory.tokens(user.id)):
                raise AccountError(f"user {login!r} already has a token labelled {label!r}")
            directory.add_token(user.id, token_digest(token), label)
        return token

    def revoke_token(self, login: str, label: str) -> None:
        with self.store.directory(write=True) as directory:
            user = directory.user(login)
            if user is None:
                raise AccountError(f"no user {login!r}")
            if directory.revoke_token(user.id, label) == 0:
                raise AccountError(f"user {login!r} has no token labelled {label!r}")

    def tokens(self, login: str) -> list[tuple[str, int]]:
        with self.store.directory() as directory:
            user = directory.user(login)
            if user is None:
                raise AccountError(f"no user {login!r}")
            return directory.tokens(user.id)

    # -- authentication

    def check_password(self, login: str, password: str) -> User | None:
        with self.store.directory() as directory:
            user = directory.user(login)
        if user is None:
            # Spend the same time as a real check so that user names cannot be probed by timing.
            _verify_dummy(password)
            return None
        key = (login, hashlib.sha256(password.encode("utf-8", "surrogateescape")).hexdigest())
        with self._lock:
            if self._verified.get(key) == user.password_hash:
                return user
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = user.password_hash
        return user

    def check_token(self, token: str) -> User | None:
        with self.store.directory() as directory:
            return directory.user_for_token(token_digest(token))


_DUMMY_HASH = _hasher.hash("not a password")


def _verify_dummy(password: str) -> None:
    try:
        _hasher.verify(_DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        pass
