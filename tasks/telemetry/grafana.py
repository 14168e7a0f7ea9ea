"""Grafana telemetry: dashboards, annotations (deploys, alerts, notes) and datasource queries.

Calls the Grafana HTTP API with httpx through a ``blocks.grafana.GrafanaCredentials``
block (service account token as a bearer token):

- ``GET /api/search?type=dash-db&query=`` -> ``GrafanaDashboard`` list;
- ``GET /api/annotations?from=&to=&tags=`` (epoch ms) -> ``annotation`` events;
  annotations tagged ``deploy``/``deployment``/``release``/``rollout`` become ``deploy``
  events, alert-state annotations ``alarm`` events (``alerting`` = error);
- ``POST /api/ds/query`` (``{"queries": [{"refId": "A", "datasource": {"uid": ...},
  ...}], "from": "<ms>", "to": "<ms>"}``) -> one ``MetricSeries`` per numeric field of
  each returned data frame (``results.<refId>.frames[].schema.fields`` +
  ``data.values``), its entity taken from the series labels (``pod``, ``instance``,
  ``service``... configurable).

A query that Grafana reports as failed (``results.<refId>.error``; Grafana answers
such a request with HTTP 400 or 207 and still sends the other queries' frames) is named
in the result's ``errors``, not dropped. Entities from tags/labels: ``service:api`` or
``service=api`` style annotation tags, and label names mapped by ``LABEL_ENTITY_TYPES``.

Example:
    ```python
    from datetime import UTC, datetime, timedelta

    from prefect import flow

    from blocks.grafana import GrafanaCredentials
    from tasks.telemetry.grafana import fetch_grafana_annotations, query_grafana_datasource


    @flow
    def deploys_and_errors() -> int:
        grafana_credentials = GrafanaCredentials.load("BLOCK_NAME")
        since = datetime.now(UTC) - timedelta(hours=1)
        deploys = fetch_grafana_annotations(grafana_credentials, since, tags=["deploy"])
        errors = 'sum by (service) (rate(http_requests_total{code=~"5.."}[5m]))'
        result = query_grafana_datasource(
            grafana_credentials,
            "prometheus",
            [{"refId": "A", "expr": errors}],
            since,
            metric_names={"A": "http_5xx_rate"},
        )
        return len(deploys) + len(result.series)
    ```
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from tasks.common.retry import cloud_api_task, task_logger
from tasks.common.times import parse_time, time_window
from tasks.telemetry.model import Event, MetricSeries, Severity, entity_key

if TYPE_CHECKING:
    from blocks.grafana import GrafanaCredentials

SOURCE = "grafana"
DEPLOY_TAGS = frozenset({"deploy", "deployment", "release", "rollout"})
# label (or tag key) -> entity type
LABEL_ENTITY_TYPES: dict[str, str] = {
    "pod": "pod",
    "pod_name": "pod",
    "container": "container",
    "instance": "host",
    "host": "host",
    "hostname": "host",
    "node": "node",
    "service": "service",
    "service_name": "service",
    "app": "service",
    "job": "service",
    "function": "function",
    "function_name": "function",
    "database": "database",
    "db": "database",
    "namespace": "namespace",
}
DEFAULT_ENTITY_LABELS: tuple[str, ...] = (
    "pod",
    "pod_name",
    "container",
    "instance",
    "node",
    "service",
    "app",
    "job",
    "function",
    "database",
    "namespace",
)
ALERT_STATES: dict[str, Severity] = {
    "alerting": "error",
    "firing": "error",
    "pending": "warning",
    "no_data": "warning",
    "nodata": "warning",
    "error": "warning",
    "ok": "info",
    "normal": "info",
}
_TAG_PAIR = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*[:=]\s*(\S.*?)\s*$")
_HTML = re.compile(r"<[^>]+>")
_REF_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class GrafanaDashboard(BaseModel):
    """One ``/api/search`` hit."""

    uid: str
    title: str
    url: str | None = None
    tags: list[str] = Field(default_factory=list)
    folder: str | None = None


class DatasourceQueryResult(BaseModel):
    """``query_grafana_datasource``' result: series, and the queries that failed."""

    series: list[MetricSeries] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict, description="refId -> Grafana's error")


