"""Small local HTTP servers that speak the documented shapes of the cloud APIs opsflow calls.

Each runs a ``ThreadingHTTPServer`` on 127.0.0.1 with an OS-chosen port in a daemon
thread, records the requests it saw, and can be told to fail (``fail``) to exercise
retry behaviour.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    """Answer the next ``times`` matching requests (None: all of them) with an error."""

    status: int
    body: dict[str, Any]
    times: int | None = 1
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float = field(default_factory=time.time)  # when it arrived (epoch seconds)


class LocalServer:
    """Base class: subclasses implement ``handle(request) -> (status, headers, body)``."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self.faults_served = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                status, headers, payload = owner._dispatch(seen)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(
        self,
        status: int,
        body: dict[str, Any] | None = None,
        times: int | None = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue an error answer for the next API requests (``times=None``: forever)."""
        self.faults.append(Fault(status, body or {}, times, headers or {}))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self.faults_served = 0

    def is_api_request(self, seen: Seen) -> bool:
        """Whether faults apply to this request (subclasses exclude e.g. token calls)."""
        return True

    def _dispatch(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(seen)
            fault = None
            if self.faults and self.is_api_request(seen):
                fault = self.faults[0]
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.pop(0)
                self.faults_served += 1
        if fault is not None:
            return self.error_response(fault)
        return self.handle(seen)

    def error_response(self, fault: Fault) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", **fault.headers}
        return fault.status, headers, json.dumps(fault.body).encode()

    def handle(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError


def json_response(data: Any, status: int = 200, content_type: str = "application/json"):
    return status, {"Content-Type": content_type}, json.dumps(data).encode()
