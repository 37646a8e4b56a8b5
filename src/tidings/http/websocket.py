"""JMAP over WebSocket (RFC 8887): API requests and push on one connection at /jmap/ws.

Theory of operation
-------------------
* Opening (§4.2): the upgrade request must offer the `jmap` subprotocol and be authenticated like any
  HTTP request (Authorization header), or, for browsers, carry a single-use `access_token` query
  parameter (docs/push.md). A refusal is an HTTP response (400, 401 or 403 with a problem document)
  where the server supports it, else a closed handshake.
* Messages (§4.3) are JSON objects in text frames, told apart by `@type`:
  - `Request` (§4.3.2) runs through the same `Tidings.api` path as an HTTP API request, in the thread
    pool, with the same limits: maxSizeRequest per message, maxCallsInRequest, and one
    maxConcurrentRequests slot per request in flight, shared with the user's HTTP requests. Several
    requests may be in flight on one socket; each answer is a `Response` (§4.3.3) or a `RequestError`
    (§4.3.4) carrying the request's `id` as `requestId`, in whatever order they finish.
  - `WebSocketPushEnable` (§4.3.5.2) subscribes the connection to state changes of `dataTypes` (null:
    all); with a `pushState` from an earlier connection, what changed since is sent at once.
    `WebSocketPushDisable` (§4.3.5.3) stops it. Pushed `StateChange` objects (§4.3.5.1) carry a
    `pushState` encoding every state the client was told of.
  - Anything that is not JSON is answered with a `notJSON` RequestError, an object of unknown `@type`
    with `notRequest`; a binary frame closes the connection (1003: JMAP messages are text, §4.1).
* An idle connection holds its ASGI task, this small `Connection` object and, with push enabled, one
  record in the hub; changes that arrive together are merged into one StateChange.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson

from ..jmap.context import Principal
from ..jmap.errors import RequestError
from ..jmap.request import request_from_json
from ..push.hub import Subscription, decode_push_state, encode_push_state, filter_types, missed_changes
from .asgi import Receive, Scope, Send, header
from .auth import CHALLENGE

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("tidings.http")

SUBPROTOCOL = "jmap"  # RFC 8887 §4.2 (IANA WebSocket Subprotocol Name Registry)
PATHS = ("/jmap/ws", "/jmap/ws/")
CLOSE_UNSUPPORTED_DATA = 1003  # RFC 6455 §7.4.1
CLOSE_POLICY_VIOLATION = 1008  # RFC 6455 §7.4.1: here, the credentials were revoked


async def serve(app: App, scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if scope["path"] not in PATHS:
        await _deny(scope, send, 404, "Not Found", "No WebSocket endpoint here; see the session.")
        return
    # RFC 8887 §4.2: the client MUST offer the "jmap" subprotocol.
    if SUBPROTOCOL not in scope.get("subprotocols", []):
        await _deny(scope, send, 400, "Bad Request", "The 'jmap' WebSocket subprotocol is required.")
        return
    origin = header(scope, b"origin")
    if origin is not None and not _origin_allowed(app, scope, origin):
        # A page of another site must not ride on credentials the browser holds for this one.
        await _deny(scope, send, 403, "Forbidden", "This origin may not open a JMAP WebSocket.")
        return
    found = await app.run(app.authenticate_push, scope)
    if found is None:
        await _deny(
            scope, send, 401, "Unauthorized", "Valid credentials are required.", [(b"www-authenticate", CHALLENGE)]
        )
        return
    user, principal = found
    await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
    connection = Connection(app, user.id, principal, send)
    try:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                break
            if kind != "websocket.receive":
                continue
            text = message.get("text")
            if text is None:
                # §4.1: JMAP messages are text frames; a binary one is data we cannot accept.
                await connection.send_json_or_close(CLOSE_UNSUPPORTED_DATA)
                break
            connection.receive_text(text)
    finally:
        connection.close()


def _origin_allowed(app: App, scope: Scope, origin: str) -> bool:
    if app.cors.allowed(origin):
        return True
    own = app.base_url(scope).rstrip("/")
    return origin.rstrip("/") in (own, "ws" + own[4:] if own.startswith("http") else own)


async def _deny(
    scope: Scope, send: Send, status: int, title: str, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


class Connection:
    """One JMAP WebSocket: requests in flight and, when enabled, its push subscription."""

    __slots__ = (
        "app",
        "closed",
        "flushing",
        "known",
        "pending",
        "principal",
        "push",
        "push_generation",
        "send",
        "tasks",
        "user_id",
    )

    def __init__(self, app: App, user_id: int, principal: Principal, send: Send) -> None:
        self.app = app
        self.user_id = user_id
        self.principal = principal
        self.send = send
        self.tasks: set[asyncio.Task[None]] = set()
        self.push: Subscription | None = None
        self.push_generation = 0
        self.known: dict[str, dict[str, str]] = {}
        self.pending: dict[str, dict[str, str]] = {}
        self.flushing = False
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self._disable_push()
        for task in list(self.tasks):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send_text(self, text: str) -> None:
        if self.closed:
            return
        try:
            await self.send({"type": "websocket.send", "text": text})
        except Exception:  # the peer went away; the receive loop will hear of it
            self.closed = True

    async def send_json(self, value: dict[str, Any]) -> None:
        await self.send_text(orjson.dumps(value).decode())

    async def send_json_or_close(self, code: int) -> None:
        try:
            await self.send({"type": "websocket.close", "code": code})
        except Exception:
            pass
        self.closed = True

    async def request_error(self, error: RequestError, request_id: str | None) -> None:
        # §4.3.4: a problem details object with "@type": "RequestError" and the request's id.
        await self.send_json({"@type": "RequestError", "requestId": request_id, **error.to_problem()})

    # -- incoming messages

    def receive_text(self, text: str) -> None:
        limit = self.app.tidings.limits.max_size_request
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode("utf-8", "replace")) > limit):
            error = RequestError("limit", f"The request is larger than {limit} octets.", limit="maxSizeRequest")
            self._spawn(self.request_error(error, None))
            return
        try:
            data = orjson.loads(text)
        except (orjson.JSONDecodeError, RecursionError) as exc:
            self._spawn(self.request_error(RequestError("notJSON", f"The message is not I-JSON: {exc}"), None))
            return
        kind = data.get("@type") if isinstance(data, dict) else None
        raw_id = data.get("id") if isinstance(data, dict) else None
        request_id = raw_id if isinstance(raw_id, str) else None
        if kind == "Request":
            if raw_id is not None and request_id is None:
                self._spawn(self.request_error(RequestError("notRequest", "'id' must be a String."), None))
                return
            self._spawn(self._run_request(data, request_id))
        elif kind == "WebSocketPushEnable":
            self._spawn(self._enable_push(data))
        elif kind == "WebSocketPushDisable":
            self._disable_push()
        else:
            error = RequestError(
                "notRequest",
                "Messages must be objects with '@type' Request, WebSocketPushEnable or WebSocketPushDisable.",
            )
            self._spawn(self.request_error(error, request_id))

    async def _run_request(self, data: dict[str, Any], request_id: str | None) -> None:
        app = self.app

        def work() -> dict[str, Any] | RequestError | None:
            # An HTTP request checks its credentials each time, so a revoked token or a changed
            # password stops it at once; a socket authenticated once must not outlive them either.
            # None: they are gone, and the socket is closed.
            if not self._credential_live():
                return None
            # The same path, and the same per-user concurrency slots, as an HTTP API request.
            try:
                app.requests.acquire(self.user_id)
            except Exception as exc:
                return RequestError("limit", "Too many concurrent requests.", limit=getattr(exc, "limit", None))
            try:
                return app.tidings.api(self.principal, request_from_json(data)).response
            except RequestError as error:
                return error
            finally:
                app.requests.release(self.user_id)

        result = await app.run(work)
        if result is None:
            log.info("websocket of user %s closed: its credentials were revoked", self.user_id)
            await self.send_json_or_close(CLOSE_POLICY_VIOLATION)
            self.close()
            return
        if isinstance(result, RequestError):
            await self.request_error(result, request_id)
            return
        # §4.3.3: a Response object with "@type" and the id of the request it answers.
        await self.send_json({"@type": "Response", "requestId": request_id, **result})

    def _credential_live(self) -> bool:
        credential = self.principal.credential
        with self.app.tidings.store.push() as tx:
            return bool(credential) and tx.credential_is_live(self.user_id, credential)

    # -- push (§4.3.5)

    async def _enable_push(self, data: dict[str, Any]) -> None:
        data_types = data.get("dataTypes")
        push_state = data.get("pushState")
        types_ok = data_types is None or (isinstance(data_types, list) and all(isinstance(t, str) for t in data_types))
        if not types_ok or (push_state is not None and not isinstance(push_state, str)):
            error = RequestError("notRequest", "'dataTypes' must be a String[] or null and 'pushState' a String.")
            await self.request_error(error, None)
            return
        self._disable_push()
        self.push_generation += 1
        generation = self.push_generation
        types = frozenset(data_types) if data_types is not None else None
        # Subscribe first, then read the current states, so no change can fall between the two.
        self.push = self.app.hub.subscribe(self.principal.accounts, types, self._notify)
        tidings = self.app.tidings

        def states() -> dict[str, dict[str, str]]:
            current = {}
            for account_id in self.principal.accounts:
                with tidings.store.read(account_id) as tx:
                    current[account_id] = tx.all_states()
            return current

        current = filter_types(await self.app.run(states), types)
        if generation != self.push_generation or self.closed:
            return

        previous = decode_push_state(push_state) if push_state else None
        self.known = current
        if previous is not None:
            # §4.3.5.2: with the pushState of an earlier connection, send what changed since then.
            missed = missed_changes(current, previous)
            for account_id, changed in missed.items():
                self.pending.setdefault(account_id, {}).update(changed)
        if self.pending:
            self._schedule_flush()

    def _disable_push(self) -> None:
        if self.push is not None:
            self.app.hub.unsubscribe(self.push)
            self.push = None
        self.push_generation += 1
        self.pending = {}

    def _notify(self, account_id: str, states: dict[str, str]) -> None:
        self.pending.setdefault(account_id, {}).update(states)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self.flushing and not self.closed:
            self.flushing = True
            self._spawn(self._flush())

    async def _flush(self) -> None:
        try:
            while self.pending and not self.closed:
                changed, self.pending = self.pending, {}
                for account_id, states in changed.items():
                    self.known.setdefault(account_id, {}).update(states)
                await self.send_json(
                    {"@type": "StateChange", "changed": changed, "pushState": encode_push_state(self.known)}
                )
        finally:
            self.flushing = False
