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
import logging
import signal
import socket
import time
from collections.abc import Callable
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


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining on SIGTERM instead of stopping at once.

    For DRAIN_SECONDS (while a balancer takes the replica out) and until the predictions in
    progress are done, the service keeps answering: /ready with 503, new predictions with 503 and
    Retry-After, predictions already accepted with their 200, every answer with Connection: close
    (limits.CloseWhileDraining). Then it closes the port, lets the connections it had just accepted
    bring their requests (`shutdown`), and stops as uvicorn does; by SHUTDOWN_TIMEOUT at the
    latest. SIGINT (Ctrl-C), or a second SIGTERM, stops at once.
    """

    LINGER = 0.5  # s: once the port is closed, how long connections accepted just before may bring a request

    def __init__(self, config: uvicorn.Config, settings: Settings, drain: Callable[[], None], busy: Callable[[], int]):
        super().__init__(config)
        self.settings, self.drain, self.busy = settings, drain, busy
        self.draining_since: float | None = None

    def handle_exit(self, sig: int, frame) -> None:
        if sig == signal.SIGTERM and self.draining_since is None and not self.should_exit:
            self.draining_since = time.monotonic()
            self.drain()
            logging.getLogger("app").info("SIGTERM: draining (at most %g s)", self.settings.shutdown_timeout)
            asyncio.get_event_loop().call_soon_threadsafe(lambda: asyncio.ensure_future(self._stop_when_drained()))
            return
        super().handle_exit(sig, frame)

    async def _stop_when_drained(self) -> None:
        settings, start = self.settings, self.draining_since
        while not self.should_exit:
            elapsed = time.monotonic() - start
            if (elapsed >= settings.drain_seconds and self.busy() == 0) or elapsed >= settings.shutdown_timeout - 1:
                break
            await asyncio.sleep(0.05)
        # what uvicorn may still spend on open requests once it stops listening
        self.config.timeout_graceful_shutdown = max(
            0.5, settings.shutdown_timeout - (time.monotonic() - start) - 0.5 - self.LINGER
        )
        self.should_exit = True

    async def shutdown(self, sockets=None) -> None:
        """After a drain: stop queueing connections and accept those queued (closing the port resets
        a queued connection, whose client has sent its request), close the port (the next
        connection is refused), give the connections accepted just before up to LINGER to bring
        their request and get its answer (503, Connection: close), and only then close what is
        left, as uvicorn does (closing a fresh connection at once would cut off its request)."""
        if self.draining_since is not None and not self.force_exit:
            for server in self.servers:
                for listening in server.sockets:  # queue no more connections: the next ones wait, then are refused
                    with socket.fromfd(listening.fileno(), listening.family, listening.type) as same:
                        same.listen(0)
            await asyncio.sleep(0.1)  # the loop accepts those already queued (closing would reset them)
            for server in self.servers:
                server.close()
            start = time.monotonic()
            while self.server_state.connections and time.monotonic() - start < self.LINGER:
                await asyncio.sleep(0.01)
        await super().shutdown(sockets)


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
