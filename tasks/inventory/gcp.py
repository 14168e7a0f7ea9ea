"""GCP Compute Engine inventory (VM instances, persistent disks) as ``Resource`` objects.

``instances.aggregatedList`` and ``disks.aggregatedList`` (google-cloud-compute, REST
transport) return every zone (and region, for regional disks) of a project in pages.
The mapping functions read the API's JSON shapes, so they are testable without GCP.

States: ``RUNNING`` is billed ("running"); ``TERMINATED`` (stopped) and ``SUSPENDED``
are not billed for vCPUs and memory ("stopped"; a suspended VM still pays for its
saved memory and disks); ``PROVISIONING``/``STAGING`` are "pending",
``STOPPING``/``SUSPENDING`` "stopping", ``REPAIRING`` "unknown". ``state_since`` is
``lastStopTimestamp`` (``lastSuspendedTimestamp``) for a stopped (suspended) VM and
``lastStartTimestamp`` for a running one. Prices are left to ``tasks.pricing.resource_prices``;
CPU metrics are not collected (Cloud Monitoring's client is not a dependency).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from prefect_gcp import GcpCredentials

from tasks.clouds.gcp import COMPUTE_ENDPOINT, compute_clients
from tasks.common.retry import cloud_api_task, task_logger
from tasks.common.times import parse_time_or_none
from tasks.inventory.model import Resource, ResourceState

PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
INSTANCE_STATES: dict[str, ResourceState] = {
    "PROVISIONING": "pending",
    "STAGING": "pending",
    "RUNNING": "running",
    "STOPPING": "stopping",
    "SUSPENDING": "stopping",
    "SUSPENDED": "stopped",
    "TERMINATED": "stopped",
    "REPAIRING": "unknown",
}
_SINCE = {
    "running": ("lastStartTimestamp",),
    "stopped": ("lastStopTimestamp", "lastSuspendedTimestamp"),
}


def short_name(url: str | None) -> str:
    """Last path segment of a Compute Engine URL (``.../machineTypes/n2-standard-4``)."""
    return (url or "").rstrip("/").rsplit("/", 1)[-1]


def zone_region(zone: str) -> str:
    """``us-central1-a`` -> ``us-central1``."""
    return zone.rsplit("-", 1)[0] if zone.count("-") >= 2 else zone


def _self_link(item: Mapping[str, Any], project: str, kind: str) -> str:
    if item.get("selfLink"):
        return str(item["selfLink"])
    where = item.get("zone") or item.get("region") or ""
    scope = "zones" if item.get("zone") else "regions"
    return f"projects/{project}/{scope}/{short_name(where)}/{kind}/{item.get('name')}"


def instance_resource(instance: Mapping[str, Any], project: str) -> Resource:
    """One ``Instance`` (REST JSON shape) as a ``Resource``.

    Args:
        instance: an item of ``instances.aggregatedList`` (``name``, ``zone``,
            ``machineType``, ``status``, ``labels``, ``creationTimestamp``,
            ``lastStartTimestamp``, ``lastStopTimestamp``, ``selfLink``).
        project: the project id (``Resource.account``).

    Returns:
        A ``Resource`` of kind ``instance``; its id is the self link, which is what a
        disk's ``users`` name, so ``attached_to`` matches it.
    """
    zone = short_name(instance.get("zone"))
    state = INSTANCE_STATES.get(str(instance.get("status") or "").upper(), "unknown")
    since = next(
        (parse_time_or_none(instance[k]) for k in _SINCE.get(state, ()) if instance.get(k)),
        None,
    )
    return Resource(
        id=_self_link(instance, project, "instances"),
        provider="gcp",
        account=project,
        region=zone_region(zone),
        zone=zone or None,
        kind="instance",
        type=short_name(instance.get("machineType")),
        name=instance.get("name"),
        state=state,
        state_since=since,
        created=parse_time_or_none(instance.get("creationTimestamp")),
        tags=dict(instance.get("labels") or {}),
    )


def disk_resource(disk: Mapping[str, Any], project: str) -> Resource:
    """One ``Disk`` (REST JSON shape) as a ``Resource``.

    Args:
        disk: an item of ``disks.aggregatedList`` (``name``, ``zone`` or ``region``,
            ``type``, ``sizeGb``, ``users``, ``status``, ``labels``, ``creationTimestamp``).
        project: the project id.

    Returns:
        A ``Resource`` of kind ``volume``: ``in-use`` and ``attached_to`` the first
        user when an instance uses it, ``available`` (unattached) when none does.
    """
    users = list(disk.get("users") or [])
    status = str(disk.get("status") or "READY").upper()
    state: ResourceState
    if users:
        state = "in-use"
    elif status == "READY":
        state = "available"
    else:
        state = "pending" if status in ("CREATING", "RESTORING") else "unknown"
    zone = short_name(disk.get("zone")) or None
    region = short_name(disk.get("region")) or (zone_region(zone) if zone else "")
    size = disk.get("sizeGb")
    return Resource(
        id=_self_link(disk, project, "disks"),
        provider="gcp",
        account=project,
        region=region,
        zone=zone,
        kind="volume",
        type=short_name(disk.get("type")),
        name=disk.get("name"),
        state=state,
        size_gib=float(size) if size not in (None, "") else None,
        attached_to=users[0] if users else None,
        created=parse_time_or_none(disk.get("creationTimestamp")),
        tags=dict(disk.get("labels") or {}),
    )


def scoped_items(pages: Iterable[tuple[str, Mapping[str, Any]]], field: str) -> list[dict]:
    """Flatten aggregated-list ``(scope, scoped list)`` pairs into the ``field`` items."""
    return [dict(item) for _scope, scoped in pages for item in scoped.get(field) or []]


def _as_json(pager: Iterable[tuple[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(scope, type(s).to_dict(s, preserving_proto_field_name=False)) for scope, s in pager]


@cloud_api_task("collect-gcp-resources")
def collect_gcp_resources(
    gcp_credentials: GcpCredentials | None,
    project: str | None = None,
    *,
    api_endpoint: str = COMPUTE_ENDPOINT,
    page_size: int = 500,
    timeout_seconds: float = 60.0,
) -> list[Resource]:
    """Compute Engine instances and persistent disks of one project.

    Args:
        gcp_credentials: prefect-gcp ``GcpCredentials``; ``None`` uses Application Default
            Credentials.
        project: project id; default the block's project.
        api_endpoint: Compute Engine API base URL (override for tests).
        page_size: items per aggregated-list page (``maxResults``, at most 500).
        timeout_seconds: per-request timeout.

    Returns:
        Instances then disks, with ``hourly_price``/``monthly_cost`` left None.

    Example:
        ```python
        from prefect import flow
        from prefect_gcp import GcpCredentials
        from tasks.inventory.gcp import collect_gcp_resources

        @flow
        def gcp_inventory():
            return collect_gcp_resources(GcpCredentials.load("BLOCK_NAME"), "my-project")
        ```
    """
    if project is not None and not PROJECT_ID.match(project):
        raise ValueError(f"project: {project!r} is not a GCP project id")
    if not 1 <= page_size <= 500:
        raise ValueError(f"page_size: {page_size} must be between 1 and 500")
    logger = task_logger(__name__)
    gcp_credentials = gcp_credentials or GcpCredentials()
    project = project or gcp_credentials.project
    if not project or not PROJECT_ID.match(project):
        raise ValueError(f"project: {project!r} is not a GCP project id (none on the block)")
    instances_client, disks_client = compute_clients(gcp_credentials, api_endpoint)
    call = {"retry": None, "timeout": timeout_seconds}
    request = {"project": project, "max_results": page_size}
    instances = scoped_items(
        _as_json(instances_client.aggregated_list(request=request, **call)), "instances"
    )
    disks = scoped_items(_as_json(disks_client.aggregated_list(request=request, **call)), "disks")
    resources = [instance_resource(i, project) for i in instances]
    resources += [disk_resource(d, project) for d in disks]
    logger.info(
        "GCP Compute Engine %s: %d instances, %d disks", project, len(instances), len(disks)
    )
    return resources
