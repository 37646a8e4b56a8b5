from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.server import Tidings

from .helpers import JmapClient, LiveServer, make_tidings


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
