"""A gunicorn worker whose threads never wait on a slow client.

gunicorn's `gthread` worker hands a connection to a thread as soon as its first byte arrives,
and the thread then blocks until the whole request is read, with no time limit. A handful of
slow clients (headers sent a byte at a time, or a body that never ends) can so hold every
thread of every worker, and a connection that never sends anything is never closed.

`BufferingThreadWorker` reads each request in the worker's event loop instead, without
blocking, as a buffering proxy would: the headers, and the body when Content-Length announces
one of at most MAX_BODY_BYTES. A thread gets the connection only once the whole request is
there, so slow clients cost a little memory, not a thread. A request that is not complete
REQUEST_READ_TIMEOUT_SECONDS after its connection opened (or, on a kept-alive connection, after
its first byte) is answered 408 and closed, and counted in crm_slow_clients_dropped_total. The
bodies the loop does not buffer (chunked, `Expect: 100-continue`, larger than MAX_BODY_BYTES) are
read by the thread under the same deadline, and writing the answer has that timeout too.

Headers may take up to MAX_BUFFERED_HEADERS (256 KiB, so that a URL holding the longest valid
query fits: gunicorn's own request-line limit is switched off in gunicorn.conf.py); beyond that
the answer is 431. gunicorn's answers to requests it cannot parse are problem details too
(`write_problem`), as every other error of the service.

Memory: at most `worker_connections` x (256 KiB + MAX_BODY_BYTES) of buffered requests per worker.
"""
from __future__ import annotations

import json
import logging
import re
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import TConn, ThreadWorker

from service.config import Settings

logger = logging.getLogger(__name__)

#: Request line and headers larger than this are answered 431 without a thread seeing them.
MAX_BUFFERED_HEADERS = 256 * 1024
_RECV = 64 * 1024
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d+)[ \t]*(?=\r\n|$)")


