"""The event source (RFC 8620 §7.3) in process: state events, closeafter, disconnects, shutdown."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tidings.http.app import App

from ..helpers import basic
from .conftest import Driver

Scenario = Callable[[App, "Stream"], Awaitable[None]]


class Stream:
    """One event-source request: what it sent, and a way to disconnect it."""

    def __init__(self) -> None:
        self.messages: list[MutableMapping[str, Any]] = []
        self.disconnect = asyncio.Event()
        self.got_data = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if not hasattr(self, "_sent_request"):
            self._sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            self.got_data.set()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")

    @property
    def ended_cleanly(self) -> bool:
        last = self.messages[-1]
        return last["type"] == "http.response.body" and not last.get("more_body", False)


def _run(driver: Driver, query: str, scenario: Scenario) -> tuple[App, Stream]:
    app = App(driver.tidings)

    async def main() -> Stream:
        lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await lifespan.put({"type": "lifespan.startup"})
        started = asyncio.Event()

        async def lifespan_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()

        life = asyncio.create_task(app({"type": "lifespan"}, lifespan.get, lifespan_send))
        await started.wait()
        stream = Stream()
        scope = {"type": "http", "method": "GET", "path": "/jmap/eventsource/", "query_string": query.encode(),
                 "headers": [(b"authorization", basic("alice", "secret").encode())]}
        request = asyncio.create_task(app(scope, stream.receive, stream.send))
        await asyncio.wait_for(stream.got_data.wait(), 10)
        await scenario(app, stream)
        await asyncio.wait_for(request, 10)
        await lifespan.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(life, 10)
        return stream

    return app, asyncio.run(main())


_names = itertools.count()


def _change_a_mailbox(driver: Driver) -> None:
    name = f"event-source-{next(_names)}"
    driver.calls([["Mailbox/set", {"accountId": "A1", "create": {"n": {"name": name}}}, "c"]])


def test_closeafter_state_sends_one_state_event_and_ends(driver: Driver) -> None:
    async def scenario(app: App, stream: Stream) -> None:
        await asyncio.get_running_loop().run_in_executor(None, _change_a_mailbox, driver)

    app, stream = _run(driver, "types=*&closeafter=state&ping=0", scenario)
    assert stream.messages[0]["status"] == 200
    assert b"event: state" in stream.body and b'"Mailbox"' in stream.body
    assert stream.ended_cleanly
    assert len(app.hub) == 0


def test_a_client_disconnect_ends_the_stream_and_drops_its_subscription(driver: Driver) -> None:
    async def scenario(app: App, stream: Stream) -> None:
        assert len(app.hub) == 1
        stream.disconnect.set()

    app, stream = _run(driver, "types=*&closeafter=no&ping=0", scenario)
    assert len(app.hub) == 0
    assert b"event: state" not in stream.body


def test_shutdown_ends_open_streams_cleanly(driver: Driver) -> None:
    async def scenario(app: App, stream: Stream) -> None:
        app.begin_shutdown()

    app, stream = _run(driver, "types=Mailbox&closeafter=no&ping=30", scenario)
    assert stream.ended_cleanly
    assert len(app.hub) == 0


def test_bad_event_source_arguments_are_a_400_problem(driver: Driver) -> None:
    status, headers, _ = driver.send("GET", "/jmap/eventsource/", query="closeafter=maybe")
    assert status == 400 and headers["content-type"] == "application/problem+json"
    status, _, _ = driver.send("GET", "/jmap/eventsource/", query="ping=-1")
    assert status == 400
    assert driver.send("GET", "/jmap/eventsource/", user=" ")[0] == 401
