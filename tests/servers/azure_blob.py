"""A local Azure Blob Storage endpoint speaking the REST shapes adlfs and azure-storage-blob use.

Path-style addressing, as Azurite: ``http://127.0.0.1:<port>/<account>/<container>/<blob>``;
clients reach it through a connection string with ``BlobEndpoint=`` (``connection_string``).
Every request must carry a valid Shared Key signature made with the account key
(https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key), else
403 ``AuthenticationFailed``. Implemented: Get Blob (whole or ``x-ms-range``/``Range``),
Get Blob Properties (HEAD), Get Container Properties and List Blobs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

from tests.servers import LocalServer, Seen

API_VERSION = "2025-11-05"
_SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def _http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


class AzureBlobServer(LocalServer):
    def __init__(self, account: str = "devstoreaccount1", key: str | None = None) -> None:
        super().__init__()
        self.account = account
        self.key = key or base64.b64encode(secrets.token_bytes(64)).decode()
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.created = datetime(2026, 10, 1, tzinfo=UTC)
        self.auth_failures = 0
        _allow_head(self)

    @property
    def blob_endpoint(self) -> str:
        return f"{self.url}/{self.account}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def put(self, container: str, name: str, data: bytes) -> None:
        self.blobs[(container, name)] = data

    def is_api_request(self, seen: Seen) -> bool:
        return True

    # -------------------------------------------------------------- shared key

    def expected_signature(self, seen: Seen) -> str:
        parts = urlsplit(seen.path)
        headers = dict(seen.headers)
        if headers.get("content-length") == "0":
            headers.pop("content-length")
        lines = [seen.method] + [headers.get(h, "") for h in _SIGNED_HEADERS]
        canonical_headers = "".join(
            f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-")
        )
        resource = f"/{self.account}{parts.path}"
        query: dict[str, list[str]] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(k.lower(), []).append(v)
        resource += "".join(f"\n{k}:{','.join(sorted(v))}" for k, v in sorted(query.items()))
        to_sign = "\n".join(lines) + "\n" + canonical_headers + resource
        digest = hmac.new(base64.b64decode(self.key), to_sign.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def _authorized(self, seen: Seen) -> bool:
        auth = seen.headers.get("authorization", "")
        prefix = f"SharedKey {self.account}:"
        return auth.startswith(prefix) and hmac.compare_digest(
            auth[len(prefix) :], self.expected_signature(seen)
        )

    # -------------------------------------------------------------- routes

    def handle(self, seen: Seen):
        parts = urlsplit(seen.path)
        segments = [unquote(s) for s in parts.path.split("/")[1:]]
        if not segments or segments[0] != self.account:
            return _error(400, "InvalidUri", "The requested URI does not represent a resource.")
        if not self._authorized(seen):
            self.auth_failures += 1
            return _error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of "
                "Authorization header is formed correctly including the signature.",
            )
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        container = segments[1] if len(segments) > 1 else ""
        name = "/".join(segments[2:])
        if not name and query.get("restype") == "container":
            if query.get("comp") == "list":
                return self._list(container, query)
            if any(c == container for c, _ in self.blobs):
                return (
                    200,
                    self._common({"ETag": '"0x8DCE1"', "Last-Modified": _http_date(self.created)}),
                    b"",
                )
            return _error(404, "ContainerNotFound", "The specified container does not exist.")
        data = self.blobs.get((container, name))
        if data is None:
            return _error(404, "BlobNotFound", "The specified blob does not exist.")
        headers = self._properties(data)
        if seen.method == "HEAD":
            return 200, headers, data  # the HEAD handler sends headers only
        if seen.method != "GET":
            return _error(405, "UnsupportedHttpVerb", f"{seen.method} is not supported here.")
        wanted = seen.headers.get("x-ms-range") or seen.headers.get("range")
        if not wanted:
            return 200, headers, data
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        start = int(first)
        if start >= len(data):
            return _error(416, "InvalidRange", "The range specified is invalid for the resource.")
        end = min(int(last) if last else len(data) - 1, len(data) - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return 206, headers, data[start : end + 1]

    def _common(self, extra: dict[str, str]) -> dict[str, str]:
        return {
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-version": API_VERSION,
            "Date": _http_date(datetime.now(UTC)),
            **extra,
        }

    def _properties(self, data: bytes) -> dict[str, str]:
        return self._common(
            {
                "Content-Type": "application/octet-stream",
                "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),  # noqa: S324
                "Last-Modified": _http_date(self.created),
                "ETag": f'"0x{hashlib.sha1(data).hexdigest()[:15].upper()}"',  # noqa: S324
                "Accept-Ranges": "bytes",
                "x-ms-blob-type": "BlockBlob",
                "x-ms-creation-time": _http_date(self.created),
                "x-ms-lease-status": "unlocked",
                "x-ms-lease-state": "available",
                "x-ms-server-encrypted": "true",
                "x-ms-access-tier": "Hot",
                "x-ms-access-tier-inferred": "true",
            }
        )

    def _list(self, container: str, query: dict[str, str]):
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        blobs, prefixes = [], set()
        for (c, name), data in sorted(self.blobs.items()):
            if c != container or not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
                continue
            blobs.append(
                f"<Blob><Name>{escape(name)}</Name><Properties>"
                f"<Creation-Time>{_http_date(self.created)}</Creation-Time>"
                f"<Last-Modified>{_http_date(self.created)}</Last-Modified>"
                f"<Etag>0x8DCE1</Etag><Content-Length>{len(data)}</Content-Length>"
                "<Content-Type>application/octet-stream</Content-Type>"
                "<BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier>"
                "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
                "<ServerEncrypted>true</ServerEncrypted></Properties></Blob>"
            )
        blobs += [f"<BlobPrefix><Name>{escape(p)}</Name></BlobPrefix>" for p in sorted(prefixes)]
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<EnumerationResults ServiceEndpoint="{self.blob_endpoint}/" '
            f'ContainerName="{escape(container)}"><Prefix>{escape(prefix)}</Prefix>'
            f"<Delimiter>{escape(delimiter)}</Delimiter><Blobs>{''.join(blobs)}</Blobs>"
            "<NextMarker /></EnumerationResults>"
        )
        return 200, self._common({"Content-Type": "application/xml"}), body.encode()


def _error(status: int, code: str, message: str):
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{escape(message)}\nRequestId:{uuid.uuid4()}\n"
        f"Time:{datetime.now(UTC).isoformat()}</Message></Error>"
    )
    headers = {"Content-Type": "application/xml", "x-ms-error-code": code}
    return status, headers, body.encode()


def _allow_head(server: LocalServer) -> None:
    """Answer HEAD like GET, headers only (Get Blob Properties); LocalServer has no HEAD."""

    def do_HEAD(handler: Any) -> None:  # noqa: N802
        seen = Seen("HEAD", handler.path, {k.lower(): v for k, v in handler.headers.items()}, b"")
        status, headers, payload = server._dispatch(seen)
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()

    server.httpd.RequestHandlerClass.do_HEAD = do_HEAD
