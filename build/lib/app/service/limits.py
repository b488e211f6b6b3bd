"""Bounded work: request bodies (size and upload time), predictions in flight, connections while draining."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.service.errors import ApiError, error_response


class BodyLimit:
    """Pure ASGI middleware for request bodies.

    A declared Content-Length over `max_bytes` is answered 413 at once; a body that grows past it
    while streaming stops with the same 413, so it is never held in memory whole. A body that has
    not fully arrived `timeout` seconds after its first byte was awaited is answered 408, so a
    client sending a byte a second cannot hold the connection forever.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    def _too_large(self) -> ApiError:
        return ApiError(413, "upload_too_large", f"the request body exceeds the limit of {self.max_bytes:,} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            err = self._too_large()
            await error_response(413, err.error, err.detail, {"Connection": "close"})(scope, receive, send)
            return
        received = 0
        deadline: float | None = None

        complete = False

        async def limited_receive() -> Message:
            nonlocal received, deadline, complete
            if complete:  # the body is in; what is left to hear is the client leaving
                return await receive()
            if deadline is None:
                deadline = time.monotonic() + self.timeout
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise ApiError(
                    408, "upload_timeout", f"the request body did not arrive within {self.timeout:g} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()  # FastAPI re-raises HTTPExceptions from body parsing
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)


class HeaderLimit:
    """Pure ASGI middleware: 431 for a request with more than `max_headers` header lines, or whose
    request line and headers pass `max_bytes`.

    The server's own limit (h11's) bounds what it buffers while a request is incomplete; a request
    that arrives whole in one read is only measured here.
    """

    def __init__(self, app: ASGIApp, max_headers: int, max_bytes: int) -> None:
        self.app, self.max_headers, self.max_bytes = app, max_headers, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            size = len(scope.get("raw_path") or b"") + len(scope["query_string"])
            size += sum(len(name) + len(value) + 4 for name, value in headers)
            if len(headers) > self.max_headers:
                detail = f"the request has {len(headers)} header lines; the limit is {self.max_headers}"
                await error_response(431, "too_many_headers", detail, {"Connection": "close"})(scope, receive, send)
                return
            if size > self.max_bytes:
                detail = f"the request line and headers exceed {self.max_bytes:,} bytes"
                await error_response(431, "headers_too_large", detail, {"Connection": "close"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


class InFlight:
    """Counts predictions in progress, so that past `limit` a request is refused, not queued.

    All changes happen on the event loop, so a plain counter is enough; `gauge` shows it.
    """

    def __init__(self, limit: int, gauge) -> None:
        self.limit, self.count, self.gauge = limit, 0, gauge

    def try_acquire(self) -> bool:
        if self.count >= self.limit:
            return False
        self.count += 1
        self.gauge.inc()
        return True

    def release(self) -> None:
        self.count -= 1
        self.gauge.dec()


class CloseWhileDraining:
    """Pure ASGI middleware: while the replica drains (after SIGTERM), every answer, 200 or 503,
    says `Connection: close`, and the server closes the connection once it is sent.

    A client then sends its next request on a new connection, which the draining replica answers
    (503 `shutting_down`) and a stopped one refuses, instead of on a keep-alive connection that
    the server closes under it when it stops (a read error at the client, the request lost).
    """

    def __init__(self, app: ASGIApp, draining: Callable[[], bool]) -> None:
        self.app, self.draining = app, draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.draining():
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)
