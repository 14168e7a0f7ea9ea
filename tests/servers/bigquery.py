"""A local BigQuery REST API for query jobs (it does not run SQL).

``POST /bigquery/v2/projects/{p}/queries`` (jobs.query) records the SQL and query
parameters it was sent and answers with canned rows, the first page inline and a
``pageToken`` for the rest; ``GET .../queries/{jobId}`` (jobs.getQueryResults) and
``GET .../jobs/{jobId}`` (jobs.get) serve the remaining pages and the job. Rows use the
API's ``{"f": [{"v": ...}]}`` shape with string-encoded scalars.

Access tokens come from the OAuth token endpoint of ``tests.servers.gcp_catalog``
(pass its ``tokens`` set); a request without one gets 401.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import LocalServer, Seen, json_response

_QUERIES = re.compile(r"^/bigquery/v2/projects/([^/]+)/queries$")
_RESULTS = re.compile(r"^/bigquery/v2/projects/([^/]+)/queries/([^/]+)$")
_JOB = re.compile(r"^/bigquery/v2/projects/([^/]+)/jobs/([^/]+)$")

# The columns tasks.costs.gcp.COST_SQL selects, with their BigQuery types.
COST_SCHEMA = [
    ("usage_date", "DATE"),
    ("billing_account_id", "STRING"),
    ("project_id", "STRING"),
    ("project_name", "STRING"),
    ("service_id", "STRING"),
    ("service_name", "STRING"),
    ("sku_id", "STRING"),
    ("sku_description", "STRING"),
    ("region", "STRING"),
    ("invoice_month", "STRING"),
    ("cost_type", "STRING"),
    ("currency", "STRING"),
    ("labels_json", "STRING"),
    ("resource_id", "STRING"),
    ("resource_name", "STRING"),
    ("cost", "FLOAT"),
    ("credits", "FLOAT"),
    ("usage_amount", "FLOAT"),
    ("usage_unit", "STRING"),
]


def google_error(code: int, status: str, message: str, reason: str = "") -> dict[str, Any]:
    errors = [{"reason": reason, "message": message}] if reason else []
    return {"error": {"code": code, "message": message, "status": status, "errors": errors}}


def _cell(value: Any) -> dict[str, Any]:
    if value is None:
        return {"v": None}
    if isinstance(value, date):
        return {"v": value.isoformat()}
    return {"v": str(value)}


class BigQueryServer(LocalServer):
    def __init__(
        self,
        tokens: set[str],
        rows: list[dict[str, Any]],
        schema: list[tuple[str, str]] = COST_SCHEMA,
        page_size: int = 1000,
    ) -> None:
        super().__init__()
        self.tokens = tokens
        self.rows = rows
        self.schema = schema
        self.page_size = page_size
        self.queries: list[dict[str, Any]] = []  # jobs.query bodies
        self.jobs: dict[str, dict[str, Any]] = {}

    def is_api_request(self, seen: Seen) -> bool:
        return seen.path.startswith("/bigquery/")

    def api_requests(self) -> list[Seen]:
        return [r for r in self.requests if self.is_api_request(r)]

    def handle(self, seen: Seen):
        parts = urlsplit(seen.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        auth = seen.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return json_response(
                google_error(401, "UNAUTHENTICATED", "Request had invalid credentials."), 401
            )
        if seen.method == "POST" and (m := _QUERIES.match(parts.path)):
            return self._query(m.group(1), json.loads(seen.body or b"{}"))
        if seen.method == "GET" and (m := _RESULTS.match(parts.path)):
            return self._results(m.group(1), m.group(2), query)
        if seen.method == "GET" and (m := _JOB.match(parts.path)):
            return self._job(m.group(1), m.group(2))
        return json_response(google_error(404, "NOT_FOUND", f"{parts.path} not found"), 404)

    def _schema(self) -> dict[str, Any]:
        return {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in self.schema]}

    def _page(self, start: int, size: int) -> tuple[list[dict[str, Any]], str | None]:
        names = [n for n, _ in self.schema]
        chunk = self.rows[start : start + size]
        token = str(start + size) if start + size < len(self.rows) else None
        return [{"f": [_cell(r.get(n)) for n in names]} for r in chunk], token

    def _query(self, project: str, body: dict[str, Any]):
        self.queries.append(body)
        if body.get("useLegacySql", False):
            return json_response(google_error(400, "INVALID_ARGUMENT", "legacy SQL"), 400)
        job_id = "job_" + secrets.token_hex(6)
        location = body.get("location") or "US"
        self.jobs[job_id] = {"query": body.get("query", ""), "location": location}
        size = min(self.page_size, int(body.get("maxResults") or self.page_size))
        rows, token = self._page(0, size)
        out: dict[str, Any] = {
            "kind": "bigquery#queryResponse",
            "schema": self._schema(),
            "jobReference": {"projectId": project, "jobId": job_id, "location": location},
            "totalRows": str(len(self.rows)),
            "rows": rows,
            "totalBytesProcessed": "1024",
            "jobComplete": True,
            "cacheHit": False,
        }
        if token:
            out["pageToken"] = token
        return json_response(out)

    def _results(self, project: str, job_id: str, query: dict[str, str]):
        job = self.jobs.get(job_id)
        if job is None:
            return json_response(google_error(404, "NOT_FOUND", f"Job {job_id} not found"), 404)
        size = int(query.get("maxResults") or self.page_size)
        out: dict[str, Any] = {
            "kind": "bigquery#getQueryResultsResponse",
            "schema": self._schema(),
            "jobReference": {"projectId": project, "jobId": job_id, "location": job["location"]},
            "totalRows": str(len(self.rows)),
            "jobComplete": True,
            "cacheHit": False,
        }
        if size > 0:
            rows, token = self._page(int(query.get("pageToken") or 0), min(size, self.page_size))
            out["rows"] = rows
            if token:
                out["pageToken"] = token
        return json_response(out)

    def _job(self, project: str, job_id: str):
        job = self.jobs.get(job_id)
        if job is None:
            return json_response(google_error(404, "NOT_FOUND", f"Job {job_id} not found"), 404)
        return json_response(
            {
                "kind": "bigquery#job",
                "id": f"{project}:{job['location']}.{job_id}",
                "jobReference": {
                    "projectId": project,
                    "jobId": job_id,
                    "location": job["location"],
                },
                "configuration": {"query": {"query": job["query"], "useLegacySql": False}},
                "status": {"state": "DONE"},
                "statistics": {"query": {"totalBytesProcessed": "1024"}},
            }
        )
