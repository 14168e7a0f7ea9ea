"""A local Sentry REST API: issues and issue events, cursor-paged through ``Link`` headers.

Serves, for one organization and behind a bearer token (401 ``{"detail": ...}``
otherwise):

- ``GET /api/0/projects/{org}/{project}/issues/`` and ``/api/0/organizations/{org}/issues/``
  with ``query`` (``is:<status>``, ``lastSeen:>=<iso>``, free text matched against the
  title and culprit), ``limit`` and ``cursor``;
- ``GET /api/0/organizations/{org}/issues/{id}/events/`` with ``full``, ``cursor``.

Pages hold ``min(limit, page_size)`` items; the ``Link`` header names a previous and a
next page as Sentry does (``<url>; rel="next"; results="true"; cursor="0:100:0"``).
Faults (``fail``) can carry ``Retry-After`` to exercise throttling.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.servers import LocalServer, Seen, json_response

_PROJECT_ISSUES = re.compile(r"^/api/0/projects/(?P<org>[^/]+)/(?P<project>[^/]+)/issues/$")
_ORG_ISSUES = re.compile(r"^/api/0/organizations/(?P<org>[^/]+)/issues/$")
_ISSUE_EVENTS = re.compile(r"^/api/0/organizations/(?P<org>[^/]+)/issues/(?P<id>\d+)/events/$")


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def issue(
    issue_id: int,
    title: str,
    project: str,
    *,
    first_seen: datetime,
    last_seen: datetime,
    level: str = "error",
    status: str = "unresolved",
    substatus: str = "ongoing",
    count: int = 10,
    user_count: int = 3,
    culprit: str = "app.handlers in handle",
    error_type: str | None = None,
) -> dict[str, Any]:
    """An issue as the issue list endpoints return it."""
    return {
        "id": str(issue_id),
        "shortId": f"{project.upper()}-{issue_id}",
        "title": title,
        "culprit": culprit,
        "permalink": f"https://acme.sentry.io/issues/{issue_id}/",
        "logger": None,
        "level": level,
        "status": status,
        "substatus": substatus,
        "statusDetails": {},
        "isPublic": False,
        "platform": "python",
        "project": {"id": str(abs(hash(project)) % 10000), "name": project, "slug": project},
        "type": "error",
        "issueType": "error",
        "issueCategory": "error",
        "priority": "high",
        "metadata": {
            "type": error_type or title.split(":")[0],
            "value": title.split(": ", 1)[-1],
        },
        "numComments": 0,
        "assignedTo": None,
        "isBookmarked": False,
        "isSubscribed": False,
        "hasSeen": False,
        "isUnhandled": True,
        "count": str(count),
        "userCount": user_count,
        "firstSeen": iso(first_seen),
        "lastSeen": iso(last_seen),
        "stats": {"24h": []},
    }


def sentry_event(
    event_id: str,
    when: datetime,
    *,
    exc_type: str,
    exc_value: str,
    tags: dict[str, str],
    frames: list[tuple[str, str, str, int, bool]] | None = None,
    group_id: str | None = None,
) -> dict[str, Any]:
    """A full event: ``frames`` are (module, function, filename, line, in_app), oldest first."""
    frames = frames or [
        ("app.server", "dispatch", "app/server.py", 88, True),
        ("app.handlers", "handle", "app/handlers.py", 42, True),
        ("psycopg.connection", "connect", "psycopg/connection.py", 120, False),
    ]
    return {
        "id": event_id,
        "eventID": event_id,
        "groupID": group_id,
        "projectID": "1",
        "dateCreated": iso(when),
        "dateReceived": iso(when + timedelta(seconds=1)),
        "title": f"{exc_type}: {exc_value}",
        "message": "",
        "platform": "python",
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
        "entries": [
            {
                "type": "exception",
                "data": {
                    "values": [
                        {
                            "type": exc_type,
                            "value": exc_value,
                            "module": None,
                            "mechanism": {"type": "generic", "handled": False},
                            "stacktrace": {
                                "frames": [
                                    {
                                        "module": m,
                                        "function": f,
                                        "filename": fn,
                                        "absPath": f"/srv/{fn}",
                                        "lineNo": ln,
                                        "inApp": app,
                                    }
                                    for m, f, fn, ln, app in frames
                                ]
                            },
                        }
                    ]
                },
            },
            {"type": "breadcrumbs", "data": {"values": []}},
        ],
    }


def _matches(item: dict[str, Any], query: str) -> bool:
    for token in query.split():
        if token.startswith("is:"):
            if item.get("status") != token[3:]:
                return False
        elif token.startswith("lastSeen:>="):
            floor = datetime.fromisoformat(token[len("lastSeen:>=") :]).replace(tzinfo=None)
            seen = datetime.fromisoformat(item["lastSeen"].rstrip("Z"))
            if seen < floor:
                return False
        elif token.lower() not in f"{item.get('title')} {item.get('culprit')}".lower():
            return False
    return True


class SentryServer(LocalServer):
    """Issues per project and events per issue for one organization."""

    def __init__(self, token: str, organization: str = "acme", page_size: int = 100) -> None:
        super().__init__()
        self.token = token
        self.organization = organization
        self.page_size = page_size
        self.issues: list[dict[str, Any]] = []
        self.events: dict[str, list[dict[str, Any]]] = {}

    def queries(self, path_prefix: str = "/api/0/") -> list[dict[str, str]]:
        out = []
        for seen in self.requests:
            parts = urlsplit(seen.path)
            if parts.path.startswith(path_prefix):
                out.append({k: v[-1] for k, v in parse_qs(parts.query).items()})
        return out

    def handle(self, seen: Seen):
        if seen.headers.get("authorization") != f"Bearer {self.token}":
            return json_response({"detail": "Invalid token"}, 401)
        parts = urlsplit(seen.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        match = (
            _PROJECT_ISSUES.match(parts.path)
            or _ORG_ISSUES.match(parts.path)
            or _ISSUE_EVENTS.match(parts.path)
        )
        if match is None or match["org"] != self.organization:
            return json_response({"detail": "The requested resource does not exist"}, 404)
        groups = match.groupdict()
        if "id" in groups:
            items = self.events.get(groups["id"])
            if items is None:
                return json_response({"detail": "The requested resource does not exist"}, 404)
        else:
            items = [
                i
                for i in self.issues
                if (not groups.get("project") or i["project"]["slug"] == groups["project"])
                and _matches(i, query.get("query", ""))
            ]
        return self._page(parts.path, query, items)

    def _page(self, path: str, query: dict[str, str], items: list[dict[str, Any]]):
        size = min(int(query.get("limit") or 100), self.page_size)
        offset = int((query.get("cursor") or "0:0:0").split(":")[1])
        page = items[offset : offset + size]

        def link(rel: str, cursor_offset: int, has: bool) -> str:
            cursor = f"0:{cursor_offset}:{int(rel == 'previous')}"
            url = f"{self.url}{path}?{urlencode({**query, 'cursor': cursor})}"
            return f'<{url}>; rel="{rel}"; results="{str(has).lower()}"; cursor="{cursor}"'

        links = ", ".join(
            [
                link("previous", max(0, offset - size), offset > 0),
                link("next", offset + size, offset + size < len(items)),
            ]
        )
        status, headers, body = json_response(page)
        headers["Link"] = links
        return status, headers, body
