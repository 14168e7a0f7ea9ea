"""A local Compute Engine REST API: aggregated lists of instances and disks.

``GET /compute/v1/projects/{p}/aggregated/instances`` and ``.../aggregated/disks``
answer like the real API: ``items`` keyed by ``zones/<zone>`` (or ``regions/<region>``
for regional disks), an empty scope carrying a ``NO_RESULTS_ON_PAGE`` warning, paged
with ``maxResults`` / ``pageToken`` / ``nextPageToken``. Access tokens come from the
OAuth token endpoint of ``tests.servers.gcp_catalog`` (pass its ``tokens`` set).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import LocalServer, Seen, json_response
from tests.servers.bigquery import google_error

BASE = "https://www.googleapis.com/compute/v1"
_AGG = re.compile(r"^/compute/v1/projects/([^/]+)/aggregated/(instances|disks)$")


def instance(
    project: str,
    zone: str,
    name: str,
    machine_type: str,
    status: str = "RUNNING",
    *,
    labels: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An ``Instance`` in the REST JSON shape."""
    zone_url = f"{BASE}/projects/{project}/zones/{zone}"
    return {
        "kind": "compute#instance",
        "id": str(abs(hash((project, zone, name))) % 10**18),
        "name": name,
        "zone": zone_url,
        "machineType": f"{zone_url}/machineTypes/{machine_type}",
        "status": status,
        "labels": labels or {},
        "creationTimestamp": "2025-01-10T09:00:00.000-08:00",
        "selfLink": f"{zone_url}/instances/{name}",
        **extra,
    }


def disk(
    project: str,
    name: str,
    size_gb: int,
    disk_type: str,
    *,
    zone: str | None = None,
    region: str | None = None,
    users: list[str] | None = None,
    labels: dict[str, str] | None = None,
    status: str = "READY",
) -> dict[str, Any]:
    """A zonal (``zone``) or regional (``region``) ``Disk`` in the REST JSON shape."""
    where = f"{BASE}/projects/{project}/" + (f"zones/{zone}" if zone else f"regions/{region}")
    out: dict[str, Any] = {
        "kind": "compute#disk",
        "id": str(abs(hash((project, name))) % 10**18),
        "name": name,
        "sizeGb": str(size_gb),
        "type": f"{where}/diskTypes/{disk_type}",
        "status": status,
        "labels": labels or {},
        "creationTimestamp": "2025-02-01T00:00:00.000-08:00",
        "selfLink": f"{where}/disks/{name}",
        "zone" if zone else "region": where,
    }
    if users:
        out["users"] = users
    return out


def _scope_of(item: dict[str, Any]) -> str:
    url = item.get("zone") or item.get("region") or ""
    parts = url.rstrip("/").split("/")
    return f"{parts[-2]}/{parts[-1]}"


class GcpComputeServer(LocalServer):
    def __init__(
        self,
        tokens: set[str],
        instances: list[dict[str, Any]],
        disks: list[dict[str, Any]],
        empty_scopes: tuple[str, ...] = ("zones/asia-east1-a",),
    ) -> None:
        super().__init__()
        self.tokens = tokens
        self.items = {"instances": instances, "disks": disks}
        self.empty_scopes = empty_scopes

    def is_api_request(self, seen: Seen) -> bool:
        return seen.path.startswith("/compute/")

    def api_requests(self, kind: str = "") -> list[Seen]:
        return [r for r in self.requests if self.is_api_request(r) and f"/{kind}" in r.path]

    def handle(self, seen: Seen):
        parts = urlsplit(seen.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        auth = seen.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return json_response(
                google_error(401, "UNAUTHENTICATED", "Request had invalid credentials."), 401
            )
        match = _AGG.match(parts.path)
        if seen.method != "GET" or not match:
            return json_response(google_error(404, "NOT_FOUND", f"{parts.path} not found"), 404)
        project, kind = match.groups()
        size = int(query.get("maxResults") or 500)
        start = int(query.get("pageToken") or 0)
        page = self.items[kind][start : start + size]
        items: dict[str, Any] = {}
        for item in page:
            items.setdefault(_scope_of(item), {kind: []})[kind].append(item)
        for scope in self.empty_scopes:
            items.setdefault(
                scope,
                {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results"}},
            )
        body: dict[str, Any] = {
            "kind": f"compute#{kind[:-1]}AggregatedList",
            "id": f"projects/{project}/aggregated/{kind}",
            "items": items,
            "selfLink": f"{BASE}/projects/{project}/aggregated/{kind}",
        }
        if start + size < len(self.items[kind]):
            body["nextPageToken"] = str(start + size)
        return json_response(body)
