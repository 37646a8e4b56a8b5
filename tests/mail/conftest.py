"""Fixtures for the JMAP Mail tests: the same real server as tests/conftest.py, without the costs these
tests do not exercise (fsync, argon2, delayed ACKs), and a module-wide server for read-only tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from tidings import accounts
from tidings.server import Tidings

from ..helpers import JmapClient, LiveServer, make_tidings

pytest.register_assert_rewrite("tests.mail.mailtools")


@pytest.fixture(scope="module", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """argon2 at its cheapest: each test starts a server with two users."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        yield


def fast_tidings(data: Path) -> Tidings:
    instance = make_tidings(data, sqlite_synchronous="OFF")
    instance.store.blobs.fsync = False
    instance.accounts.add_user("alice", "secret")
    instance.accounts.add_user("bob", "hunter2")
    return instance


def start(instance: Tidings) -> LiveServer:
    return LiveServer(instance).start()


@pytest.fixture
def tidings(tmp_path: Path) -> Iterator[Tidings]:
    instance = fast_tidings(tmp_path / "data")
    yield instance
    instance.close()


@pytest.fixture
def server(tidings: Tidings) -> Iterator[LiveServer]:
    live = start(tidings)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, cheap_password_hashing: None, store_backend: str
) -> Iterator[LiveServer]:
    """One server for a whole module (per backend), for tests that only read what the module set up."""
    instance = fast_tidings(tmp_path_factory.mktemp("mail") / "data")
    live = start(instance)
    yield live
    live.stop()
    instance.close()


@pytest.fixture(scope="module")
def shared_alice(shared_server: LiveServer) -> Iterator[JmapClient]:
    client = shared_server.client("alice", "secret")
    yield client
    client.close()
