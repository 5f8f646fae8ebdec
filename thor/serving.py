"""HTTP plumbing shared by thor's two servers (``thor serve`` and ``thor sandbox serve``).

What both servers guarantee, and where it is enforced:

- **Who may connect**: :func:`check_bind` refuses to bind anything but loopback without a bearer
  token; :func:`bearer_matches` compares tokens in constant time.
- **Bounded resources**: :class:`BoundedHTTPServer` listens with a deep backlog (bursts of
  hundreds of connections wait in the kernel instead of being reset), serves connections on a
  fixed pool of worker threads, and stops accepting while every worker is busy (waiting
  connections stay in the backlog). Each connection has an idle deadline (waiting for a request),
  a read deadline (the whole request head and body, however slowly it trickles in) and a write
  deadline (a client that does not read its answer), so no client pins a thread or a file
  descriptor for longer than those.
- **Malformed requests**: :class:`JSONRequestHandler` answers every one with a 4xx in the server's
  own error shape: a missing, negative, non-numeric or repeated ``Content-Length``, a chunked body,
  a body over the limit, JSON that is not JSON, nested deeper than :data:`MAX_JSON_DEPTH`, with an
  integer longer than :data:`MAX_INT_DIGITS` digits or a non-finite number. When it answers before
  reading a request's whole body, it closes the connection, so the unread body is never parsed as
  the next request.

Example:
    >>> from thor.serving import is_loopback, parse_json
    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
    (True, False)
    >>> parse_json(b'{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import math
import queue
import re
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from pydantic import Field

from thor.config import ThorConfig
from thor.errors import ConfigError

__all__ = [
    "MAX_INT_DIGITS",
    "MAX_JSON_DEPTH",
    "BoundedHTTPServer",
    "JSONRequestHandler",
    "RequestError",
    "ServerLimits",
    "bearer_matches",
    "check_bind",
    "check_port",
    "is_loopback",
    "parse_json",
]

log = logging.getLogger("thor.serving")

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have."""
MAX_INT_DIGITS = 64
"""Most digits an integer in a request body may have (a 62-bit seed has 19)."""
_DIGITS = re.compile(r"[0-9]+")


class RequestError(Exception):
    """A request the server refuses: answered with ``status`` and never raised past the handler.

    Args:
        message: what was wrong, for the client.
        status: the HTTP status (4xx).
        param: the request field at fault, if one is.
        code: a short machine-readable code (OpenAI's ``code``), if any.
    """

    def __init__(
        self, message: str, status: int = 400, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.param, self.code = message, status, param, code


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, what: str, flag: str = "--token") -> None:
    """The one rule of both servers: anything but loopback needs a bearer token.

    Raises:
        ConfigError: ``host`` is not loopback and ``token`` is empty.
    """
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"binding to {host!r} exposes {what} to the network: pass a token ({flag}) that "
            "clients send as 'Authorization: Bearer TOKEN', or bind 127.0.0.1"
        )


