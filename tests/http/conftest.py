from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tidings.http.app import App
from tidings.server import Tidings

from ..helpers import USING, asgi_request, basic, make_tidings


class Driver:
    """The ASGI app in process, with alice's credentials by default."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.tidings = app.tidings
        self.alice = basic("alice", "secret")
        self.bob = basic("bob", "hunter2")

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
             query: str = "", user: str | None = None) -> tuple[int, dict[str, str], bytes]:
        all_headers = {"Authorization": user or self.alice}
        all_headers.update(headers or {})
        return asyncio.run(asgi_request(self.app, method, path, body, all_headers, query))

    def api(self, body: bytes | dict[str, Any], headers: dict[str, str] | None = None,
            user: str | None = None) -> tuple[int, dict[str, str], Any]:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        status, out_headers, out = self.send("POST", "/jmap/api/", raw,
                                             {"Content-Type": "application/json", **(headers or {})}, user=user)
        return status, out_headers, orjson.loads(out) if out else None

    def calls(self, calls: list[list[Any]], user: str | None = None) -> list[list[Any]]:
        status, _, body = self.api({"using": USING, "methodCalls": calls}, user=user)
        assert status == 200, body
        return list(body["methodResponses"])


@pytest.fixture(scope="module")
def tidings_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tidings]:
    instance = make_tidings(Path(tmp_path_factory.mktemp("http")) / "data", cors_origins=["https://app.example"],
                            max_size_request=20_000, max_size_upload=1000, max_calls_in_request=5)
    instance.accounts.add_user("alice", "secret")
    instance.accounts.add_user("bob", "hunter2")
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def driver(tidings_module: Tidings) -> Iterator[Driver]:
    app = App(tidings_module)
    yield Driver(app)
    app.executor.shutdown()
