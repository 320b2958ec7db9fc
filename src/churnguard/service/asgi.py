"""The shape of the service's own ASGI middlewares: HTTP requests are theirs to handle, anything
else (the lifespan messages) passes through untouched."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMiddleware:
    """Calls :meth:`http` for each HTTP request and hands every other scope on to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class ApiHeaders(HttpMiddleware):
    """Every answer says ``X-Content-Type-Options: nosniff`` (a browser never guesses a JSON
    answer to be HTML), and every answer under ``/v1`` says ``Cache-Control: no-store``: they
    carry customers' data, which no browser or proxy may keep. A route that sets its own
    Cache-Control keeps it."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        private = scope["path"].startswith("/v1/") or scope["path"] == "/v1"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if private and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["ApiHeaders", "HttpMiddleware"]
