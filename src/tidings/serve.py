"""Running the ASGI app under uvicorn (uvloop + httptools), with graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import socket

import uvicorn

from .http.app import App
from .server import Tidings

log = logging.getLogger("tidings")


def run(tidings: Tidings, host: str, port: int, sock: socket.socket | None = None) -> int:
    """Serve until SIGTERM/SIGINT; on `sock` when given (a worker of `tidings serve --workers`)."""
    app = App(tidings, public_url=tidings.config.public_url or None)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            # In-flight requests finish; long-lived event streams are cut after this many seconds.
            timeout_graceful_shutdown=10,
        )
    )
    log.info("listening on http://%s:%d", host, port)
    try:
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        tidings.close()
    return 0
