"""A file server on 127.0.0.1 for download tests: Range support, a request log, a mode that
drops the connection once after K bytes of a file, and one that sends more than the file."""
from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    path: str
    range: str | None
    status: int
    sent: int = 0


@dataclass
class FileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    ranges: bool = True                                   # False: answer Range with 200
    drop_after: dict[str, int] = field(default_factory=dict)   # path -> K bytes, once
    # path -> N: N zero bytes follow the file, declared in Content-Length, or with no
    # Content-Length at all (the body ends when the connection closes) for paths in no_length
    oversend: dict[str, int] = field(default_factory=dict)
    no_length: set[str] = field(default_factory=set)
    log: list[Request] = field(default_factory=list)

    def start(self) -> FileServer:
        owner = self

        class Handler(_Handler):
            server_owner = owner
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def requests_for(self, path: str) -> list[Request]:
        return [r for r in self.log if r.path == path]

    def bytes_sent(self, path: str) -> int:
        return sum(r.sent for r in self.requests_for(path))


class _Handler(BaseHTTPRequestHandler):
    server_owner: FileServer

    def log_message(self, *args) -> None:   # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.server_owner
        data = srv.files.get(self.path)
        rng = self.headers.get("Range")
        if data is None:
            return self._status(Request(self.path, rng, 404), 404)
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and srv.ranges:
            start = int(m.group(1))
            if start >= len(data):
                return self._status(Request(self.path, rng, 416), 416,
                                    {"Content-Range": f"bytes */{len(data)}"})
        req = Request(self.path, rng, 206 if start else 200)
        srv.log.append(req)
        body = data[start:]
        extra = srv.oversend.get(self.path, 0)
        self.send_response(req.status)
        if self.path not in srv.no_length:
            self.send_header("Content-Length", str(len(body) + extra))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        drop = srv.drop_after.pop(self.path, None)
        if drop is not None and drop < len(body):
            self.wfile.write(body[:drop])
            req.sent = drop
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)   # the "network" fails mid-file
            return
        self.wfile.write(body)
        req.sent = len(body)
        if extra:
            self._send_zeros(req, extra)

    def _send_zeros(self, req: Request, n: int) -> None:
        """``n`` more bytes, counted as they go, until the client hangs up."""
        zeros = bytes(1 << 16)
        try:
            while n > 0:
                self.wfile.write(zeros[:n])
                req.sent += min(n, len(zeros))
                n -= len(zeros)
        except OSError:                     # the client stopped reading: what we want
            self.close_connection = True

    def _status(self, req: Request, code: int, headers: dict | None = None) -> None:
        self.server_owner.log.append(req)
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (offline, connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
