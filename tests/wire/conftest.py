from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers import JmapClient, LiveServer, fresh_user, make_tidings

_names = itertools.count()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server per module; tests that share it each get their own user (see `client`)."""
    tidings = make_tidings(Path(tmp_path_factory.mktemp("wire")) / "data")
    server = LiveServer(tidings).start()
    yield server
    server.stop()
    tidings.close()


@pytest.fixture
def client(live: LiveServer) -> Iterator[JmapClient]:
    token = fresh_user(live.tidings, f"user{next(_names)}")
    jmap = JmapClient(live.url, token)
    yield jmap
    jmap.close()