def problem_bytes(status: int, reason: str, slug: str, detail: str) -> bytes:
    """A whole HTTP response carrying an RFC 9457 problem, for answers given outside Flask."""
    body = json.dumps({"type": f"/docs#problem-{slug}", "title": reason, "status": status,
                       "detail": detail[:300]}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Replaces gunicorn's HTML error page (`gunicorn.util.write_error`) in our workers."""
    slug = {408: "request-timeout", 431: "http-error", 413: "body-too-large"}.get(status_int, "http-error")
    util.write_nonblock(sock, problem_bytes(status_int, reason, slug, mesg or reason))


_REQUEST_TIMEOUT = problem_bytes(408, "Request Timeout", "request-timeout", "The request took too long to arrive.")
_HEADERS_TOO_LARGE = problem_bytes(431, "Request Header Fields Too Large", "http-error",
                                   f"The request line and headers are larger than {MAX_BUFFERED_HEADERS} bytes.")


class SlowClient(NoMoreData):
    """The client did not send its whole request before its deadline."""


class _DeadlineReader:
    """What gunicorn's parser reads from: the socket, but a request's reads stop at its deadline."""

    def __init__(self, conn: BufferedConn) -> None:
        self.conn = conn

    def recv(self, size: int) -> bytes:
        sock = self.conn.sock
        remaining = self.conn.read_deadline - time.monotonic()
        if remaining <= 0:
            self.conn.dropped("thread")
            raise SlowClient(b"")
        sock.settimeout(remaining)
        try:
            return sock.recv(size)
        except TimeoutError:
            self.conn.dropped("thread")
            raise SlowClient(b"") from None
        finally:
            sock.settimeout(self.conn.io_timeout)


class BufferedConn(TConn):
    """A connection with the bytes of its next request read so far, and that request's deadline."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any, io_timeout: float) -> None:
        super().__init__(cfg, sock, client, server)
        self.io_timeout = io_timeout
        self.pending = bytearray()
        self.read_deadline = time.monotonic() + io_timeout
        self.requests = 0

    def start_request(self) -> None:
        self.read_deadline = time.monotonic() + self.io_timeout

    def init(self) -> None:
        super().init()
        if not isinstance(self.parser.unreader.sock, _DeadlineReader):
            self.parser.unreader.sock = _DeadlineReader(self)
        self.sock.settimeout(self.io_timeout)  # bounds writing the answer to a client that stopped reading
        if self.pending:
            self.parser.unreader.unread(bytes(self.pending))
            self.pending.clear()

    def dropped(self, stage: str) -> None:
        from service.metrics import SLOW_CLIENTS  # not at import: the master loads this module too

        SLOW_CLIENTS.labels(stage).inc()
        logger.warning("slow client dropped", extra={"stage": stage, "timeout_seconds": self.io_timeout})


def request_complete(buffer: bytes | bytearray, max_body: int) -> bool:
    """True once `buffer` holds a whole request, or as much of one as the loop should buffer."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = bytes(buffer[:end]).lower()
    if b"\r\ntransfer-encoding" in head or b"\r\nexpect" in head:
        return True
    match = _CONTENT_LENGTH.search(head)
    if match is None:
        return True
    length = int(match.group(1))
    return length > max_body or len(buffer) >= end + 4 + length


class BufferingThreadWorker(ThreadWorker):
    """gthread, with requests read in the event loop and a deadline on each (module docstring)."""

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl:
            raise RuntimeError("BufferingThreadWorker reads requests before TLS would be unwrapped: terminate "
                               "TLS in front of the service")

    def init_process(self) -> None:
        util.write_error = write_problem  # this worker process answers protocol errors as problems
        super().init_process()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = Settings.from_env()
        self.io_timeout = settings.request_read_timeout_seconds
        self.max_body = settings.max_body_bytes
        self.keepalive_requests = settings.keepalive_requests
        self._reading: dict[BufferedConn, None] = {}

    def handle_request(self, req: Any, conn: BufferedConn) -> bool:  # type: ignore[override]
        """gthread's, but the KEEPALIVE_REQUESTS-th request of a connection is answered with
        `Connection: close`. Why: a connection stays on the worker that accepted it, and a burst of
        connections (a load balancer's pool, a benchmark's) is often accepted by one worker alone,
        which then does all the work while the other idles: measured, /healthz ran at 2,500-2,900
        req/s when wrk's 16 connections sat on one of two workers and 4,000-6,200 when they were
        split. A client that reconnects is accepted by whichever worker is free first, so the
        connections spread over the workers within a few hundred requests."""
        conn.requests += 1
        if self.keepalive_requests and conn.requests >= self.keepalive_requests:
            req.must_close = True
        return bool(super().handle_request(req, conn))

    def accept(self, server: Any, listener: socket.socket) -> None:
        try:
            sock, client = listener.accept()
        except OSError as error:
            if isinstance(error, BlockingIOError | ConnectionAbortedError):
                return
            raise
        conn = BufferedConn(self.cfg, sock, client, server, self.io_timeout)
        self.nr_conns += 1
        self._reading[conn] = None
        with self._lock:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def on_client_socket_readable(self, conn: BufferedConn, client: socket.socket) -> None:
        with self._lock:
            self.poller.unregister(client)
            if conn.initialized and conn not in self._reading:  # a kept-alive connection speaks again
                try:
                    self._keep.remove(conn)
                except ValueError:
                    return  # closed by the keep-alive sweep meanwhile
                conn.start_request()
                self._reading[conn] = None
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            self._wait_for_more(conn)
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        conn.pending += data
        if b"\r\n\r\n" not in conn.pending[:MAX_BUFFERED_HEADERS + 4] and len(conn.pending) > MAX_BUFFERED_HEADERS:
            self._refuse(conn, _HEADERS_TOO_LARGE)
            return
        if request_complete(conn.pending, self.max_body):
            self._reading.pop(conn, None)
            self.enqueue_req(conn)
        else:
            self._wait_for_more(conn)

    def _wait_for_more(self, conn: BufferedConn) -> None:
        with self._lock:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def _refuse(self, conn: BufferedConn, answer: bytes) -> None:
        try:
            conn.sock.setblocking(False)
            conn.sock.send(answer)
        except OSError:
            pass
        self._close(conn)

    def _close(self, conn: BufferedConn) -> None:
        self._reading.pop(conn, None)
        with self._lock:
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
        self.nr_conns -= 1
        conn.close()

    def enqueue_req(self, conn: BufferedConn) -> None:  # type: ignore[override]
        conn.init()
        fs = self.tpool.submit(self.handle, conn)
        self._wrap_future(fs, conn)

    def murder_keepalived(self) -> None:
        """Close idle kept-alive connections (gthread), and requests past their deadline."""
        super().murder_keepalived()
        now = time.monotonic()
        for conn in [c for c in self._reading if c.read_deadline <= now]:
            if not conn.pending:
                conn.dropped("idle")
            else:
                conn.dropped("headers" if b"\r\n\r\n" not in conn.pending else "body")
            self._refuse(conn, _REQUEST_TIMEOUT)