def check_port(port: int, host: str | None = None) -> None:
    """Check ``port`` (0 picks a free one) and, given ``host``, that it can be bound now.

    Raises:
        ConfigError: not a TCP port, or already in use (said before a model loads for minutes).
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port: use 1-65535 (or 0 for a free one)")
    if host is None or port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"cannot serve on {host}:{port}: {err.strerror or err}") from None


def bearer_matches(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (always true when no token is set)."""
    if not token:
        return True
    expected = f"Bearer {token}".encode()
    return header is not None and hmac.compare_digest(header.encode("utf-8", "replace"), expected)


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise RequestError(f"an integer in the body has over {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RequestError(f"the number {text[:40]} in the body is out of range")
    return value


def _parse_constant(text: str) -> float:
    raise RequestError(f"{text} is not a JSON number")


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json(data: bytes) -> Any:
    """Parse a request body with the bounds above.

    Raises:
        RequestError: (400) the body is not UTF-8 JSON or breaks a bound.
    """
    try:
        value = json.loads(
            data.decode("utf-8"),
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except UnicodeDecodeError:
        raise RequestError("the request body is not UTF-8") from None
    except RecursionError:
        raise RequestError(f"the request body is nested deeper than {MAX_JSON_DEPTH}") from None
    except ValueError as err:  # JSONDecodeError, or an int() / float() refusal
        raise RequestError(f"the request body is not valid JSON: {err}") from None
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise RequestError(f"the request body is nested deeper than {MAX_JSON_DEPTH}")
    return value


class ServerLimits(ThorConfig):
    """How a :class:`BoundedHTTPServer` bounds its clients."""

    workers: int = Field(64, ge=1, description="Threads serving connections; more wait queued")
    backlog: int = Field(
        1024, ge=1, description="Listen backlog (the kernel caps it at net.core.somaxconn)"
    )
    idle_timeout_s: float = Field(
        15.0, gt=0, description="How long a kept-alive connection may wait for its next request"
    )
    read_timeout_s: float = Field(
        60.0, gt=0, description="How long a whole request (head and body) may take to arrive"
    )
    write_timeout_s: float = Field(
        60.0, gt=0, description="How long one response (or one streamed event) may take to send"
    )


class BoundedHTTPServer(HTTPServer):
    """An HTTP server on a fixed pool of worker threads, with a deep listen backlog.

    The accepting thread hands each connection to the pool and, while every worker is busy, stops
    accepting: further connections wait in the kernel's backlog (up to ``limits.backlog``), not in
    threads or file descriptors of this process.
    """

    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        limits: ServerLimits | None = None,
    ) -> None:
        self.limits = limits or ServerLimits()
        self.request_queue_size = self.limits.backlog
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._pending: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(maxsize=1)
        self._closing = threading.Event()
        super().__init__(address, handler)
        self._workers = [
            threading.Thread(target=self._work, name=f"thor-http-{i}", daemon=True)
            for i in range(self.limits.workers)
        ]
        for worker in self._workers:
            worker.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a free worker; wait (not accepting) while none is free."""
        while not self._closing.is_set():
            try:
                self._pending.put((request, client_address), timeout=0.2)
                return
            except queue.Full:
                continue
        self.shutdown_request(request)

    def _work(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            request, address = item
            try:
                self.finish_request(request, address)
            except Exception:
                self.handle_error(request, address)
            finally:
                self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()

    def server_close(self) -> None:
        self._closing.set()
        super().server_close()
        for _ in self._workers:
            try:
                self._pending.put(None, timeout=1.0)
            except queue.Full:
                break


class _DeadlineReader(io.RawIOBase):
    """The socket's bytes, read under a deadline that the handler resets for each request.

    While ``idle`` it waits at most ``idle_timeout_s`` for a request's first byte; from that byte
    on, the whole request must arrive within ``read_timeout_s``.
    """

    def __init__(self, sock: socket.socket, limits: ServerLimits) -> None:
        super().__init__()
        self.sock, self.limits = sock, limits
        self.deadline = 0.0
        self.idle = True

    def expect_request(self) -> None:
        self.idle = True
        self.deadline = time.monotonic() + self.limits.idle_timeout_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the client was too slow")
        self.sock.settimeout(remaining)
        n = self.sock.recv_into(buffer)
        if n and self.idle:
            self.idle = False
            self.deadline = time.monotonic() + self.limits.read_timeout_s
        return n


class _Writer(io.BufferedIOBase):
    """Writes go straight to the socket (``sendall`` under the write deadline)."""

    def __init__(self, sock: socket.socket, limits: ServerLimits) -> None:
        super().__init__()
        self.sock, self.limits = sock, limits

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sock.settimeout(self.limits.write_timeout_s)
        self.sock.sendall(data)
        return len(data)


class JSONRequestHandler(BaseHTTPRequestHandler):
    """A keep-alive JSON handler that answers every malformed request with a 4xx.

    Subclasses implement ``do_GET`` / ``do_POST`` with :meth:`read_json`, :meth:`send_json`,
    :meth:`send_events` and raise :class:`RequestError`; :meth:`error_body` shapes errors.
    """

    protocol_version = "HTTP/1.1"
    server: BoundedHTTPServer
    _reader: _DeadlineReader
    _body_pending: bool

    def setup(self) -> None:
        self.connection = self.request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        limits = self.server.limits
        self._reader = _DeadlineReader(self.connection, limits)
        self.rfile = io.BufferedReader(self._reader)
        self.wfile = _Writer(self.connection, limits)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # -- the shape of errors (override) ---------------------------------------------------------
    def error_body(self, err: RequestError) -> Any:
        return {"detail": err.message}

    # -- one request ------------------------------------------------------------------------------
    def handle_one_request(self) -> None:
        self._reader.expect_request()
        self._body_pending = False
        self.command = ""
        try:
            self._handle_one()
        except (TimeoutError, ConnectionError) as err:
            log.debug("%s: connection dropped: %r", self.address_string(), err)
            self.close_connection = True
        except OSError as err:
            log.debug("%s: socket error: %r", self.address_string(), err)
            self.close_connection = True

    def _handle_one(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline, self.request_version = "", ""
            self.send_error(414)
            return
        if not self.parse_request():
            self.close_connection = True
            return
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "HTTP/0.9 is not supported")
            return
        # a body announced and not read by the time of the answer closes the connection
        length = (self.headers.get("Content-Length") or "0").strip()
        self._body_pending = bool(self.headers.get("Transfer-Encoding")) or length != "0"
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error_json(RequestError(f"method {self.command} is not allowed", 405))
        else:
            try:
                method()
            except RequestError as err:
                self.send_error_json(err)
            except (TimeoutError, ConnectionError, OSError):
                raise
            except Exception as err:  # a bug or a failed generation: answered, logged, not raised
                log.exception("%s %s failed", self.command, self.path)
                self.send_error_json(RequestError(f"{type(err).__name__}: {err}", 500))
        self.wfile.flush()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What :class:`BaseHTTPRequestHandler` calls for a malformed request line or headers."""
        self.close_connection = True
        reason = message or self.responses.get(code, ("error",))[0]
        # the client's fault in every case (505 is an HTTP version this server cannot speak)
        self.send_error_json(RequestError(f"malformed request: {reason}", min(code, 499)))

    # -- helpers for subclasses -----------------------------------------------------------------
    def content_length(self, limit: int) -> int:
        """The announced body length, checked; marks the body pending until it is read.

        Raises:
            RequestError: 411 without a length (or with a chunked body), 400 for a malformed or
                repeated one, 413 over ``limit``.
        """
        if self.headers.get("Transfer-Encoding"):
            raise RequestError("chunked request bodies are not supported: send Content-Length", 411)
        values = [v.strip() for v in self.headers.get_all("Content-Length") or []]
        if not values:
            raise RequestError("Content-Length required", 411)
        if len(set(values)) > 1 or not _DIGITS.fullmatch(values[0]):
            raise RequestError(f"malformed Content-Length: {values[0][:40]!r}")
        if len(values[0]) > 18 or int(values[0]) > limit:
            raise RequestError(f"request body over {limit} bytes", 413)
        return int(values[0])

    def read_json(self, limit: int) -> Any:
        """Read the body (at most ``limit`` bytes) and parse it with :func:`parse_json`."""
        length = self.content_length(limit)
        data = self.rfile.read(length) if length else b""
        if len(data) < length:
            raise ConnectionError("the client closed before sending the whole body")
        self._body_pending = False
        return parse_json(data)

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        if self.request_version == "HTTP/0.9":  # a malformed request line: answer in HTTP/1.1
            self.request_version = "HTTP/1.1"
        if self._body_pending:  # answering before the body was read: never parse it as a request
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error_json(self, err: RequestError) -> None:
        log.debug(
            "%s %s -> %d %s", self.command, getattr(self, "path", ""), err.status, err.message
        )
        self.send_json(err.status, self.error_body(err))

    def send_events(self, events: Callable[[], Any]) -> None:
        """Stream server-sent events: each item of ``events()`` as ``data: <json>``, then ``[DONE]``.

        The body goes out chunked (HTTP/1.1), so the connection stays usable afterwards.
        """
        chunked = self.request_version != "HTTP/1.0"  # HTTP/1.0 clients: the close ends it
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        for event in events():
            self._event(f"data: {json.dumps(event)}\n\n".encode(), chunked)
        self._event(b"data: [DONE]\n\n", chunked)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _event(self, data: bytes, chunked: bool) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
