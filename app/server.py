"""The HTTP server: uvicorn's h11 protocol with the limits a public service needs.

Uvicorn bounds neither the time a client may take to send its request headers (a connection that
sends nothing, or half a header block, stays open) nor the number of open connections, and it
answers malformed HTTP in plain text. This protocol adds a header deadline, a connection cap and
JSON answers; the header size limit is h11's own (README, Reliability).
"""

from __future__ import annotations

import asyncio
import functools
import json
from http import HTTPStatus

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.config import Settings


class _Connection(h11.Connection):
    """h11's connection, remembering the status h11 suggests for the last protocol error."""

    error_status = 400

    def next_event(self):
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.error_status = exc.error_status_hint
            raise


def raw_json(status: int, error: str, detail: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for answers given outside the app."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    def __init__(self, config, server_state, app_state, _loop=None, settings: Settings | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.settings = settings or _settings_from_env()
        self.conn = _Connection(h11.SERVER, self.settings.max_header_bytes)
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.settings.max_connections:
            limit = self.settings.max_connections
            transport.write(raw_json(503, "too_many_connections", f"the server holds {limit} connections already"))
            transport.close()
            return
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # a request's headers are still to come (or not complete)
            self._await_headers()
        else:
            self._headers_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # arms the keep-alive timer: an idle connection closes after it
        self._headers_arrived()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        if self.conn.error_status == 431:
            limit = self.settings.max_header_bytes
            answer = raw_json(431, "headers_too_large", f"the request line and headers exceed {limit:,} bytes")
        else:
            answer = raw_json(400, "bad_request", "the request is not valid HTTP/1.1")
        self.transport.write(answer)
        self.transport.close()

    def _await_headers(self) -> None:
        if self.header_timer is None and not self.transport.is_closing():
            self.header_timer = self.loop.call_later(self.settings.header_timeout, self._headers_late)

    def _headers_arrived(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_late(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a request came: say why it is cut off
            timeout = self.settings.header_timeout
            self.transport.write(
                raw_json(408, "header_timeout", f"the request headers did not arrive within {timeout:g} s")
            )
        self.transport.close()


@functools.cache
def _settings_from_env() -> Settings:
    return Settings()


def server_config(app, settings: Settings) -> uvicorn.Config:
    """How the service is served: h11 with the guards above, no WebSocket upgrades (there are none)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        http=functools.partial(GuardedH11Protocol, settings=settings),
        ws="none",
        timeout_keep_alive=settings.keep_alive_timeout,
    )
