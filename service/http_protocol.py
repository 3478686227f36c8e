"""uvicorn's httptools protocol with read deadlines and JSON framing errors.

uvicorn bounds only the idle time *between* requests on a kept-alive connection: a client that
opens a connection and sends nothing, or sends its headers a byte at a time (slowloris), or
announces a body and never finishes it, holds a connection and its buffers for as long as it
likes. This protocol closes such connections:

- idle: a connection on which no request has started is closed after KEEP_ALIVE_TIMEOUT_S,
  fresh or between requests (uvicorn does this only after a first response; a fresh connection
  had no limit; its per-response keep-alive timer is this same idle deadline here). AWS asks
  for an application idle timeout above the load balancer's (60 s by default), else the load
  balancer may send a request on a connection being closed and answer 502: "We also recommend
  that you configure the idle timeout of your application to be larger than the idle timeout
  configured for the load balancer" (Elastic Load Balancing, Application Load Balancers guide,
  "Edit attributes for your Application Load Balancer", Connection idle timeout);
- headers: from a request's first byte to the end of its headers, at most
  REQUEST_HEADER_TIMEOUT_S; then ``408 {"error": ...}`` and close;
- body: from the end of the headers to the end of the body, at most REQUEST_BODY_TIMEOUT_S. The
  infer route answers 408 itself at that deadline; this protocol closes the connection a little
  later in case a route never reads the body it was sent.

Requests the parser rejects get the service's error shape, ``{"error": ...}`` as JSON, instead
of uvicorn's ``text/plain``.

Cost: a connection's deadline is one float and one handler (arming it is two attribute writes),
not an event-loop timer: creating, scheduling and cancelling two or three ``TimerHandle``s per
request cost about 7-9 % of the event loop's time at 64 connections. One ``DeadlineSweeper`` per
event loop wakes every SWEEP_INTERVAL_S (0.25 s; a quarter of the shortest timeout if that is
under 1 s) while connections are open and fires the deadlines that have passed, so a deadline
fires up to 0.25 s late: negligible beside timeouts counted in seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.settings import Settings

BODY_BACKSTOP_S = 5.0  # after the body deadline, time the app has to answer before the close
SWEEP_INTERVAL_S = 0.25  # how often deadlines are checked: the most a deadline fires late
MIN_SWEEP_INTERVAL_S = 0.01


class DeadlineSweeper:
    """Fires the expired deadlines of one event loop's connections, every SWEEP_INTERVAL_S.

    Timeouts under 1 s (tests, odd settings) shorten the interval to a quarter of the shortest,
    so a deadline is never more than a quarter late.

    Runs only while the loop has open connections: started by the first, stopped at the first
    tick that finds none (so an idle server, or a closed loop, keeps no timer).
    """

    _by_loop: dict[int, DeadlineSweeper] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.protocols: set[DeadlineHttpToolsProtocol] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.interval_s = SWEEP_INTERVAL_S

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> DeadlineSweeper:
        sweeper = cls._by_loop.get(id(loop))
        if sweeper is None or sweeper.loop is not loop:
            sweeper = cls._by_loop[id(loop)] = cls(loop)
        return sweeper

    def add(self, protocol: DeadlineHttpToolsProtocol, shortest_timeout_s: float) -> None:
        self.protocols.add(protocol)
        if shortest_timeout_s < 4 * self.interval_s:
            self.interval_s = max(MIN_SWEEP_INTERVAL_S, shortest_timeout_s / 4)
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval_s, self._sweep)

    def discard(self, protocol: DeadlineHttpToolsProtocol) -> None:
        self.protocols.discard(protocol)

    def _sweep(self) -> None:
        if not self.protocols:
            self._timer = None
            if DeadlineSweeper._by_loop.get(id(self.loop)) is self:
                del DeadlineSweeper._by_loop[id(self.loop)]
            return
        now = self.loop.time()
        expired = [p for p in self.protocols if p._deadline_at <= now]
        for protocol in expired:
            handler = protocol._on_deadline
            if handler is not None and protocol._deadline_at <= now:
                protocol._disarm()
                handler()
        self._timer = self.loop.call_later(self.interval_s, self._sweep)


_NEVER = float("inf")


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus header/body read deadlines (see the module docstring)."""

    header_timeout_s: float = 20.0
    body_timeout_s: float = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline_at = _NEVER
        self._on_deadline: Callable[[], None] | None = None
        self._sweeper = DeadlineSweeper.of(self.loop)

    @classmethod
    def with_timeouts(cls, header_s: float, body_s: float) -> type[DeadlineHttpToolsProtocol]:
        """A subclass bound to these timeouts (uvicorn takes a protocol class, not options)."""
        return type(cls.__name__, (cls,), {"header_timeout_s": header_s, "body_timeout_s": body_s})

    # -- deadlines ---------------------------------------------------------------------------
    def _arm(self, seconds: float, handler: Callable[[], None]) -> None:
        self._deadline_at = self.loop.time() + seconds
        self._on_deadline = handler

    def _disarm(self) -> None:
        self._deadline_at = _NEVER
        self._on_deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        shortest = min(self.timeout_keep_alive, self.header_timeout_s, self.body_timeout_s)
        self._sweeper.add(self, shortest)
        self._arm(self.timeout_keep_alive, self._idle_too_long)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._sweeper.discard(self)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout_s, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self._expects_body():
            self._arm(self.body_timeout_s + BODY_BACKSTOP_S, self._body_too_slow)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive timer as this connection's idle deadline.

        uvicorn arms a ``TimerHandle`` here after every response (and cancels it when the next
        request's first byte arrives); the idle deadline bounds the same wait, and the next
        request's on_message_begin replaces it with the header deadline.
        """
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:  # pipelined requests wait for this response: start the next one
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._arm(self.timeout_keep_alive, self._idle_too_long)

    def _expects_body(self) -> bool:
        for name, value in self.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return True
        return False

    def _idle_too_long(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _headers_too_slow(self) -> None:
        if self.transport.is_closing():
            return
        self._write_error(
            408,
            f"request headers not received within {self.header_timeout_s:g} s "
            "(REQUEST_HEADER_TIMEOUT_S)",
        )

    def _body_too_slow(self) -> None:
        if self.cycle is not None and self.cycle.response_started:
            self.cycle.keep_alive = False  # the app is answering: close after its response
            return
        if not self.transport.is_closing():
            self.transport.close()

    # -- errors as JSON ----------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        self._write_error(400, msg)

    def _write_error(self, status: int, message: str) -> None:
        body = orjson.dumps({"error": message})
        status_line = STATUS_LINE.get(status) or f"HTTP/1.1 {status} \r\n".encode()
        head = [status_line]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()


def http_protocol(settings: Settings) -> type[DeadlineHttpToolsProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``) for these settings."""
    return DeadlineHttpToolsProtocol.with_timeouts(
        settings.request_header_timeout_s, settings.request_body_timeout_s
    )
