"""A local BigQuery REST API for query jobs that runs the SQL it is sent.

``POST /bigquery/v2/projects/{p}/queries`` (jobs.query) records the request, then runs
the GoogleSQL query on real tables: each table the server holds is built in DuckDB from
its BigQuery schema (RECORD -> STRUCT, REPEATED -> LIST, TIMESTAMP in UTC), the query is
parsed with sqlglot's BigQuery dialect, its tables and column names are resolved against
those schemas, and it is transpiled to DuckDB and run with its named query parameters.
What BigQuery would refuse is refused the way BigQuery answers: a table it does not
hold is 404 ``notFound``; a syntax error, an unknown column or struct field, or a
function given the wrong type is 400 ``invalidQuery``. The result (schema from the
result's types) is served as the API does: the first page inline with a ``pageToken``,
the rest through ``GET .../queries/{jobId}`` (jobs.getQueryResults); ``GET
.../jobs/{jobId}`` is jobs.get. Rows use the ``{"f": [{"v": ...}]}`` shape with
string-encoded scalars.

Access tokens come from the OAuth token endpoint of ``tests.servers.gcp_catalog``
(pass its ``tokens`` set); a request without one gets 401.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import LocalServer, Seen, json_response

_QUERIES = re.compile(r"^/bigquery/v2/projects/([^/]+)/queries$")
_RESULTS = re.compile(r"^/bigquery/v2/projects/([^/]+)/queries/([^/]+)$")
_JOB = re.compile(r"^/bigquery/v2/projects/([^/]+)/jobs/([^/]+)$")

# BigQuery REST field type -> GoogleSQL type name (for sqlglot) and pyarrow type
_SQL_TYPES = {
    "STRING": "STRING",
    "FLOAT": "FLOAT64",
    "INTEGER": "INT64",
    "NUMERIC": "NUMERIC",
    "BOOLEAN": "BOOL",
    "TIMESTAMP": "TIMESTAMP",
    "DATE": "DATE",
}


def _sql_type(field: dict[str, Any]) -> str:
    if field["type"] == "RECORD":
        inner = ", ".join(f"{f['name']} {_sql_type(f)}" for f in field["fields"])
        base = f"STRUCT<{inner}>"
    else:
        base = _SQL_TYPES[field["type"]]
    return f"ARRAY<{base}>" if field.get("mode") == "REPEATED" else base


def _arrow_type(field: dict[str, Any]):
    import pyarrow as pa

    scalar = {
        "STRING": pa.string(),
        "FLOAT": pa.float64(),
        "INTEGER": pa.int64(),
        "NUMERIC": pa.decimal128(38, 9),  # BigQuery NUMERIC: precision 38, scale 9
        "BOOLEAN": pa.bool_(),
        "TIMESTAMP": pa.timestamp("us", tz="UTC"),
        "DATE": pa.date32(),
    }
    if field["type"] == "RECORD":
        base = pa.struct([pa.field(f["name"], _arrow_type(f)) for f in field["fields"]])
    else:
        base = scalar[field["type"]]
    return pa.list_(base) if field.get("mode") == "REPEATED" else base


def _result_type(duck_type: str) -> str:
    """A DuckDB result column type as the BigQuery REST field type."""
    t = duck_type.upper()
    if t.startswith("DECIMAL"):
        return "NUMERIC"
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMP"
    known = {
        "VARCHAR": "STRING",
        "DOUBLE": "FLOAT",
        "FLOAT": "FLOAT",
        "BIGINT": "INTEGER",
        "HUGEINT": "INTEGER",
        "INTEGER": "INTEGER",
        "BOOLEAN": "BOOLEAN",
        "DATE": "DATE",
    }
    if t not in known:
        raise NotImplementedError(f"the stand-in serves scalar results only, not {duck_type}")
    return known[t]


def _parameter(param: dict[str, Any]) -> Any:
    kind = param["parameterType"]["type"]
    value = param["parameterValue"].get("value")
    if value is None:
        return None
    return {
        "DATE": date.fromisoformat,
        "TIMESTAMP": lambda v: datetime.fromisoformat(v.replace(" ", "T")),
        "INT64": int,
        "FLOAT64": float,
        "BOOL": lambda v: v.lower() == "true",
    }.get(kind, str)(value)


class QueryError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def google_error(code: int, status: str, message: str, reason: str = "") -> dict[str, Any]:
    errors = [{"reason": reason, "message": message}] if reason else []
    return {"error": {"code": code, "message": message, "status": status, "errors": errors}}


def _cell(value: Any, int64_timestamps: bool) -> dict[str, Any]:
    if value is None:
        return {"v": None}
    if isinstance(value, datetime):
        micros = round(value.astimezone(UTC).timestamp() * 1_000_000)
        return {"v": str(micros) if int64_timestamps else repr(micros / 1_000_000)}
    if isinstance(value, date):
        return {"v": value.isoformat()}
    if isinstance(value, bool):
        return {"v": "true" if value else "false"}
    if isinstance(value, float):
        return {"v": repr(value)}
    if isinstance(value, Decimal):
        return {"v": format(value, "f")}
    return {"v": str(value)}


class BigQueryServer(LocalServer):
    """``tables``: ``"project.dataset.table"`` -> ``(schema fields, rows)``, rows as the
    nested dicts of the table's JSON form (RECORD -> dict, REPEATED -> list)."""

    def __init__(
        self,
        tokens: set[str],
        tables: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]],
        page_size: int = 1000,
    ) -> None:
        import duckdb
        import pyarrow as pa

        super().__init__()
        self.tokens = tokens
        self.page_size = page_size
        self.queries: list[dict[str, Any]] = []  # jobs.query bodies
        self.jobs: dict[str, dict[str, Any]] = {}
        self._db = duckdb.connect()
        self._db.execute("SET TimeZone = 'UTC'")  # BigQuery's DATE(timestamp) is in UTC
        self._db_lock = threading.Lock()
        self._tables: dict[str, str] = {}  # full name -> DuckDB table
        self._schemas: dict[str, dict[str, str]] = {}  # DuckDB table -> column -> SQL type
        for i, (full, (fields, rows)) in enumerate(tables.items()):
            local = f"t{i}"
            arrow_schema = pa.schema([pa.field(f["name"], _arrow_type(f)) for f in fields])
            self._db.register("rows_in", pa.Table.from_pylist(rows, schema=arrow_schema))
            self._db.execute(f"CREATE TABLE {local} AS SELECT * FROM rows_in")
            self._db.unregister("rows_in")
            self._tables[full] = local
            self._schemas[local] = {f["name"]: _sql_type(f) for f in fields}

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

    # ------------------------------------------------------------------ running SQL

    def run_sql(self, sql: str, params: dict[str, Any], location: str = "US"):
        """Run GoogleSQL on the tables: ``(schema fields, rows)`` or ``QueryError``."""
        import duckdb
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import OptimizeError, ParseError
        from sqlglot.optimizer.qualify import qualify

        try:
            tree = sqlglot.parse_one(sql, read="bigquery")
        except ParseError as e:
            raise QueryError(400, "invalidQuery", f"Syntax error: {e}") from None
        ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if not table.catalog and not table.db and table.name in ctes:
                continue
            full = ".".join(p for p in (table.catalog, table.db, table.name) if p)
            local = self._tables.get(full)
            if local is None:
                project, _, rest = full.partition(".")
                raise QueryError(
                    404,
                    "notFound",
                    f"Not found: Table {project}:{rest} was not found in location {location}",
                )
            table.set("catalog", None)
            table.set("db", None)
            table.set("this", exp.to_identifier(local))
        try:  # every column name resolves to a column of a table the query reads
            qualify(
                tree.copy(), schema=self._schemas, dialect="bigquery", validate_qualify_columns=True
            )
        except OptimizeError as e:
            raise QueryError(400, "invalidQuery", f"Unrecognized name: {e}") from None
        try:  # struct fields and types: DuckDB checks them on the documented tables
            with self._db_lock:
                cursor = self._db.cursor()
                cursor.execute("SET TimeZone = 'UTC'")
                result = cursor.execute(tree.sql(dialect="duckdb"), params)
                names = [(d[0], str(d[1])) for d in result.description]
                rows = result.fetchall()
        except duckdb.Error as e:
            raise QueryError(400, "invalidQuery", str(e).splitlines()[0]) from None
        fields = [{"name": n, "type": _result_type(t), "mode": "NULLABLE"} for n, t in names]
        return fields, rows

    # ------------------------------------------------------------------- endpoints

    def _page(self, job: dict[str, Any], start: int, size: int):
        chunk = job["rows"][start : start + size]
        token = str(start + size) if start + size < len(job["rows"]) else None
        ints = job["int64_timestamps"]
        return [{"f": [_cell(v, ints) for v in row]} for row in chunk], token

    def _query(self, project: str, body: dict[str, Any]):
        self.queries.append(body)
        if body.get("useLegacySql", False):
            return json_response(google_error(400, "INVALID_ARGUMENT", "legacy SQL"), 400)
        location = body.get("location") or "US"
        params = {p["name"]: _parameter(p) for p in body.get("queryParameters", [])}
        try:
            fields, rows = self.run_sql(body.get("query", ""), params, location)
        except QueryError as e:
            status = "INVALID_ARGUMENT" if e.status == 400 else "NOT_FOUND"
            return json_response(google_error(e.status, status, e.message, e.reason), e.status)
        job_id = "job_" + secrets.token_hex(6)
        job = {
            "query": body.get("query", ""),
            "location": location,
            "fields": fields,
            "rows": rows,
            "int64_timestamps": bool(
                (body.get("formatOptions") or {}).get("useInt64Timestamp", False)
            ),
        }
        self.jobs[job_id] = job
        size = min(self.page_size, int(body.get("maxResults") or self.page_size))
        page, token = self._page(job, 0, size)
        out: dict[str, Any] = {
            "kind": "bigquery#queryResponse",
            "schema": {"fields": fields},
            "jobReference": {"projectId": project, "jobId": job_id, "location": location},
            "totalRows": str(len(rows)),
            "rows": page,
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
            "schema": {"fields": job["fields"]},
            "jobReference": {"projectId": project, "jobId": job_id, "location": job["location"]},
            "totalRows": str(len(job["rows"])),
            "jobComplete": True,
            "cacheHit": False,
        }
        if size > 0:
            if "formatOptions.useInt64Timestamp" in query:
                job["int64_timestamps"] = query["formatOptions.useInt64Timestamp"] == "true"
            page, token = self._page(
                job, int(query.get("pageToken") or 0), min(size, self.page_size)
            )
            out["rows"] = page
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
