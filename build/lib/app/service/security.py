"""Optional API key: with API_KEY set, every path but the public ones needs a matching X-API-Key."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from app.service.errors import error_response

PUBLIC = frozenset({"/health", "/ready", "/"})  # "/" is the static page; its calls send the key


class ApiKey:
    def __init__(self, app: ASGIApp, key: str, public: frozenset[str] = PUBLIC) -> None:
        self.app, self.key, self.public = app, key.encode(), public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.public and scope["method"] != "OPTIONS":
            given = dict(scope["headers"]).get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self.key):  # constant time: no key guessing by timing
                response = error_response(401, "unauthorized", "a valid X-API-Key header is required")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