# ------------------------------------------------------------- pure mapping


def epoch_ms(when: datetime) -> int:
    """Epoch milliseconds of an instant (naive means UTC), as Grafana's APIs count time."""
    return int(parse_time(when).timestamp() * 1000)


def entities_from_labels(
    labels: Mapping[str, str],
    entity_labels: Iterable[str] = DEFAULT_ENTITY_LABELS,
    label_types: Mapping[str, str] = LABEL_ENTITY_TYPES,
) -> tuple[str | None, list[str]]:
    """``(entity, related)`` from series labels or parsed tags: the first of
    ``entity_labels`` present is the entity, the other mapped labels are related."""
    found: list[str] = []
    for label in entity_labels:
        value = labels.get(label)
        if value and label in label_types:
            key = entity_key(label_types[label], str(value))
            if key not in found:
                found.append(key)
    if not found:
        return None, []
    return found[0], found[1:]


def annotation_tags(tags: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Split annotation tags into ``key:value`` / ``key=value`` pairs and plain tags."""
    pairs: dict[str, str] = {}
    plain: list[str] = []
    for tag in tags:
        match = _TAG_PAIR.match(str(tag))
        if match and match.group(1).lower() in LABEL_ENTITY_TYPES:
            pairs.setdefault(match.group(1).lower(), match.group(2))
        else:
            plain.append(str(tag))
    return pairs, plain


def annotation_to_event(
    annotation: Mapping[str, Any],
    *,
    default_entity: str = "unknown:grafana",
    entity_labels: Iterable[str] = DEFAULT_ENTITY_LABELS,
) -> Event:
    """One ``/api/annotations`` item as an event.

    Kind ``deploy`` when a tag is one of ``DEPLOY_TAGS``; ``alarm`` for an alert-state
    annotation (``alertId`` or ``newState``; severity from the new state); else
    ``annotation``. The entity comes from ``service:api`` / ``pod=api-1`` style tags,
    else ``default_entity``.
    """
    tags = [str(t) for t in annotation.get("tags") or []]
    pairs, plain = annotation_tags(tags)
    entity, related = entities_from_labels(pairs, entity_labels)
    new_state = str(annotation.get("newState") or "").lower()
    if annotation.get("alertId") or new_state:
        kind, severity = "alarm", ALERT_STATES.get(new_state, "warning")
    elif any(t.lower() in DEPLOY_TAGS for t in plain):
        kind, severity = "deploy", "info"
    else:
        kind, severity = "annotation", "info"
    text = _HTML.sub("", str(annotation.get("text") or "")).strip()
    if kind == "alarm" and annotation.get("alertName"):
        text = f"{annotation['alertName']}: {new_state or 'unknown'}" + (
            f" ({text})" if text else ""
        )
    when = parse_time(annotation.get("time") or annotation.get("created") or 0, "time")
    attributes = {
        "annotation_id": annotation.get("id"),
        "dashboard_uid": annotation.get("dashboardUID"),
        "panel_id": annotation.get("panelId"),
        "tags": ",".join(tags),
        "login": annotation.get("login"),
        "alert_name": annotation.get("alertName"),
        "new_state": annotation.get("newState"),
        "prev_state": annotation.get("prevState"),
    }
    end = annotation.get("timeEnd")
    if end and end != annotation.get("time"):
        attributes["time_end"] = parse_time(end, "timeEnd").isoformat()
    return Event(
        timestamp=when,
        source=SOURCE,
        kind=kind,
        entity=entity or default_entity,
        related=related,
        severity=severity,
        message=text or ", ".join(tags) or kind,
        attributes={k: str(v) for k, v in attributes.items() if v not in (None, "", 0)},
    )


def _frame_rows(frame: Mapping[str, Any]) -> tuple[list[dict], list[list]]:
    schema = frame.get("schema") or {}
    fields = list(schema.get("fields") or [])
    values = list((frame.get("data") or {}).get("values") or [])
    return fields, values


def frame_to_series(
    frame: Mapping[str, Any],
    *,
    ref_id: str,
    metric: str | None = None,
    entity_labels: Iterable[str] = DEFAULT_ENTITY_LABELS,
) -> list[MetricSeries]:
    """The numeric series of one data frame (wide or long format).

    Wide frames (a time field and number fields with ``labels``) give one series per
    number field; long frames (string fields alongside) give one series per number
    field and distinct combination of the string values, which act as labels. Null
    samples are dropped. The metric name is ``metric``, else the ``__name__`` label,
    else the field name (unless it is the generic ``Value``), else ``ref_id``.
    """
    fields, values = _frame_rows(frame)
    time_index = next((i for i, f in enumerate(fields) if f.get("type") == "time"), None)
    if time_index is None or time_index >= len(values):
        return []
    string_idx = [i for i, f in enumerate(fields) if f.get("type") == "string" and i < len(values)]
    number_idx = [i for i, f in enumerate(fields) if f.get("type") == "number" and i < len(values)]
    frame_name = (frame.get("schema") or {}).get("name")
    groups: dict[tuple, dict[str, Any]] = {}
    for i in number_idx:
        field = fields[i]
        base = {str(k): str(v) for k, v in (field.get("labels") or {}).items()}
        for row, (stamp, value) in enumerate(zip(values[time_index], values[i], strict=False)):
            if stamp is None or value is None:
                continue
            labels = dict(base)
            labels.update(
                {
                    str(fields[j].get("name")): str(values[j][row])
                    for j in string_idx
                    if row < len(values[j]) and values[j][row] is not None
                }
            )
            key = (i, tuple(sorted(labels.items())))
            group = groups.setdefault(key, {"field": field, "labels": labels, "t": [], "v": []})
            group["t"].append(parse_time(stamp))
            group["v"].append(float(value))
    out: list[MetricSeries] = []
    for group in groups.values():
        field, labels = group["field"], group["labels"]
        name = str(field.get("name") or "")
        series_metric = (
            metric or labels.get("__name__") or (name if name and name != "Value" else None)
        )
        entity, related = entities_from_labels(labels, entity_labels)
        config = field.get("config") or {}
        attributes = {"ref_id": ref_id, **{f"label.{k}": v for k, v in labels.items()}}
        if frame_name:
            attributes["frame"] = str(frame_name)
        if config.get("displayNameFromDS"):
            attributes["display_name"] = str(config["displayNameFromDS"])
        order = sorted(range(len(group["t"])), key=group["t"].__getitem__)
        out.append(
            MetricSeries(
                source=SOURCE,
                entity=entity or entity_key("unknown", str(frame_name or ref_id)),
                related=related,
                metric=series_metric or ref_id,
                unit=config.get("unit"),
                timestamps=[group["t"][k] for k in order],
                values=[group["v"][k] for k in order],
                attributes=attributes,
            )
        )
    return out


def ds_query_response_to_series(
    body: Mapping[str, Any],
    *,
    metric_names: Mapping[str, str] | None = None,
    entity_labels: Iterable[str] = DEFAULT_ENTITY_LABELS,
) -> DatasourceQueryResult:
    """A ``/api/ds/query`` response (``{"results": {refId: {"frames": [...]}}}``) as series
    plus the per-query errors Grafana reported."""
    out = DatasourceQueryResult()
    for ref_id, result in (body.get("results") or {}).items():
        if result.get("error"):
            out.errors[str(ref_id)] = str(result["error"])[:500]
        for frame in result.get("frames") or []:
            out.series.extend(
                frame_to_series(
                    frame,
                    ref_id=str(ref_id),
                    metric=(metric_names or {}).get(ref_id),
                    entity_labels=entity_labels,
                )
            )
    return out


# ---------------------------------------------------------------- tasks


@cloud_api_task("grafana-dashboards")
def search_grafana_dashboards(
    grafana_credentials: GrafanaCredentials,
    query: str = "",
    *,
    tags: list[str] | None = None,
    limit: int = 100,
) -> list[GrafanaDashboard]:
    """Dashboards whose title matches ``query`` (``GET /api/search?type=dash-db``).

    Args:
        grafana_credentials: ``GrafanaCredentials`` block.
        query: title search text ("" for all).
        tags: only dashboards with all these tags.
        limit: most hits returned (1..5000).

    Returns:
        The dashboards, as Grafana orders them.
    """
    if isinstance(limit, bool) or not 1 <= limit <= 5000:
        raise ValueError(f"limit: must be between 1 and 5000, got {limit!r}")
    params: list[tuple[str, str | int]] = [("type", "dash-db"), ("query", query), ("limit", limit)]
    params += [("tag", t) for t in tags or []]
    with grafana_credentials.get_client() as client:
        response = client.get("/api/search", params=params)
        response.raise_for_status()
        hits = response.json()
    return [
        GrafanaDashboard(
            uid=str(h.get("uid")),
            title=str(h.get("title")),
            url=h.get("url"),
            tags=[str(t) for t in h.get("tags") or []],
            folder=h.get("folderTitle"),
        )
        for h in hits
        if h.get("type", "dash-db") == "dash-db"
    ]


@cloud_api_task("grafana-annotations")
def fetch_grafana_annotations(
    grafana_credentials: GrafanaCredentials,
    since: datetime,
    until: datetime | None = None,
    *,
    tags: list[str] | None = None,
    match_any: bool = False,
    dashboard_uid: str | None = None,
    limit: int = 1000,
    default_entity: str = "unknown:grafana",
    entity_labels: list[str] | tuple[str, ...] = DEFAULT_ENTITY_LABELS,
) -> list[Event]:
    """Annotations in ``[since, until]`` as ``annotation`` / ``deploy`` / ``alarm`` events.

    Args:
        grafana_credentials: ``GrafanaCredentials`` block.
        since: window start (naive means UTC).
        until: window end; default now.
        tags: only annotations with these tags (all of them, or any with ``match_any``).
        match_any: match any of ``tags`` instead of all.
        dashboard_uid: only this dashboard's annotations.
        limit: most annotations returned (Grafana's ``limit``).
        default_entity: entity of annotations whose tags name none.
        entity_labels: tag keys naming the entity, most specific first.

    Returns:
        Events, oldest first.

    Example:
        ```python
        from datetime import UTC, datetime, timedelta

        from prefect import flow

        from blocks.grafana import GrafanaCredentials
        from tasks.telemetry.grafana import fetch_grafana_annotations


        @flow
        def recent_deploys() -> list[str]:
            since = datetime.now(UTC) - timedelta(hours=6)
            deploys = fetch_grafana_annotations(
                GrafanaCredentials.load("BLOCK_NAME"), since, tags=["deploy"]
            )
            return [event.message for event in deploys]
        ```
    """
    start, end = time_window(since, until)
    if isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit: must be positive, got {limit!r}")
    if ":" not in default_entity:
        raise ValueError(f"default_entity: must be '<type>:<name>', got {default_entity!r}")
    params: list[tuple[str, str | int]] = [
        ("from", epoch_ms(start)),
        ("to", epoch_ms(end)),
        ("limit", limit),
    ]
    params += [("tags", t) for t in tags or []]
    if match_any:
        params.append(("matchAny", "true"))
    if dashboard_uid:
        params.append(("dashboardUID", dashboard_uid))
    with grafana_credentials.get_client() as client:
        response = client.get("/api/annotations", params=params)
        response.raise_for_status()
        items = response.json()
    events = [
        annotation_to_event(a, default_entity=default_entity, entity_labels=entity_labels)
        for a in items
    ]
    events.sort(key=lambda e: e.timestamp)
    task_logger(__name__).info(
        "Grafana annotations: %d (%d deploy, %d alert) in %s..%s",
        len(events),
        sum(e.kind == "deploy" for e in events),
        sum(e.kind == "alarm" for e in events),
        start.isoformat(),
        end.isoformat(),
    )
    return events


@cloud_api_task("grafana-ds-query")
def query_grafana_datasource(
    grafana_credentials: GrafanaCredentials,
    datasource_uid: str,
    queries: list[dict[str, Any]],
    since: datetime,
    until: datetime | None = None,
    *,
    metric_names: dict[str, str] | None = None,
    entity_labels: list[str] | tuple[str, ...] = DEFAULT_ENTITY_LABELS,
) -> DatasourceQueryResult:
    """Run datasource queries over a time range (``POST /api/ds/query``) into metric series.

    Args:
        grafana_credentials: ``GrafanaCredentials`` block.
        datasource_uid: the datasource's uid (set on every query without its own).
        queries: the datasource's query objects, each with a unique ``refId``, e.g.
            ``{"refId": "A", "expr": "sum by (service) (rate(errors_total[1m]))",
            "intervalMs": 60000, "maxDataPoints": 500}`` for Prometheus.
        since: range start (naive means UTC).
        until: range end; default now.
        metric_names: refId -> metric name of its series (e.g. ``{"A": "http_5xx_rate"}``).
        entity_labels: labels naming the entity, most specific first.

    Returns:
        ``DatasourceQueryResult``: the series of every frame, and per-refId errors.

    Example:
        ```python
        from datetime import UTC, datetime, timedelta

        from prefect import flow

        from blocks.grafana import GrafanaCredentials
        from tasks.telemetry.grafana import query_grafana_datasource


        @flow
        def targets_up() -> int:
            since = datetime.now(UTC) - timedelta(minutes=15)
            result = query_grafana_datasource(
                GrafanaCredentials.load("BLOCK_NAME"),
                "prom",
                [{"refId": "A", "expr": "up"}],
                since,
                metric_names={"A": "up"},
            )
            return len(result.series)
        ```
    """
    start, end = time_window(since, until)
    if not datasource_uid or not str(datasource_uid).strip():
        raise ValueError("datasource_uid: must be a datasource uid")
    if not queries:
        raise ValueError("queries: give at least one query")
    body_queries = []
    seen: set[str] = set()
    for i, query in enumerate(queries):
        ref_id = str(query.get("refId") or "")
        if not _REF_ID.match(ref_id) or ref_id in seen:
            raise ValueError(f"queries[{i}].refId: must be a unique id such as 'A', got {ref_id!r}")
        seen.add(ref_id)
        body_queries.append({"datasource": {"uid": datasource_uid}, **query})
    body = {"queries": body_queries, "from": str(epoch_ms(start)), "to": str(epoch_ms(end))}
    with grafana_credentials.get_client() as client:
        response = client.post("/api/ds/query", json=body)
        payload: Any = None
        if response.status_code in (400, 207):  # per-query errors come with a results body
            try:
                payload = response.json()
            except ValueError:
                payload = None
        if not isinstance(payload, dict) or "results" not in payload:
            response.raise_for_status()
            payload = response.json()
    result = ds_query_response_to_series(
        payload, metric_names=metric_names, entity_labels=entity_labels
    )
    logger = task_logger(__name__)
    for ref_id, error in result.errors.items():
        logger.warning("Grafana query %s on %s failed: %s", ref_id, datasource_uid, error)
    logger.info(
        "Grafana ds/query %s: %d series, %d failed query(ies)",
        datasource_uid,
        len(result.series),
        len(result.errors),
    )
    return result
