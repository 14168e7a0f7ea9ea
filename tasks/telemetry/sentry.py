"""Sentry telemetry: issues (new, regressed, escalating) and the error events behind them.

Calls the Sentry REST API with httpx through a ``blocks.sentry.SentryCredentials``
block:

- issues of one project (``GET /api/0/projects/{org}/{project}/issues/``) or of the whole
  organization (``GET /api/0/organizations/{org}/issues/``), filtered by status, a
  search text (Sentry's issue search syntax, ``query=``) and a start time;
- the events of an issue with their tags and stack frames
  (``GET /api/0/organizations/{org}/issues/{id}/events/?full=true``).

Lists are paged through the ``Link`` header (``rel="next"; results="true";
cursor="..."``) up to a page limit; a result says when it stopped early. HTTP 429 is
answered by waiting what ``Retry-After`` (or ``X-Sentry-Rate-Limit-Reset``) asks,
within a bound, then asking again; 5xx and timeouts are left to the task's retries;
401/403 fail at once. The token never leaves the block's client headers.

Issues become ``issue`` events about ``service:<project>`` (or the service a
``project_services`` map names); issue events become ``error_event`` events whose
entity comes from their tags (``server_name`` -> ``host:``, ``service``/``app`` ->
``service:``, pod/node/namespace tags).

Example:
    ```python
    from datetime import UTC, datetime, timedelta

    from prefect import flow

    from blocks.sentry import SentryCredentials
    from tasks.telemetry.sentry import fetch_sentry_issue_events, fetch_sentry_issues


    @flow
    def checkout_regressions() -> list[str]:
        sentry_credentials = SentryCredentials.load("BLOCK_NAME")
        since = datetime.now(UTC) - timedelta(hours=6)
        issues = fetch_sentry_issues(sentry_credentials, project="checkout", since=since)
        messages = []
        for issue in issues.events[:5]:
            if issue.attributes["is_regression"] == "true":
                events = fetch_sentry_issue_events(
                    sentry_credentials, issue.attributes["issue_id"], project="checkout"
                )
                messages += [event.message for event in events.events]
        return messages
    ```
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, Field

from tasks.common.retry import cloud_api_task, task_logger
from tasks.common.times import parse_time, parse_time_or_none
from tasks.telemetry.model import Event, Severity, entity_key

if TYPE_CHECKING:
    from blocks.sentry import SentryCredentials

SOURCE = "sentry"
PAGE_SIZE = 100  # Sentry's maximum ``limit``
MAX_RETRY_AFTER_SECONDS = 60.0  # the longest single wait a 429 may ask for
MAX_THROTTLE_WAITS = 3  # 429s answered by waiting, per request
LEVELS: dict[str, Severity] = {
    "fatal": "critical",
    "error": "error",
    "warning": "warning",
    "info": "info",
    "debug": "debug",
    "sample": "info",
}
DEFAULT_SERVICE_TAGS: tuple[str, ...] = ("service", "service.name", "app", "application")
# tag -> entity type; more specific first (the first one present is the entity)
DEFAULT_ENTITY_TAGS: tuple[tuple[str, str], ...] = (
    ("k8s.pod.name", "pod"),
    ("pod", "pod"),
    ("server_name", "host"),
    ("host", "host"),
    ("k8s.node.name", "node"),
    ("node", "node"),
    ("k8s.namespace.name", "namespace"),
    ("namespace", "namespace"),
)
MAX_FRAMES = 12
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[A-Za-z]+\s*=\s*\"[^\"]*\")*)")
_LINK_PARAM = re.compile(r"([A-Za-z]+)\s*=\s*\"([^\"]*)\"")


class SentryEvents(BaseModel):
    """Issues or issue events read from Sentry, and whether the page limit cut them short."""

    events: list[Event] = Field(default_factory=list)
    pages: int = 0
    truncated: bool = Field(False, description="More pages existed than max_pages allowed")


# ------------------------------------------------------------- pure helpers


def next_cursor(link_header: str | None) -> str | None:
    """The cursor of the ``rel="next"`` link, if Sentry says it has results.

    Example:
        ```python
        from tasks.telemetry.sentry import next_cursor

        link = (
            '<https://sentry.io/api/0/x/?cursor=0:100:0>; rel="next"; '
            'results="true"; cursor="0:100:0"'
        )
        assert next_cursor(link) == "0:100:0"
        ```
    """
    for _url, params in _LINK.findall(link_header or ""):
        values = {k.lower(): v for k, v in _LINK_PARAM.findall(params)}
        if values.get("rel") == "next":
            return values.get("cursor") if values.get("results") == "true" else None
    return None


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds a 429 asks to wait: ``Retry-After`` (seconds or HTTP date), else
    ``X-Sentry-Rate-Limit-Reset`` (epoch seconds); None when neither is usable."""
    now = now or datetime.now(UTC)
    value = (headers.get("retry-after") or "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
            except (TypeError, ValueError):
                pass
    reset = (headers.get("x-sentry-rate-limit-reset") or "").strip()
    try:
        return max(0.0, float(reset) - now.timestamp()) if reset else None
    except ValueError:
        return None


def issue_query(
    status: str | None = "unresolved", query: str | None = None, since: datetime | None = None
) -> str:
    """The issue search string: ``is:<status>``, the caller's text, ``lastSeen:>=<since>``."""
    parts = []
    if status:
        parts.append(f"is:{status}")
    if query and query.strip():
        parts.append(query.strip())
    if since is not None:
        parts.append(f"lastSeen:>={parse_time(since).strftime('%Y-%m-%dT%H:%M:%S')}")
    return " ".join(parts)


def issue_to_event(
    issue: Mapping[str, Any],
    *,
    since: datetime | None = None,
    project_services: Mapping[str, str] | None = None,
) -> Event:
    """One Sentry issue (list item JSON) as an ``issue`` event.

    Args:
        issue: the issue object (``id``, ``shortId``, ``title``, ``culprit``, ``level``,
            ``status``, ``substatus``, ``count``, ``userCount``, ``firstSeen``,
            ``lastSeen``, ``project``, ``metadata``, ...).
        since: the window start: an issue first seen at or after it is new, and is
            dated at ``firstSeen``; otherwise the event is dated at ``lastSeen``.
        project_services: project slug -> service name (default: the slug).

    Returns:
        An event about ``service:<service>`` with severity from ``level`` (fatal ->
        critical) and attributes ``issue_id``, ``status``, ``substatus``, ``count``,
        ``user_count``, ``first_seen``, ``last_seen``, ``level``, ``culprit``,
        ``is_regression``, ``is_new``, ...
    """
    project = issue.get("project") or {}
    slug = str(project.get("slug") or project.get("name") or "unknown")
    service = (project_services or {}).get(slug, slug)
    first, last = (
        parse_time_or_none(issue.get("firstSeen")),
        parse_time_or_none(issue.get("lastSeen")),
    )
    substatus = str(issue.get("substatus") or "")
    floor = parse_time(since, "since") if since is not None else None
    is_new = substatus == "new" or bool(floor and first and first >= floor)
    is_regression = substatus == "regressed" or bool(issue.get("isRegression"))
    when = (first if is_new and first else last) or first or datetime.now(UTC)
    metadata = issue.get("metadata") or {}
    level = str(issue.get("level") or "error")
    title = str(issue.get("title") or metadata.get("title") or "")
    culprit = str(issue.get("culprit") or "")
    attributes = {
        "issue_id": issue.get("id"),
        "short_id": issue.get("shortId"),
        "status": issue.get("status"),
        "substatus": substatus,
        "count": issue.get("count"),
        "user_count": issue.get("userCount"),
        "first_seen": issue.get("firstSeen"),
        "last_seen": issue.get("lastSeen"),
        "level": level,
        "culprit": culprit,
        "is_regression": str(is_regression).lower(),
        "is_new": str(is_new).lower(),
        "is_unhandled": str(issue["isUnhandled"]).lower() if "isUnhandled" in issue else None,
        "project": slug,
        "permalink": issue.get("permalink"),
        "type": issue.get("issueType") or issue.get("type"),
        "priority": issue.get("priority"),
        "error_type": metadata.get("type"),
        "error_value": metadata.get("value"),
    }
    return Event(
        timestamp=when,
        source=SOURCE,
        kind="issue",
        entity=entity_key("service", service),
        severity=LEVELS.get(level, "error"),
        message=f"{title} ({culprit})" if culprit and culprit not in title else title,
        attributes={k: str(v) for k, v in attributes.items() if v not in (None, "")},
    )


def event_tags(event: Mapping[str, Any]) -> dict[str, str]:
    """An event's tags as a dict (Sentry sends ``[{"key": ..., "value": ...}]``)."""
    tags = event.get("tags") or []
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    out: dict[str, str] = {}
    for tag in tags:
        if isinstance(tag, Mapping) and tag.get("key") is not None:
            out[str(tag["key"])] = str(tag.get("value", ""))
        elif isinstance(tag, list | tuple) and len(tag) == 2:
            out[str(tag[0])] = str(tag[1])
    return out


def tag_entities(
    tags: Mapping[str, str],
    default_service: str | None,
    service_tags: Iterable[str] = DEFAULT_SERVICE_TAGS,
    entity_tags: Iterable[tuple[str, str]] = DEFAULT_ENTITY_TAGS,
) -> tuple[str, list[str]]:
    """``(entity, related)`` from event tags: the most specific tagged entity (pod, host,
    node, namespace) with the service (a service tag, else ``default_service``) related;
    just the service when no such tag is present."""
    service = next((tags[t] for t in service_tags if tags.get(t)), None) or default_service
    found: list[str] = []
    for tag, entity_type in entity_tags:
        if tags.get(tag):
            key = entity_key(entity_type, tags[tag])
            if key not in found:
                found.append(key)
    service_key = entity_key("service", service) if service else None
    if found:
        related = [service_key] if service_key else []
        return found[0], related + [e for e in found[1:] if e != service_key]
    return service_key or "unknown:sentry", []


def stack_frames(event: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Mapping[str, Any]]:
    """The frames (oldest call first) and the exception value of an event's last
    exception (the one raised last, i.e. the one that was not handled)."""
    for entry in event.get("entries") or []:
        if entry.get("type") != "exception":
            continue
        values = (entry.get("data") or {}).get("values") or []
        if values:
            exc = values[-1]
            return list(((exc.get("stacktrace") or {}).get("frames")) or []), exc
    return [], {}


def format_frame(frame: Mapping[str, Any]) -> str:
    """``"module.function (file:line)"`` for one stack frame."""
    where = frame.get("module") or frame.get("package") or ""
    function = frame.get("function") or "?"
    name = f"{where}.{function}" if where else str(function)
    path = frame.get("filename") or frame.get("absPath") or ""
    line = frame.get("lineNo")
    return f"{name} ({path}:{line})" if path else name


def issue_event_to_event(
    event: Mapping[str, Any],
    *,
    issue_id: str | None = None,
    project: str | None = None,
    service_tags: Iterable[str] = DEFAULT_SERVICE_TAGS,
    entity_tags: Iterable[tuple[str, str]] = DEFAULT_ENTITY_TAGS,
) -> Event:
    """One Sentry event (``full=true`` JSON) as an ``error_event``.

    Args:
        event: the event (``eventID``, ``dateCreated``, ``title``, ``message``,
            ``tags``, ``entries``, ...).
        issue_id: the issue it belongs to (``groupID`` otherwise).
        project: the project slug, the service when no service tag is set.
        service_tags: tags naming the service, first present wins.
        entity_tags: (tag, entity type) pairs, most specific first.

    Returns:
        An event with the exception type and value as message, the innermost
        ``MAX_FRAMES`` frames (``frames``, innermost last) and every tag
        (``tag.<key>``) as attributes.
    """
    tags = event_tags(event)
    entity, related = tag_entities(tags, project, service_tags, entity_tags)
    frames, exc = stack_frames(event)
    level = str(tags.get("level") or event.get("level") or "error")
    if exc.get("type"):
        message = f"{exc['type']}: {exc.get('value') or ''}".strip().rstrip(":")
    else:
        message = str(event.get("message") or event.get("title") or "")
    in_app = [f for f in frames if f.get("inApp")]
    attributes: dict[str, Any] = {
        "event_id": event.get("eventID") or event.get("id"),
        "issue_id": issue_id or event.get("groupID"),
        "project": project,
        "level": level,
        "title": event.get("title"),
        "platform": event.get("platform"),
        "exception_type": exc.get("type"),
        "exception_value": exc.get("value"),
        "frames": "\n".join(format_frame(f) for f in frames[-MAX_FRAMES:]) or None,
        "culprit_frame": format_frame(in_app[-1]) if in_app else None,
        "in_app_frames": str(len(in_app)) if frames else None,
    }
    attributes.update({f"tag.{k}": v for k, v in tags.items()})
    when = parse_time_or_none(event.get("dateCreated")) or parse_time_or_none(
        event.get("dateReceived")
    )
    return Event(
        timestamp=when or datetime.now(UTC),
        source=SOURCE,
        kind="error_event",
        entity=entity,
        related=related,
        severity=LEVELS.get(level, "error"),
        message=message,
        attributes={k: str(v) for k, v in attributes.items() if v not in (None, "")},
    )


# --------------------------------------------------------------- HTTP


def get_with_retry_after(
    client: httpx.Client,
    url: str,
    params: Mapping[str, Any] | None = None,
    *,
    max_wait: float = MAX_RETRY_AFTER_SECONDS,
    max_waits: int = MAX_THROTTLE_WAITS,
) -> httpx.Response:
    """GET ``url``; on 429 wait what the server asks (at most ``max_wait`` seconds, at
    most ``max_waits`` times) and ask again. Any other error status is raised
    (``httpx.HTTPStatusError``), as is a 429 that asks too long or keeps coming."""
    logger = task_logger(__name__)
    for attempt in range(max_waits + 1):
        response = client.get(url, params=params)
        if response.status_code != 429 or attempt == max_waits:
            break
        wait = retry_after_seconds(response.headers)
        if wait is None or wait > max_wait:
            break
        logger.warning("Sentry rate limit: waiting %.1fs before asking %s again", wait, url)
        time.sleep(wait)
    response.raise_for_status()
    return response


def _pages(
    client: httpx.Client, url: str, params: dict[str, Any], max_pages: int, result: SentryEvents
) -> Iterator[list[dict[str, Any]]]:
    cursor: str | None = None
    while True:
        page_params = {**params, **({"cursor": cursor} if cursor else {})}
        response = get_with_retry_after(client, url, page_params)
        result.pages += 1
        body = response.json()
        if not isinstance(body, list):
            raise ValueError(f"Sentry {url}: expected a JSON list, got {type(body).__name__}")
        yield body
        cursor = next_cursor(response.headers.get("link"))
        if not cursor:
            return
        if result.pages >= max_pages:
            result.truncated = True
            return


def _check_slug(name: str, value: str | None) -> str | None:
    if value is not None and not _SLUG.match(value):
        raise ValueError(f"{name}: must be a Sentry slug or id, got {value!r}")
    return value


def _check_pages(max_pages: int) -> int:
    if isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1:
        raise ValueError(f"max_pages: must be a positive integer, got {max_pages!r}")
    return max_pages


# ---------------------------------------------------------------- tasks


@cloud_api_task("sentry-issues")
def fetch_sentry_issues(
    sentry_credentials: SentryCredentials,
    *,
    project: str | None = None,
    status: str | None = "unresolved",
    query: str | None = None,
    since: datetime | None = None,
    environment: str | None = None,
    stats_period: str | None = None,
    project_services: dict[str, str] | None = None,
    max_pages: int = 10,
) -> SentryEvents:
    """Sentry issues as ``issue`` events.

    Args:
        sentry_credentials: ``SentryCredentials`` block.
        project: a project slug (project endpoint); None for the whole organization.
        status: ``unresolved``, ``resolved``, ``ignored``... (``is:<status>``); None for any.
        query: extra Sentry issue search text (``"TimeoutError"``, ``"level:fatal"``,
            ``"release:1.4.2"``).
        since: only issues seen at or after this time (``lastSeen:>=``; the
            organization endpoint also gets ``start``/``end``).
        environment: only events of this environment.
        stats_period: Sentry's ``statsPeriod`` (``24h``, ``14d``) when ``since`` is not given.
        project_services: project slug -> service name for the entity.
        max_pages: page limit (100 issues per page); ``truncated`` says if it was hit.

    Returns:
        ``SentryEvents``: one event per issue, in the order Sentry returned them.

    Example:
        ```python
        from datetime import UTC, datetime, timedelta

        from prefect import flow

        from blocks.sentry import SentryCredentials
        from tasks.telemetry.sentry import fetch_sentry_issues


        @flow
        def checkout_regressions() -> list[str]:
            since = datetime.now(UTC) - timedelta(hours=6)
            issues = fetch_sentry_issues(
                SentryCredentials.load("BLOCK_NAME"), project="checkout", since=since
            )
            return [e.message for e in issues.events if e.attributes["is_regression"] == "true"]
        ```
    """
    _check_slug("project", project)
    _check_pages(max_pages)
    floor = parse_time(since, "since") if since is not None else None
    org = sentry_credentials.organization
    params: dict[str, Any] = {"query": issue_query(status, query, floor), "limit": PAGE_SIZE}
    if environment:
        params["environment"] = environment
    if project:
        url = f"/api/0/projects/{org}/{project}/issues/"
        if stats_period:
            params["statsPeriod"] = stats_period
    else:
        url = f"/api/0/organizations/{org}/issues/"
        if floor is not None:
            params["start"] = floor.strftime("%Y-%m-%dT%H:%M:%S")
            params["end"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        elif stats_period:
            params["statsPeriod"] = stats_period
    result = SentryEvents()
    with sentry_credentials.get_client() as client:
        for page in _pages(client, url, params, max_pages, result):
            for issue in page:
                event = issue_to_event(issue, since=floor, project_services=project_services)
                last_seen = parse_time_or_none(issue.get("lastSeen"))
                if floor is None or last_seen is None or last_seen >= floor:
                    result.events.append(event)
    task_logger(__name__).info(
        "Sentry issues%s: %d from %d page(s)%s",
        f" of {project}" if project else "",
        len(result.events),
        result.pages,
        " (truncated at max_pages)" if result.truncated else "",
    )
    return result


@cloud_api_task("sentry-issue-events")
def fetch_sentry_issue_events(
    sentry_credentials: SentryCredentials,
    issue_id: str,
    *,
    project: str | None = None,
    since: datetime | None = None,
    query: str | None = None,
    full: bool = True,
    service_tags: list[str] | tuple[str, ...] = DEFAULT_SERVICE_TAGS,
    max_pages: int = 5,
) -> SentryEvents:
    """The events of one issue, with tags and stack frames, as ``error_event`` events.

    Args:
        sentry_credentials: ``SentryCredentials`` block.
        issue_id: the issue's numeric id (``attributes["issue_id"]`` of an issue event).
        project: the issue's project slug (the service when events carry no service tag).
        since: only events at or after this time (``start``/``end``).
        query: Sentry event search text, e.g. ``"server_name:web-1"``.
        full: ask for full events (``entries`` with stack traces).
        service_tags: tags naming the service, first present wins.
        max_pages: page limit; ``truncated`` says if it was hit.

    Returns:
        ``SentryEvents``: newest first, as Sentry pages them.

    Example:
        ```python
        from prefect import flow

        from blocks.sentry import SentryCredentials
        from tasks.telemetry.sentry import fetch_sentry_issue_events


        @flow
        def issue_stack_traces(issue_id: str) -> list[str]:
            events = fetch_sentry_issue_events(
                SentryCredentials.load("BLOCK_NAME"), issue_id, project="checkout"
            )
            return [event.message for event in events.events]
        ```
    """
    if not re.fullmatch(r"\d{1,20}", str(issue_id)):
        raise ValueError(f"issue_id: must be a numeric Sentry issue id, got {issue_id!r}")
    _check_slug("project", project)
    _check_pages(max_pages)
    floor = parse_time(since, "since") if since is not None else None
    params: dict[str, Any] = {"full": "true" if full else "false"}
    if floor is not None:
        params["start"] = floor.strftime("%Y-%m-%dT%H:%M:%S")
        params["end"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if query and query.strip():
        params["query"] = query.strip()
    url = f"/api/0/organizations/{sentry_credentials.organization}/issues/{issue_id}/events/"
    result = SentryEvents()
    with sentry_credentials.get_client() as client:
        for page in _pages(client, url, params, max_pages, result):
            for item in page:
                event = issue_event_to_event(
                    item, issue_id=str(issue_id), project=project, service_tags=service_tags
                )
                if floor is None or event.timestamp >= floor:
                    result.events.append(event)
    task_logger(__name__).info(
        "Sentry issue %s: %d event(s) from %d page(s)%s",
        issue_id,
        len(result.events),
        result.pages,
        " (truncated at max_pages)" if result.truncated else "",
    )
    return result
