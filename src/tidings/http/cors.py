"""CORS (Fetch standard) for browser clients, with an allow-list of origins from the config."""

from __future__ import annotations

from .asgi import Headers

ALLOWED_METHODS = b"GET, POST, OPTIONS"
ALLOWED_HEADERS = b"Authorization, Content-Type, Accept, Last-Event-ID, Range, If-None-Match"
EXPOSED_HEADERS = b"Content-Disposition, Content-Range, Content-Length, ETag, WWW-Authenticate"


class Cors:
    def __init__(self, origins: list[str]) -> None:
        self.any = "*" in origins
        self.origins = {o.rstrip("/") for o in origins if o != "*"}

    def allowed(self, origin: str | None) -> bool:
        return origin is not None and (self.any or origin.rstrip("/") in self.origins)

    def headers(self, origin: str | None) -> Headers:
        if not self.allowed(origin):
            return []
        assert origin is not None
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", EXPOSED_HEADERS),
            (b"vary", b"Origin"),
        ]

    def preflight_headers(self, origin: str | None) -> Headers:
        if not self.allowed(origin):
            return []
        return [
            *self.headers(origin),
            (b"access-control-allow-methods", ALLOWED_METHODS),
            (b"access-control-allow-headers", ALLOWED_HEADERS),
            (b"access-control-max-age", b"86400"),
        ]
