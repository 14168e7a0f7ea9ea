"""Entity names shared by every telemetry source and the incident code: which service a pod is.

The telemetry model names things ``<type>:<name>`` (``tasks.telemetry.model.entity_key``).
A pod's service (its workload) is what correlation and remediation reason about; this
module is the one place that works it out:

- ``service_from_labels``: the first of the service labels a pod has (default
  ``app.kubernetes.io/name``, then ``app``);
- ``owner_workload``: the workload a controller object stands for (a ReplicaSet's
  Deployment, a Job's CronJob);
- ``pod_service``: a Pod's service from its labels, else its controlling owner;
- ``service_from_pod_name``: a best guess from a generated pod name alone (what the
  CloudWatch Container Insights logs and the incident code have when the pod JSON is gone).

Example:
    ```python
    from tasks.telemetry.entities import owner_workload, pod_service, service_from_pod_name

    pod = {
        "metadata": {
            "name": "checkout-7d9f8b6c5d-x2x4z",
            "labels": {"pod-template-hash": "7d9f8b6c5d"},
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": "checkout-7d9f8b6c5d", "controller": True}
            ],
        }
    }
    assert pod_service(pod) == "checkout"
    assert service_from_pod_name("postgres-0") == "postgres"
    assert owner_workload("Job", "nightly-report-29123456") == "nightly-report"
    ```
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_SERVICE_LABELS: tuple[str, ...] = ("app.kubernetes.io/name", "app")

# Kubernetes' random-suffix alphabet (pod-template-hash, generateName)
_K8S_RAND = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD = re.compile(rf"^(.+)-{_K8S_RAND}{{6,10}}-{_K8S_RAND}{{5}}$")
_STATEFUL_POD = re.compile(r"^(.+)-\d+$")
_GENERATED_POD = re.compile(rf"^(.+)-{_K8S_RAND}{{5}}$")
_RS_HASH = re.compile(rf"^(.+)-{_K8S_RAND}{{6,10}}$")
_CRONJOB_JOB = re.compile(r"^(.+)-\d{8,}$")


def service_from_pod_name(name: str) -> str:
    """Best guess of a pod's workload from its generated name.

    ``checkout-7d9f8b6c5d-x2x4z`` (Deployment) -> ``checkout``; ``postgres-0``
    (StatefulSet) -> ``postgres``; ``fluentd-k8s4q`` (DaemonSet/Job) -> ``fluentd``;
    anything else is returned unchanged.
    """
    for pattern in (_DEPLOYMENT_POD, _STATEFUL_POD, _GENERATED_POD):
        match = pattern.match(name)
        if match:
            return match.group(1)
    return name


def owner_workload(kind: str, name: str, pod_template_hash: str | None = None) -> str:
    """The workload a controller object stands for: a ReplicaSet's Deployment, a Job's
    CronJob; other kinds are their own workload."""
    if kind == "ReplicaSet":
        if pod_template_hash and name.endswith(f"-{pod_template_hash}"):
            return name[: -len(pod_template_hash) - 1]
        match = _RS_HASH.match(name)
        return match.group(1) if match else name
    if kind == "Job":
        match = _CRONJOB_JOB.match(name)
        return match.group(1) if match else name
    return name


def service_from_labels(
    labels: Mapping[str, Any], service_labels: Iterable[str] = DEFAULT_SERVICE_LABELS
) -> str | None:
    """The value of the first of ``service_labels`` that ``labels`` has (non-empty), else None."""
    for label in service_labels:
        if labels.get(label):
            return str(labels[label])
    return None


def pod_service(
    pod: Mapping[str, Any], service_labels: Iterable[str] = DEFAULT_SERVICE_LABELS
) -> str | None:
    """The service a pod belongs to: the first of ``service_labels`` it has, else its
    controlling owner's workload (a ReplicaSet's Deployment, ...); None for a bare pod."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    service = service_from_labels(labels, service_labels)
    if service is not None:
        return service
    owners = meta.get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if owner and owner.get("name"):
        return owner_workload(
            str(owner.get("kind", "")), str(owner["name"]), labels.get("pod-template-hash")
        )
    return None
