"""A local Cloud Storage JSON API (the object reads gcsfs and google-cloud-storage make).

Clients reach it through ``STORAGE_EMULATOR_HOST`` (both honour it). Requests need a
Bearer token issued by the OAuth token endpoint this server inherits from
``GcpCatalogServer`` (service-account JWT grant, signature checked). Implemented:
``GET /storage/v1/b/{bucket}`` (bucket), ``GET /storage/v1/b/{bucket}/o/{object}``
(metadata, or the bytes with ``alt=media``), ``GET /storage/v1/b/{bucket}/o`` (list,
``prefix``/``delimiter``) and ``GET /download/storage/v1/b/{bucket}/o/{object}?alt=media``
with ``Range``. Errors use the API's JSON error shape.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.servers import Seen, json_response
from tests.servers.gcp_catalog import GcpCatalogServer

CREATED = "2026-10-01T00:00:00.000Z"


def _google_error(code: int, status: str, message: str):
    body = {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": status.lower()}],
        }
    }
    return json_response(body, code)


class GcsServer(GcpCatalogServer):
    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        super().__init__([], public_key)
        self.objects: dict[tuple[str, str], bytes] = {}

    def put(self, bucket: str, name: str, data: bytes) -> None:
        self.objects[(bucket, name)] = data

    def is_api_request(self, seen: Seen) -> bool:
        return seen.path.startswith(("/storage/", "/download/"))

    def handle(self, seen: Seen):
        parts = urlsplit(seen.path)
        if not self.is_api_request(seen):
            return super().handle(seen)  # token endpoint, access-boundary lookup
        auth = seen.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return _google_error(401, "UNAUTHENTICATED", "Invalid Credentials")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path.removeprefix("/download")
        segments = path.split("/")  # ['', 'storage', 'v1', 'b', bucket, 'o', object...]
        if len(segments) < 5 or segments[1:4] != ["storage", "v1", "b"]:
            return _google_error(404, "NOT_FOUND", f"Not Found: {parts.path}")
        bucket = unquote(segments[4])
        if len(segments) == 5:
            if not any(b == bucket for b, _ in self.objects):
                return _google_error(404, "NOT_FOUND", "The specified bucket does not exist.")
            return json_response({"kind": "storage#bucket", "id": bucket, "name": bucket})
        if len(segments) == 6 and segments[5] == "o":
            return self._list(bucket, query)
        name = unquote("/".join(segments[6:]))
        data = self.objects.get((bucket, name))
        if data is None:
            return _google_error(404, "NOT_FOUND", f"No such object: {bucket}/{name}")
        if query.get("alt") == "media":
            return self._media(seen, data)
        return json_response(self._resource(bucket, name, data))

    def _resource(self, bucket: str, name: str, data: bytes) -> dict[str, Any]:
        crc = zlib.crc32(data)  # gcsfs does not check it by default; shape only
        return {
            "kind": "storage#object",
            "id": f"{bucket}/{name}/1",
            "selfLink": f"{self.url}/storage/v1/b/{bucket}/o/{quote(name, safe='')}",
            "mediaLink": f"{self.url}/download/storage/v1/b/{bucket}/o/"
            f"{quote(name, safe='')}?generation=1&alt=media",
            "name": name,
            "bucket": bucket,
            "generation": "1",
            "metageneration": "1",
            "contentType": "application/octet-stream",
            "storageClass": "STANDARD",
            "size": str(len(data)),
            "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),  # noqa: S324
            "crc32c": base64.b64encode(crc.to_bytes(4, "big")).decode(),
            "etag": "CAE=",
            "timeCreated": CREATED,
            "updated": CREATED,
            "timeStorageClassUpdated": CREATED,
        }

    def _media(self, seen: Seen, data: bytes):
        headers = {
            "Content-Type": "application/octet-stream",
            "x-goog-generation": "1",
            "x-goog-metageneration": "1",
            "x-goog-stored-content-length": str(len(data)),
            "x-goog-hash": "md5=" + base64.b64encode(hashlib.md5(data).digest()).decode(),  # noqa: S324
            "Accept-Ranges": "bytes",
        }
        wanted = seen.headers.get("range")
        if not wanted:
            return 200, headers, data
        first, _, last = wanted.removeprefix("bytes=").partition("-")
        start = int(first) if first else max(len(data) - int(last), 0)
        end = min(int(last) if (last and first) else len(data) - 1, len(data) - 1)
        if start >= len(data):
            headers["Content-Range"] = f"bytes */{len(data)}"
            return 416, headers, b""
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        headers.pop("x-goog-hash")
        return 206, headers, data[start : end + 1]

    def _list(self, bucket: str, query: dict[str, str]):
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        items, prefixes = [], set()
        for (b, name), data in sorted(self.objects.items()):
            if b != bucket or not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
            else:
                items.append(self._resource(bucket, name, data))
        body: dict[str, Any] = {"kind": "storage#objects", "items": items}
        if prefixes:
            body["prefixes"] = sorted(prefixes)
        return json_response(body)
