"""Running the ASGI app under uvicorn (uvloop + httptools), with graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from types import FrameType

import uvicorn

from .http.app import App
from .server import Tidings
from .smtp.service import MailTransports

log = logging.getLogger("tidings")


class Server(uvicorn.Server):
    """uvicorn's server, with the mail transports (LMTP/SMTP listeners, outbound queue) started before
    it and stopped after it on the same event loop: SIGTERM/SIGINT stop them cleanly too."""

    def __init__(
        self, config: uvicorn.Config, transports: MailTransports | None = None, app: App | None = None
    ) -> None:
        super().__init__(config)
        self.transports = transports
        self.tidings_app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Tell the app first, so event streams end at once and only in-flight requests are waited for.
        if self.tidings_app is not None:
            self.tidings_app.begin_shutdown()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # After a graceful shutdown uvicorn re-raises the signal it caught, which kills the process by
        # that signal (exit status -15, the store left unclosed). A shutdown we asked for is a clean
        # exit: nothing is left for the base class to re-raise.
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.transports is not None:
            await self.transports.start()
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self.transports is not None:
            await self.transports.stop()


def run(tidings: Tidings, host: str, port: int, sock: socket.socket | None = None) -> int:
    """Serve until SIGTERM/SIGINT; on `sock` when given (a worker of `tidings serve --workers`)."""
    config = tidings.config
    app = App(tidings, public_url=config.public_url or None)
    # With a certificate the server speaks HTTPS only; the session's URLs then start with https://
    # and wss:// (the scheme comes from the connection, see App.base_url).
    tls = bool(config.tls_cert)
    server = Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            # RFC 8887 over the websockets library; no per-message deflate, which costs hundreds of
            # kilobytes per idle connection, and frames up to the API's own request limit.
            ws="websockets-sansio",
            ws_per_message_deflate=False,
            ws_max_size=tidings.limits.max_size_request + 65536,
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            # In-flight requests finish; long-lived event streams are cut after this many seconds.
            timeout_graceful_shutdown=10,
            ssl_certfile=config.tls_cert or None,
            ssl_keyfile=config.tls_key or None,
        ),
        tidings.mail_transports(),
        app,
    )
    log.info("listening on %s://%s:%d", "https" if tls else "http", host, port)
    try:
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        tidings.close()
    return 0
