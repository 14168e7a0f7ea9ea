"""A local Grafana HTTP API: dashboard search, annotations and datasource queries.

Behind a bearer token (401 ``{"message": "Unauthorized"}`` otherwise) it serves:

- ``GET /api/search`` with ``type``, ``query`` (case-insensitive title match), ``tag``
  (all must match) and ``limit``;
- ``GET /api/annotations`` with ``from``/``to`` (epoch ms), ``tags`` (all must match, or
  any with ``matchAny=true``), ``dashboardUID`` and ``limit``; newest first, as Grafana;
- ``POST /api/ds/query``: each query's ``refId`` is answered from ``frames_by_ref``
  (frames in the data-plane JSON shape, kept to the requested ``from``..``to``) or from
  ``errors_by_ref`` (``{"error": ..., "status": 400}``; the response is then HTTP 400, as
  Grafana answers a request with a failed query). An unknown datasource uid is a 404.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import LocalServer, Seen, json_response


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def dashboard(uid: str, title: str, tags: list[str], folder: str = "Services") -> dict[str, Any]:
    return {
        "id": abs(hash(uid)) % 1000,
        "uid": uid,
        "title": title,
        "uri": f"db/{uid}",
        "url": f"/d/{uid}/{title.lower().replace(' ', '-')}",
        "slug": "",
        "type": "dash-db",
        "tags": tags,
        "isStarred": False,
        "folderUid": "f1",
        "folderTitle": folder,
    }


def annotation(
    annotation_id: int,
    when: datetime,
    text: str,
    tags: list[str],
    *,
    dashboard_uid: str | None = "svc-overview",
    alert: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """An annotation; ``alert`` = (alert name, new state, previous state)."""
    out: dict[str, Any] = {
        "id": annotation_id,
        "alertId": 0,
        "alertName": "",
        "dashboardId": 1 if dashboard_uid else 0,
        "dashboardUID": dashboard_uid,
        "panelId": 2 if dashboard_uid else 0,
        "userId": 1,
        "newState": "",
        "prevState": "",
        "created": ms(when),
        "updated": ms(when),
        "time": ms(when),
        "timeEnd": ms(when),
        "text": text,
        "tags": tags,
        "login": "ci-bot",
        "email": "ci@example.com",
        "avatarUrl": "",
        "data": {},
    }
    if alert:
        out.update(
            {"alertId": 7, "alertName": alert[0], "newState": alert[1], "prevState": alert[2]}
        )
    return out


def wide_frame(
    ref_id: str,
    stamps: list[datetime],
    series: list[tuple[dict[str, str], list[float | None]]],
    unit: str | None = None,
) -> dict[str, Any]:
    """A wide data frame: one time field and one number field per (labels, values)."""
    fields: list[dict[str, Any]] = [
        {"name": "Time", "type": "time", "typeInfo": {"frame": "time.Time"}}
    ]
    for labels, _ in series:
        field: dict[str, Any] = {
            "name": "Value",
            "type": "number",
            "typeInfo": {"frame": "float64", "nullable": True},
            "labels": labels,
            "config": {},
        }
        if unit:
            field["config"]["unit"] = unit
        fields.append(field)
    return {
        "schema": {"refId": ref_id, "meta": {"type": "timeseries-multi"}, "fields": fields},
        "data": {"values": [[ms(t) for t in stamps], *[values for _, values in series]]},
    }


class GrafanaServer(LocalServer):
    """Dashboards, annotations and per-refId datasource answers behind a token."""

    def __init__(self, token: str, datasources: tuple[str, ...] = ("prom",)) -> None:
        super().__init__()
        self.token = token
        self.datasources = set(datasources)
        self.dashboards: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.frames_by_ref: dict[str, list[dict[str, Any]]] = {}
        self.errors_by_ref: dict[str, str] = {}

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(s.body) for s in self.requests if urlsplit(s.path).path == path]

    def queries(self, path: str) -> list[dict[str, list[str]]]:
        return [
            parse_qs(urlsplit(s.path).query) for s in self.requests if urlsplit(s.path).path == path
        ]

    def handle(self, seen: Seen):
        if seen.headers.get("authorization") != f"Bearer {self.token}":
            return json_response({"message": "Unauthorized"}, 401)
        parts = urlsplit(seen.path)
        query = parse_qs(parts.query)
        if seen.method == "GET" and parts.path == "/api/search":
            return self._search(query)
        if seen.method == "GET" and parts.path == "/api/annotations":
            return self._annotations(query)
        if seen.method == "POST" and parts.path == "/api/ds/query":
            return self._ds_query(json.loads(seen.body or b"{}"))
        return json_response({"message": "Not found"}, 404)

    def _search(self, query: dict[str, list[str]]):
        text = (query.get("query") or [""])[0].lower()
        tags = set(query.get("tag") or [])
        hits = [
            d
            for d in self.dashboards
            if text in d["title"].lower()
            and tags <= set(d["tags"])
            and d["type"] in (query.get("type") or [d["type"]])
        ]
        return json_response(hits[: int((query.get("limit") or ["1000"])[0])])

    def _annotations(self, query: dict[str, list[str]]):
        start = int((query.get("from") or ["0"])[0])
        end = int((query.get("to") or [str(2**62)])[0])
        tags = set(query.get("tags") or [])
        any_tag = (query.get("matchAny") or ["false"])[0] == "true"
        uid = (query.get("dashboardUID") or [None])[0]
        hits = []
        for a in self.annotations:
            if not start <= a["time"] <= end:
                continue
            if tags and not (tags & set(a["tags"]) if any_tag else tags <= set(a["tags"])):
                continue
            if uid and a["dashboardUID"] != uid:
                continue
            hits.append(a)
        hits.sort(key=lambda a: a["time"], reverse=True)
        return json_response(hits[: int((query.get("limit") or ["100"])[0])])

    def _ds_query(self, body: dict[str, Any]):
        start, end = int(body.get("from", 0)), int(body.get("to", 2**62))
        results: dict[str, Any] = {}
        status = 200
        for q in body.get("queries") or []:
            uid = (q.get("datasource") or {}).get("uid")
            if uid not in self.datasources:
                return json_response({"message": "Data source not found"}, 404)
            ref = q["refId"]
            if ref in self.errors_by_ref:
                results[ref] = {"error": self.errors_by_ref[ref], "status": 400, "frames": []}
                status = 400
                continue
            frames = []
            for frame in self.frames_by_ref.get(ref, []):
                stamps, *rest = frame["data"]["values"]
                keep = [i for i, t in enumerate(stamps) if start <= t <= end]
                values = [[stamps[i] for i in keep], *[[col[i] for i in keep] for col in rest]]
                frames.append({"schema": frame["schema"], "data": {"values": values}})
            results[ref] = {"status": 200, "frames": frames}
        return json_response({"results": results}, status)
