"""Streamable HTTP for the bridge, behind a bearer token.

Every request must carry ``Authorization: Bearer $OPSFLOW_MCP_TOKEN`` (compared in
constant time); anything else gets 401 before the MCP app sees it, so it starts
nothing. Without a token the bridge only starts when told ``--insecure-local`` on a
loopback address.
"""

from __future__ import annotations

import hmac
import ipaddress
import json

import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

LOOPBACK_NAMES = {"localhost"}


def parse_http_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--http expects HOST:PORT, got {value!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_http_security(host: str, token: str | None, insecure_local: bool) -> None:
    if token:
        if len(token) < 16:
            raise ValueError("OPSFLOW_MCP_TOKEN must be at least 16 characters")
        return
    if not insecure_local:
        raise ValueError(
            "refusing to serve MCP over HTTP without OPSFLOW_MCP_TOKEN; set it, or pass "
            "--insecure-local on a loopback address"
        )
    if not is_loopback(host):
        raise ValueError(f"--insecure-local only works on a loopback address, not {host!r}")


class BearerTokenMiddleware:
    """ASGI middleware: 401 unless the request carries the expected bearer token."""

    def __init__(self, app, token: str):
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if not hmac.compare_digest(given, self._expected):
            body = json.dumps(
                {"error": "invalid_token", "error_description": "bearer token required"}
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="opsflow"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body.encode()})
            return None
        return await self.app(scope, receive, send)


def http_app(server: MCPServer, host: str, token: str | None):
    security = None
    if is_loopback(host):
        # DNS-rebinding protection: only loopback Host headers are accepted.
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    app = server.streamable_http_app(host=host, transport_security=security)
    return BearerTokenMiddleware(app, token) if token else app


def run_http(server: MCPServer, host: str, port: int, token: str | None) -> None:
    uvicorn.run(http_app(server, host, token), host=host, port=port, log_level="warning")
