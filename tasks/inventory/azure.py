"""Azure inventory (virtual machines, managed disks) of a subscription as ``Resource``s.

``virtual_machines.list_all()`` gives every VM's size, location, zones, tags and
creation time; its power state is only in the instance view, fetched per VM (in
parallel). ``disks.list()`` gives every managed disk. The mapping functions read the
ARM JSON shapes (``model.as_dict()``), so they are testable without Azure.

Power states: ``running`` is billed ("running"); ``deallocated`` is not ("stopped");
``stopped`` means the OS was shut down but the VM still holds its hardware and is
billed for compute as if running, so it is reported "running" (the Resource model's
"stopped" means "not billed for compute"); a rule that wants to suggest deallocating
it needs a field the model does not have yet. ``starting`` is "pending",
``stopping``/``deallocating`` are "stopping". ``state_since`` is the PowerState
status time when the instance view has one, else, for a deallocated VM, the time its
last operation (the deallocation, or a later one) finished: a lower bound on how long
it has been stopped. A disk's ``state_since`` is its ``lastOwnershipUpdateTime``
(attach, detach or VM deallocation). CPU metrics are not collected
(azure-mgmt-monitor is not a dependency); prices are left to ``tasks.pricing.resource_prices``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from blocks.azure import AzureCredentials
from tasks.common.retry import cloud_api_task, task_logger
from tasks.common.times import parse_time_or_none
from tasks.inventory.model import Resource, ResourceState

SUBSCRIPTION_ID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_RESOURCE_GROUP = re.compile(r"/resourceGroups/([^/]+)/", re.IGNORECASE)
POWER_STATES: dict[str, ResourceState] = {
    "running": "running",
    "stopped": "running",  # still allocated, still billed: see the module docstring
    "deallocated": "stopped",
    "starting": "pending",
    "stopping": "stopping",
    "deallocating": "stopping",
}
DISK_STATES: dict[str, ResourceState] = {
    "unattached": "available",
    "attached": "in-use",
    "reserved": "in-use",  # attached to a deallocated VM
}


def resource_group(resource_id: str) -> str:
    """The resource group named in an ARM id."""
    match = _RESOURCE_GROUP.search(resource_id)
    if not match:
        raise ValueError(f"no resource group in ARM id {resource_id!r}")
    return match.group(1)


def _zone(item: Mapping[str, Any]) -> str | None:
    zones = item.get("zones") or []
    return f"{item.get('location')}-{zones[0]}" if zones else None


def power_state(view: Mapping[str, Any] | None) -> tuple[ResourceState, datetime | None]:
    """State and state-since from an instance view's statuses (JSON shape).

    Args:
        view: ``virtual_machines.instance_view()`` as a dict (``statuses``: list of
            ``{"code": "PowerState/running", "time": ...}``), or None.

    Returns:
        ``(state, since)``; ``("unknown", None)`` without a PowerState status.
    """
    statuses = list((view or {}).get("statuses") or [])
    power = next((s for s in statuses if str(s.get("code", "")).startswith("PowerState/")), None)
    if power is None:
        return "unknown", None
    raw = str(power["code"]).split("/", 1)[1].lower()
    state = POWER_STATES.get(raw, "unknown")
    since = parse_time_or_none(power.get("time"))
    if since is None and raw == "deallocated":
        done = [
            s for s in statuses if str(s.get("code", "")).lower() == "provisioningstate/succeeded"
        ]
        since = parse_time_or_none(done[0].get("time")) if done else None
    return state, since


def vm_resource(
    vm: Mapping[str, Any], view: Mapping[str, Any] | None, subscription_id: str
) -> Resource:
    """One VM (ARM JSON shape) and its instance view as a ``Resource``.

    Args:
        vm: a ``virtual_machines.list_all()`` item as a dict.
        view: its instance view as a dict (None when it could not be read).
        subscription_id: ``Resource.account``.
    """
    props = vm.get("properties") or {}
    state, since = power_state(view)
    return Resource(
        id=str(vm["id"]),
        provider="azure",
        account=subscription_id,
        region=str(vm.get("location") or ""),
        zone=_zone(vm),
        kind="instance",
        type=str((props.get("hardwareProfile") or {}).get("vmSize") or ""),
        name=vm.get("name"),
        state=state,
        state_since=since,
        created=parse_time_or_none(props.get("timeCreated")),
        tags=dict(vm.get("tags") or {}),
    )


def disk_resource(disk: Mapping[str, Any], subscription_id: str) -> Resource:
    """One managed disk (ARM JSON shape) as a ``Resource``.

    ``Unattached`` disks are "available" with ``attached_to`` None; attached (or
    reserved by a deallocated VM) disks are "in-use" and attached to ``managedBy``.
    """
    props = disk.get("properties") or {}
    raw = str(props.get("diskState") or "").lower()
    state = DISK_STATES.get(raw, "in-use" if disk.get("managedBy") else "unknown")
    size = props.get("diskSizeGB")
    return Resource(
        id=str(disk["id"]),
        provider="azure",
        account=subscription_id,
        region=str(disk.get("location") or ""),
        zone=_zone(disk),
        kind="volume",
        type=str((disk.get("sku") or {}).get("name") or ""),
        name=disk.get("name"),
        state=state,
        state_since=parse_time_or_none(props.get("lastOwnershipUpdateTime")),
        size_gib=float(size) if size is not None else None,
        attached_to=None if raw == "unattached" else (disk.get("managedBy") or None),
        created=parse_time_or_none(props.get("timeCreated")),
        tags=dict(disk.get("tags") or {}),
    )


def _instance_view(client: Any, vm: Mapping[str, Any]) -> dict[str, Any] | None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        view = client.virtual_machines.instance_view(resource_group(vm["id"]), vm["name"])
    except ResourceNotFoundError:  # deleted since it was listed
        return None
    return view.as_dict()


@cloud_api_task("collect-azure-resources")
def collect_azure_resources(
    azure_credentials: AzureCredentials | None,
    subscription_id: str,
    *,
    max_workers: int = 8,
) -> list[Resource]:
    """Virtual machines and managed disks of one Azure subscription.

    Args:
        azure_credentials: ``AzureCredentials`` block; ``None`` uses ``DefaultAzureCredential``.
        subscription_id: the subscription (a GUID).
        max_workers: instance views read in parallel.

    Returns:
        VMs then disks, with ``hourly_price``/``monthly_cost`` left None; a VM deleted
        between the listing and its instance view is left out.

    Example:
        ```python
        from prefect import flow
        from blocks.azure import AzureCredentials
        from tasks.inventory.azure import collect_azure_resources

        @flow
        def azure_inventory():
            creds = AzureCredentials.load("BLOCK_NAME")
            return collect_azure_resources(creds, "00000000-0000-0000-0000-000000000000")
        ```
    """
    if not SUBSCRIPTION_ID.match(subscription_id or ""):
        raise ValueError(f"subscription_id: {subscription_id!r} is not a subscription GUID")
    if max_workers < 1:
        raise ValueError(f"max_workers: {max_workers} must be at least 1")
    logger = task_logger(__name__)
    subscription_id = subscription_id.lower()
    client = (azure_credentials or AzureCredentials()).get_compute_client(subscription_id)
    vms = [vm.as_dict() for vm in client.virtual_machines.list_all()]
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        views = list(pool.map(lambda vm: _instance_view(client, vm), vms))
    resources = [
        vm_resource(vm, view, subscription_id)
        for vm, view in zip(vms, views, strict=True)
        if view is not None
    ]
    disks = [d.as_dict() for d in client.disks.list()]
    resources += [disk_resource(d, subscription_id) for d in disks]
    logger.info(
        "Azure Compute %s: %d VMs (%d gone before their instance view was read), %d disks",
        subscription_id,
        len(vms),
        len(vms) - (len(resources) - len(disks)),
        len(disks),
    )
    return resources
