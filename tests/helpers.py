"""Test helpers: a real server on a loopback port, an in-process ASGI driver, JMAP call shortcuts."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import uvicorn

from tidings.config import load
from tidings.http.app import App
from tidings.serve import Server
from tidings.server import Tidings

from .stores import store_for

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
USING = [CORE, MAIL]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def make_tidings(data: Path, **overrides: Any) -> Tidings:
    """A server on `data`, on the backend of the running test (tests/stores.py)."""
    overrides.setdefault("store", store_for(data))
    config = load(None, {"data": str(data), "access_log": False, **overrides}, environ={})
    return Tidings(config)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class LiveServer:
    """The real ASGI app under uvicorn on 127.0.0.1, port chosen by the kernel, in a thread."""

    def __init__(
        self, tidings: Tidings, *, tls: tuple[str, str] | None = None, mail: dict[str, Any] | None = None
    ) -> None:
        """`tls`: (certificate file, key file) to serve HTTPS, as `tidings serve --tls-cert/--tls-key`.
        `mail`: also run the mail transports (LMTP/SMTP as configured, the outbound queue), with these
        queue worker options (e.g. {"mx_resolver": ..., "poll": 0.5})."""
        self.tidings = tidings
        self.app = App(tidings)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit TCP_NODELAY: without it each response waits for the client's
        # delayed ACK (about 40 ms a request), which would dominate the tests' run time.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            access_log=False,
            log_config=None,
            loop="asyncio",
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        self.transports = tidings.mail_transports(**mail) if mail is not None else None
        self.server = Server(config, self.transports)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def client(self, user: str = "alice", password: str = "secret", **kwargs: Any) -> JmapClient:
        return JmapClient(self.url, basic(user, password), **kwargs)


class JmapClient:
    def __init__(self, url: str, authorization: str, using: Iterable[str] = USING) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, headers={"Authorization": authorization}, timeout=30)
        self.using = list(using)
        self._session: dict[str, Any] | None = None

    @property
    def session(self) -> dict[str, Any]:
        if self._session is None:
            response = self.http.get("/.well-known/jmap")
            response.raise_for_status()
            self._session = response.json()
        return self._session

    @property
    def account_id(self) -> str:
        return str(self.session["primaryAccounts"][MAIL])

    def request(self, calls: list[list[Any]], using: Iterable[str] | None = None, **extra: Any) -> dict[str, Any]:
        body = {"using": list(using or self.using), "methodCalls": calls, **extra}
        response = self.http.post(
            "/jmap/api/", content=orjson.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def call(self, name: str, args: dict[str, Any], using: Iterable[str] | None = None) -> tuple[str, dict[str, Any]]:
        """One method call; `accountId` is filled in; returns (response name, arguments)."""
        args = {"accountId": self.account_id, **args}
        response = self.request([[name, args, "c0"]], using)
        name_out, args_out, call_id = response["methodResponses"][0]
        assert call_id == "c0"
        return name_out, args_out

    def ok(self, name: str, args: dict[str, Any], using: Iterable[str] | None = None) -> dict[str, Any]:
        out_name, out = self.call(name, args, using)
        assert out_name == name, out
        return out

    def error(self, name: str, args: dict[str, Any], using: Iterable[str] | None = None) -> dict[str, Any]:
        out_name, out = self.call(name, args, using)
        assert out_name == "error", out
        return out

    def close(self) -> None:
        self.http.close()


async def asgi_request(
    app: App, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, query: str = ""
) -> tuple[int, dict[str, str], bytes]:
    """Drive the ASGI app in process (no socket): returns status, headers and body."""
    scope = {
        "type": "http",
        "method": method,
        # As a server does: `path` percent-decoded, `raw_path` as sent.
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "scheme": "http",
        "server": ("testserver", 80),
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    status = 0
    out_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            out_headers.update({k.decode(): v.decode() for k, v in message["headers"]})
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, out_headers, b"".join(chunks)


_FAST_HASH: str | None = None


def fresh_user(tidings: Tidings, login: str) -> str:
    """A new user with default mailboxes and a bearer token (no password hashing: quick)."""
    from tidings.mail.mailbox import provision

    global _FAST_HASH
    if _FAST_HASH is None:
        from tidings.accounts import hash_password

        _FAST_HASH = hash_password("unused")
    with tidings.store.directory(write=True) as directory:
        user = directory.add_user(login, f"{login}@localhost", _FAST_HASH)
    with tidings.store.write(user.account_id) as tx:
        provision(tx)
    return "Bearer " + tidings.accounts.create_token(login)
