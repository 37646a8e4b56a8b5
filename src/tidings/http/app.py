"""The ASGI application: session, API, upload, download and event source (RFC 8620 §2, §3, §6, §7.3).

Protocol work (authentication, method calls, SQLite) is synchronous and runs in a thread pool, one hop
per request; the event loop only moves bytes. Every error a client can cause is answered with a
problem document (RFC 7807), never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, unquote

import orjson

from ..jmap.context import Principal
from ..jmap.errors import RequestError
from ..jmap.request import parse_request
from ..push.hub import Hub
from ..push.subscription import utc_date
from ..server import Tidings
from ..store.base import User
from . import eventsource, websocket
from .asgi import (
    BodyTooLarge,
    Disconnected,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    respond,
    respond_json,
    respond_problem,
)
from .auth import CHALLENGE, authenticate
from .cors import Cors

log = logging.getLogger("tidings.http")
access_log = logging.getLogger("tidings.access")

T = TypeVar("T")
_DOWNLOAD = re.compile(r"/jmap/download/([^/]+)/([^/]+)/([^/]*)")
_UPLOAD = re.compile(r"/jmap/upload/([^/]+)/?")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
# A media type from a URL goes into a response header: no control characters at all (RFC 9110 §5.5).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _raw_path(scope: Scope) -> str:
    """The path as sent, still percent-encoded, so that each segment is decoded exactly once (an
    encoded "/" in a file name stays inside its segment; "%2541" in a name stays "%41")."""
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray):
        return bytes(raw).decode("latin-1").split("?", 1)[0]
    return quote(scope["path"], safe="/")


class LimitExceeded(Exception):
    def __init__(self, limit: str) -> None:
        self.limit = limit


class Slots:
    """Per-user counters for maxConcurrentRequests / maxConcurrentUpload (RFC 8620 §2)."""

    def __init__(self, limit: int, name: str) -> None:
        self.limit = limit
        self.name = name
        self.counts: Counter[int] = Counter()
        self.lock = threading.Lock()

    def acquire(self, user_id: int) -> None:
        with self.lock:
            if self.counts[user_id] >= self.limit:
                raise LimitExceeded(self.name)
            self.counts[user_id] += 1

    def release(self, user_id: int) -> None:
        with self.lock:
            self.counts[user_id] -= 1
            if self.counts[user_id] <= 0:
                del self.counts[user_id]


class App:
    def __init__(self, tidings: Tidings, *, public_url: str | None = None, threads: int = 16) -> None:
        self.tidings = tidings
        self.public_url = public_url.rstrip("/") if public_url else None
        self.cors = Cors(tidings.config.cors_origins)
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tidings")
        self.hub = Hub()
        tidings.bus.subscribe(self.hub.publish)
        self.requests = Slots(tidings.limits.max_concurrent_requests, "maxConcurrentRequests")
        self.uploads = Slots(tidings.limits.max_concurrent_upload, "maxConcurrentUpload")
        self.log_requests = bool(tidings.config.access_log)
        self._gc_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None

    def begin_shutdown(self) -> None:
        """Ask long-lived responses (event streams) to end, so a graceful shutdown need not wait for
        them; safe to call from a signal handler or another thread."""
        loop, closing = self._loop, self._closing
        if loop is not None and closing is not None and not loop.is_closed():
            loop.call_soon_threadsafe(closing.set)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # -- ASGI entry point

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)
        elif kind == "websocket":
            await websocket.serve(self, scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                self._closing = asyncio.Event()
                self.hub.bind(self._loop)
                await self.tidings.push.pusher.start()
                self._gc_task = asyncio.create_task(self._collect_garbage())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._gc_task:
                    self._gc_task.cancel()
                await self.tidings.push.pusher.stop()
                self.executor.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _collect_garbage(self) -> None:
        """Expire unreferenced uploads (RFC 8620 §6: kept at least an hour; `upload_ttl` here)."""
        while True:
            try:
                await self.run(self.tidings.store.collect_garbage, int(time.time()))
            except Exception:
                log.exception("blob garbage collection failed")
            await asyncio.sleep(600)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status_box = [0]
        note: list[str] = []

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            await self.route(scope, receive, tracking_send, note)
        except Disconnected:
            status_box[0] = status_box[0] or 499
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not status_box[0]:
                await respond_problem(
                    tracking_send, 500, {"type": "about:blank", "title": "Internal Server Error"}
                )
        if self.log_requests:
            elapsed = (time.perf_counter() - started) * 1000
            extra = f" [{' '.join(note)}]" if note else ""
            access_log.info(
                "%s %s %d %.1fms%s", scope["method"], scope["path"], status_box[0], elapsed, extra
            )

    def base_url(self, scope: Scope) -> str:
        if self.public_url:
            return self.public_url
        host = header(scope, b"host")
        scheme = scope.get("scheme", "http")
        if host:
            return f"{scheme}://{host}"
        server = scope.get("server") or ("127.0.0.1", 80)
        return f"{scheme}://{server[0]}:{server[1]}"

    async def route(self, scope: Scope, receive: Receive, send: Send, note: list[str]) -> None:
        method = scope["method"]
        path = scope["path"]
        origin = header(scope, b"origin")
        cors = self.cors.headers(origin)
        if method == "OPTIONS":
            await respond(send, 204, b"", b"text/plain", self.cors.preflight_headers(origin))
            return
        if path in ("/.well-known/jmap", "/jmap/session", "/jmap/session/") and method == "GET":
            await self.session(scope, send, cors)
        elif path in ("/jmap/api", "/jmap/api/"):
            if method != "POST":
                await self.method_not_allowed(send, b"POST", cors)
                return
            await self.api(scope, receive, send, cors, note)
        elif path.startswith("/jmap/upload/"):
            if method != "POST":
                await self.method_not_allowed(send, b"POST", cors)
                return
            await self.upload(scope, receive, send, cors)
        elif path.startswith("/jmap/download/"):
            if method not in ("GET", "HEAD"):
                await self.method_not_allowed(send, b"GET, HEAD", cors)
                return
            await self.download(scope, send, cors)
        elif path in ("/jmap/eventsource", "/jmap/eventsource/") and method == "GET":
            await self.event_source(scope, receive, send, cors)
        elif path in ("/jmap/access-token", "/jmap/access-token/"):
            if method != "POST":
                await self.method_not_allowed(send, b"POST", cors)
                return
            await self.access_token(scope, send, cors)
        elif path == "/" and method == "GET":
            await respond(send, 200, b"Tidings JMAP server. Session: /.well-known/jmap\n", b"text/plain", cors)
        else:
            await respond_problem(send, 404, {"type": "about:blank", "title": "Not Found"}, cors)

    async def method_not_allowed(self, send: Send, allow: bytes, cors: Headers) -> None:
        await respond_problem(
            send, 405, {"type": "about:blank", "title": "Method Not Allowed"}, [(b"allow", allow), *cors]
        )

    async def unauthorized(self, send: Send, cors: Headers) -> None:
        await respond_problem(
            send,
            401,
            {"type": "about:blank", "title": "Unauthorized", "detail": "Valid credentials are required."},
            [(b"www-authenticate", CHALLENGE), *cors],
        )

    def _authenticate(self, scope: Scope) -> tuple[User, Principal] | None:
        found = authenticate(self.tidings.accounts, header(scope, b"authorization"))
        if found is None:
            return None
        user, credential = found
        return user, self.tidings.principal(user, credential)

    def authenticate_push(self, scope: Scope) -> tuple[User, Principal] | None:
        """Event source and WebSocket: the Authorization header, or else a single-use access token
        in the `access_token` query parameter (browsers cannot set headers on either; docs/push.md)."""
        found = self._authenticate(scope)
        if found is not None or header(scope, b"authorization"):
            return found
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("access_token") or [""])[-1]
        redeemed = self.tidings.push.redeem_access_token(token) if token else None
        if redeemed is None:
            return None
        user_id, credential = redeemed
        with self.tidings.store.directory() as directory:
            user = directory.user_by_id(user_id)
        # The token stands for the credential that obtained it: over a WebSocket opened with it,
        # PushSubscription/get and /set see what that credential sees (RFC 8620 §7.2).
        return None if user is None else (user, self.tidings.principal(user, credential))

    async def access_token(self, scope: Scope, send: Send, cors: Headers) -> None:
        """POST /jmap/access-token: a token for one event-source or WebSocket connection, valid 60 s."""

        def work() -> tuple[str, int] | None:
            found = self._authenticate(scope)
            return None if found is None else self.tidings.push.issue_access_token(found[0].id, found[1].credential)

        issued = await self.run(work)
        if issued is None:
            await self.unauthorized(send, cors)
            return
        token, expires = issued
        await respond_json(
            send, 201, {"token": token, "expires": utc_date(expires)}, [(b"cache-control", b"no-store"), *cors]
        )

    # -- session (RFC 8620 §2)

    async def session(self, scope: Scope, send: Send, cors: Headers) -> None:
        base = self.base_url(scope)

        def work() -> dict[str, Any] | None:
            found = self._authenticate(scope)
            return None if found is None else self.tidings.session(found[1], base)

        session = await self.run(work)
        if session is None:
            await self.unauthorized(send, cors)
            return
        await respond_json(send, 200, session, [(b"cache-control", b"no-cache, no-store"), *cors])

    # -- API (RFC 8620 §3)

    async def api(self, scope: Scope, receive: Receive, send: Send, cors: Headers, note: list[str]) -> None:
        limits = self.tidings.limits
        length = header(scope, b"content-length")
        too_large = RequestError(
            "limit",
            f"The request is larger than {limits.max_size_request} octets.",
            limit="maxSizeRequest",
        )
        if length is not None and length.isdigit() and int(length) > limits.max_size_request:
            await respond_problem(send, 400, too_large.to_problem(), cors)
            return
        try:
            body = await read_body(receive, limits.max_size_request)
        except BodyTooLarge:
            await respond_problem(send, 400, too_large.to_problem(), cors)
            return
        content_type = (header(scope, b"content-type") or "application/json").split(";")[0].strip().lower()

        def work() -> tuple[int, Any]:
            found = self._authenticate(scope)
            if found is None:
                return 401, None
            user, principal = found
            try:
                self.requests.acquire(user.id)
            except LimitExceeded as exc:
                # 429 (RFC 6585 §4): the client may retry once one of its requests has finished.
                return 429, RequestError("limit", "Too many concurrent requests.", status=429, limit=exc.limit)
            try:
                # RFC 8620 §3.1: the request must be application/json (else notJSON).
                if content_type != "application/json":
                    raise RequestError("notJSON", f"The request's content type is {content_type!r}.")
                outcome = self.tidings.api(principal, parse_request(body))
                note.extend(outcome.methods)
                # Encoded here, off the event loop, like the rest of the request's work.
                return 200, orjson.dumps(outcome.response)
            except RequestError as error:
                return error.status, error
            finally:
                self.requests.release(user.id)

        status, result = await self.run(work)
        if status == 401:
            await self.unauthorized(send, cors)
        elif isinstance(result, RequestError):
            note.append(result.kind)
            await respond_problem(send, status, result.to_problem(), cors)
        else:
            await respond(send, 200, result, b"application/json", [(b"cache-control", b"no-cache, no-store"), *cors])

    # -- upload (RFC 8620 §6.1)

    async def upload(self, scope: Scope, receive: Receive, send: Send, cors: Headers) -> None:
        match = _UPLOAD.fullmatch(_raw_path(scope))
        found = await self.run(self._authenticate, scope)
        if found is None:
            await self.unauthorized(send, cors)
            return
        user, principal = found
        account_id = unquote(match.group(1)) if match else ""
        if account_id not in principal.accounts:
            await respond_problem(
                send, 404, {"type": "about:blank", "title": "Not Found", "detail": "No such account."}, cors
            )
            return
        if principal.accounts[account_id].is_read_only:
            await respond_problem(send, 403, {"type": "about:blank", "title": "Forbidden"}, cors)
            return
        limit = self.tidings.limits.max_size_upload
        length = header(scope, b"content-length")
        # RFC 8620 §3.6.1 leaves the status of a limit problem to the server: 413 Content Too Large
        # (RFC 9110 §15.5.14) for an upload over maxSizeUpload, 429 Too Many Requests (RFC 6585 §4)
        # for one past maxConcurrentUpload.
        too_large = RequestError(
            "limit", f"Uploads are limited to {limit} octets.", status=413, limit="maxSizeUpload"
        )
        if length is not None and length.isdigit() and int(length) > limit:
            await respond_problem(send, 413, too_large.to_problem(), cors)
            return
        try:
            self.uploads.acquire(user.id)
        except LimitExceeded as exc:
            error = RequestError("limit", "Too many concurrent uploads.", status=429, limit=exc.limit)
            await respond_problem(send, 429, error.to_problem(), cors)
            return
        media_type = (header(scope, b"content-type") or "application/octet-stream").strip()
        if not _MEDIA_TYPE.fullmatch(media_type) or _CONTROL.search(media_type):
            media_type = "application/octet-stream"
        writer = self.tidings.store.blobs.writer()
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Disconnected
                writer.write(message.get("body", b""))
                if writer.size > limit:
                    await respond_problem(send, 413, too_large.to_problem(), cors)
                    return
                if not message.get("more_body", False):
                    break
            size = writer.size
            blob_id = await self.run(writer.finish)
            await self.run(self.tidings.blobs.record_upload, account_id, blob_id, media_type, size)
        finally:
            writer.abort()
            self.uploads.release(user.id)
        await respond_json(
            send, 201, {"accountId": account_id, "blobId": blob_id, "type": media_type, "size": size}, cors
        )

    # -- download (RFC 8620 §6.2)

    async def download(self, scope: Scope, send: Send, cors: Headers) -> None:
        match = _DOWNLOAD.fullmatch(_raw_path(scope))
        not_found = {"type": "about:blank", "title": "Not Found", "detail": "No such blob in this account."}
        if match is None:
            await respond_problem(send, 404, not_found, cors)
            return
        account_id, blob_id, name = (unquote(g) for g in match.groups())
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        media_type = query.get("type") or query.get("accept") or "application/octet-stream"
        if not _MEDIA_TYPE.fullmatch(media_type) or _CONTROL.search(media_type):
            media_type = "application/octet-stream"

        def work() -> Any:
            found = self._authenticate(scope)
            if found is None:
                return 401
            _, principal = found
            if account_id not in principal.accounts:
                return None
            with self.tidings.store.read(account_id) as tx:
                return self.tidings.blobs.resolve(tx, blob_id)

        content = await self.run(work)
        if content == 401:
            await self.unauthorized(send, cors)
            return
        if content is None:
            await respond_problem(send, 404, not_found, cors)
            return
        etag = f'"{blob_id}"'.encode()
        headers: Headers = [
            (b"content-type", media_type.encode("latin-1", "replace")),
            (b"content-disposition", _disposition(name)),
            # RFC 8620 §6.2: blobs are immutable, so responses may be cached for long.
            (b"cache-control", b"private, immutable, max-age=31536000"),
            (b"etag", etag),
            (b"accept-ranges", b"bytes"),
            *cors,
        ]
        if_none_match = header(scope, b"if-none-match")
        if if_none_match and (if_none_match.strip() == "*" or etag.decode() in if_none_match):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        size = content.size
        start, end, status = 0, size, 200
        range_header = header(scope, b"range")
        if range_header:
            parsed = _parse_range(range_header, size)
            if parsed is None:
                await respond_problem(
                    send,
                    416,
                    {"type": "about:blank", "title": "Range Not Satisfiable"},
                    [(b"content-range", f"bytes */{size}".encode()), *cors],
                )
                return
            if parsed != (0, size):
                start, end = parsed
                status = 206
                headers.append((b"content-range", f"bytes {start}-{end - 1}/{size}".encode()))
        headers.append((b"content-length", str(end - start).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        if content.data is not None:
            await send({"type": "http.response.body", "body": content.data[start:end]})
            return
        assert content.path is not None
        with open(content.path, "rb") as handle:
            handle.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = await self.run(handle.read, min(1 << 20, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
            if remaining > 0 or end == start:
                # An empty blob (or a file shorter than said) still needs the closing body message, or
                # the response never completes and the keep-alive connection is dropped.
                await send({"type": "http.response.body", "body": b""})

    # -- event source (RFC 8620 §7.3)

    async def event_source(self, scope: Scope, receive: Receive, send: Send, cors: Headers) -> None:
        args = eventsource.parse_args(scope.get("query_string", b"").decode("latin-1"))
        if isinstance(args, str):
            await respond_problem(send, 400, {"type": "about:blank", "title": "Bad Request", "detail": args}, cors)
            return

        def work() -> dict[str, dict[str, str]] | None:
            found = self.authenticate_push(scope)
            if found is None:
                return None
            states = {}
            for account_id in found[1].accounts:
                with self.tidings.store.read(account_id) as tx:
                    states[account_id] = tx.all_states()
            return states

        current = await self.run(work)
        if current is None:
            await self.unauthorized(send, cors)
            return
        streaming = asyncio.create_task(
            eventsource.stream(send, self.hub, args, current, header(scope, b"last-event-id"), cors)
        )

        async def wait_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.create_task(wait_disconnect())
        tasks: set[asyncio.Task[Any]] = {streaming, watcher}
        closing = asyncio.create_task(self._closing.wait()) if self._closing is not None else None
        if closing is not None:
            tasks.add(closing)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Cancel and reap what is still running, so the stream's subscription is gone before
            # this returns (and no task outlives its connection).
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if watcher in done:
            raise Disconnected
        # The stream ended by itself (closeafter=state) or the server is shutting down: end the
        # response properly so the client sees a clean end of stream and may reconnect.
        if streaming in done and streaming.exception() is not None:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _disposition(name: str) -> bytes:
    # RFC 6266 with RFC 8187 encoding, so any name survives; the ASCII fallback drops the rest.
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}".encode("latin-1")


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One byte range (RFC 9110 §14.1.2); several ranges are answered with the whole blob."""
    value = value.strip()
    if "," in value:
        return (0, size)
    match = _RANGE.fullmatch(value)
    if match is None:
        return (0, size)
    first, last = match.groups()
    if not first and not last:
        return (0, size)
    if not first:
        suffix = int(last)
        if suffix == 0:
            return None
        return (max(0, size - suffix), size)
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if start >= size or (last and int(last) < start):
        return None
    return (start, end)
