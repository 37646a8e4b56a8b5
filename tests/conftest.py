from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tidings.server import Tidings

from . import stores
from .helpers import JmapClient, LiveServer, make_tidings
from .push.pushtools import PushEndpoint

# -- every test that opens a store runs once per backend (tests/stores.py) --------------------------

_STORE_WORDS = ("make_tidings", "Tidings(", "LiveServer(", "open_store(", "store_backend")
_mentions_cache: dict[str, bool] = {}


def _mentions_store(module: ModuleType | None) -> bool:
    if module is None:
        return False
    name = module.__name__
    if name not in _mentions_cache:
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            source = ""
        _mentions_cache[name] = any(word in source for word in _STORE_WORDS)
    return _mentions_cache[name]


def _uses_store(metafunc: pytest.Metafunc) -> bool:
    if _mentions_store(metafunc.module):
        return True
    for name in metafunc.fixturenames:
        if name == "store_backend":
            continue
        for fixturedef in metafunc._arg2fixturedefs.get(name, ()):
            if _mentions_store(inspect.getmodule(fixturedef.func)):
                return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: the test checks something only the SQLite store has")


def pytest_report_header(config: pytest.Config) -> list[str]:
    reason = stores.skip_reason()
    lines = [f"store backends: {', '.join(stores.backends())}"]
    return lines + ([f"note: {reason}"] if reason else [])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_backend" not in metafunc.fixturenames or metafunc.definition.get_closest_marker("sqlite_only"):
        return
    if _uses_store(metafunc):
        metafunc.parametrize("store_backend", stores.backends(), indirect=True, scope="module")


@pytest.fixture(scope="module", autouse=True)
def store_backend(request: Any) -> Iterator[str]:
    """The backend `make_tidings` opens for this test: "sqlite" or "postgresql"."""
    backend = getattr(request, "param", stores.SQLITE)
    if backend == stores.POSTGRESQL:
        problem = stores.postgres_problem()
        if problem is not None:
            if stores.REQUIRE_POSTGRES:
                pytest.fail(f"{problem} (TIDINGS_REQUIRE_POSTGRES is set)", pytrace=False)
            pytest.skip(problem)
    elif backend != stores.SQLITE:
        pytest.fail(f"unknown backend {backend!r} in TIDINGS_TEST_STORES", pytrace=False)
    previous = stores.current["backend"], os.environ.get("TIDINGS_STORE")
    stores.current["backend"] = backend
    yield backend
    stores.current["backend"] = previous[0]
    if previous[1] is None:
        os.environ.pop("TIDINGS_STORE", None)
    else:
        os.environ["TIDINGS_STORE"] = previous[1]


@pytest.fixture
def tidings(tmp_path: Path) -> Iterator[Tidings]:
    instance = make_tidings(tmp_path / "data")
    instance.accounts.add_user("alice", "secret")
    instance.accounts.add_user("bob", "hunter2")
    yield instance
    instance.close()


@pytest.fixture
def server(tidings: Tidings) -> Iterator[LiveServer]:
    live = LiveServer(tidings).start()
    yield live
    live.stop()


@pytest.fixture
def alice(server: LiveServer) -> Iterator[JmapClient]:
    client = server.client("alice", "secret")
    yield client
    client.close()


@pytest.fixture
def bob(server: LiveServer) -> Iterator[JmapClient]:
    client = server.client("bob", "hunter2")
    yield client
    client.close()


@pytest.fixture
def endpoint() -> Iterator[PushEndpoint]:
    """A Web Push service on loopback (tests/push/pushtools.py) that records what it receives."""
    service = PushEndpoint()
    yield service
    service.close()
