"""HTTP servers of the twin (standard library only): the HTTPS Kubernetes API and ``/metrics``.

Both are ``ThreadingHTTPServer`` s speaking HTTP/1.1 with keep-alive, one thread per
connection. The API server accepts plain TCP and does the TLS handshake in the connection's
own thread (with a timeout), so a slow or non-TLS client cannot stall the accept loop. Protocol
errors are answered as Kubernetes ``Status`` objects with 4xx codes (an unknown HTTP method is
405, not the standard library's 501). :meth:`close` stops accepting and shuts down every open
connection, so no handler thread outlives the server.
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from drpc.twin.errors import status_body
from drpc.twin.k8s import MAX_BODY_BYTES, KubeApi, Request, Response

__all__ = ["ApiServer", "MetricsServer"]

log = logging.getLogger("drpc.twin.http")

_HANDSHAKE_TIMEOUT_S = 10.0
_IDLE_TIMEOUT_S = 120.0
_STATUS_REASONS = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "Timeout",
    411: "LengthRequired",
    413: "RequestEntityTooLarge",
    414: "RequestURITooLong",
    431: "RequestHeaderFieldsTooLarge",
}


class _BodyError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections so :meth:`close` can end them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, tls: ssl.SSLContext | None):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.tls = tls
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.closing = False
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn = request
        try:  # headers and body go out in separate writes: without this, Nagle's algorithm
            # and the client's delayed ACK stall every response by ~40 ms
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.tls is not None:
            request.settimeout(_HANDSHAKE_TIMEOUT_S)
            try:
                conn = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as err:
                log.debug("TLS handshake with %s failed: %s", client_address, err)
                request.close()
                return
        with self._conns_lock:
            if self.closing:
                conn.close()
                return
            self._conns.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except (OSError, ssl.SSLError) as err:
            log.debug("connection from %s ended: %s", client_address, err)
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error on connection from %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self._conns_lock:
            self.closing = True
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "drpc-twin"
    sys_version = ""
    timeout = _IDLE_TIMEOUT_S
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol errors as Kubernetes Status objects; 501/505 become 405/400."""
        if code == 501:
            code, message = 405, f"the server does not allow this method ({self.command})"
        elif code == 505 or code >= 500:
            code = 400
        reason = _STATUS_REASONS.get(code, "BadRequest")
        if self.request_version == "HTTP/0.9":  # a malformed request line: answer in HTTP/1.1
            self.request_version = "HTTP/1.1"
        text = message or HTTPStatus(code).phrase
        body = json.dumps(status_body(code, reason, text)).encode()
        self.close_connection = True
        try:
            self.send_response(code, None)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BodyError(400, "malformed chunked request body") from None
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BodyError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise _BodyError(400, "invalid Content-Length") from None
        if n < 0:
            raise _BodyError(400, "invalid Content-Length")
        if n > MAX_BODY_BYTES:
            if n <= 4 * MAX_BODY_BYTES:  # drain it, so the client reads the answer
                left = n
                while left > 0:
                    got = self.rfile.read(min(left, 65536))
                    if not got:
                        break
                    left -= len(got)
            raise _BodyError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(n)

    def _send(self, status: int, body: bytes, content_type: str, headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _ApiHandler(_Handler):
    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _BodyError as err:
            self.send_error(err.code, str(err))
            return
        api: KubeApi = self.server.api  # type: ignore[attr-defined]
        resp = api.handle(Request(self.command, self.path, self.headers, body))
        self._respond(resp)

    def _respond(self, resp: Response) -> None:
        if resp.stream is None:
            self._send(resp.status, resp.body, resp.content_type, resp.headers)
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        try:
            for chunk in resp.stream:
                if chunk:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, ssl.SSLError):
            self.close_connection = True
        finally:
            close = getattr(resp.stream, "close", None)
            if close is not None:
                close()

    do_GET = do_PATCH = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = _serve


class _MetricsHandler(_Handler):
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?")[0]
        if path == "/metrics":
            text = self.server.render().encode()  # type: ignore[attr-defined]
            headers = []
            if "gzip" in (self.headers.get("Accept-Encoding") or ""):
                text = gzip.compress(text, compresslevel=1)
                headers.append(("Content-Encoding", "gzip"))
            from drpc.twin.metrics import CONTENT_TYPE

            self._send(200, text, CONTENT_TYPE, headers)
        elif path in ("/healthz", "/-/healthy", "/"):
            self._send(200, b"ok\n" if path != "/" else b"drpc twin: see /metrics\n", "text/plain")
        else:
            self.send_error(404, f"no such path: {path} (try /metrics)")

    do_HEAD = do_GET


class _ThreadedServer:
    """A ``_Server`` on ``host:port`` (port 0: any free port) served by one daemon thread."""

    def __init__(self, host: str, port: int, handler, tls: ssl.SSLContext | None, name: str):
        self._server = _Server((host, port), handler, tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=name,
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, close open connections, release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread.is_alive():
            self._thread.join(5.0)


class ApiServer(_ThreadedServer):
    """The HTTPS Kubernetes API on ``host:port``."""

    def __init__(self, host: str, port: int, api: KubeApi, tls: ssl.SSLContext):
        super().__init__(host, port, _ApiHandler, tls, "drpc-twin-api")
        self._server.api = api  # type: ignore[attr-defined]


class MetricsServer(_ThreadedServer):
    """Plain-HTTP ``/metrics`` (Prometheus text format 0.0.4) on ``host:port``."""

    def __init__(self, host: str, port: int, render: Any):
        super().__init__(host, port, _MetricsHandler, None, "drpc-twin-metrics")
        self._server.render = render  # type: ignore[attr-defined]
