"""metrics-server usage (``metrics.k8s.io/v1beta1``) as telemetry ``MetricSeries``.

Pure functions over ``PodMetrics`` / ``NodeMetrics`` items; ``tasks.telemetry.kubernetes``
reads them (``fetch_k8s_metrics``). Pods and nodes get ``cpu_millicores`` and
``memory_bytes``; nodes whose allocatable resources are known also ``cpu_percent`` and
``memory_percent``.

Example:
    ```python
    from tasks.telemetry.kubernetes_metrics import node_metrics_to_series, quantity

    assert quantity("250m") == 0.25
    item = {
        "metadata": {"name": "node-1"},
        "timestamp": "2026-01-05T10:00:00Z",
        "usage": {"cpu": "500m", "memory": "1Gi"},
    }
    series = node_metrics_to_series([item])
    assert [(s.metric, s.values) for s in series] == [
        ("cpu_millicores", [500.0]),
        ("memory_bytes", [1073741824.0]),
    ]
    ```
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from tasks.common.times import parse_time_or_none
from tasks.telemetry.entities import DEFAULT_SERVICE_LABELS, pod_service, service_from_pod_name
from tasks.telemetry.kubernetes_mapping import SOURCE, NodeRef, PodRef
from tasks.telemetry.model import MetricSeries, entity_key


def quantity(value: Any) -> float:
    """A Kubernetes quantity (``"250m"``, ``"12345678n"``, ``"512Mi"``) as a float."""
    from kubernetes.utils import parse_quantity

    return float(parse_quantity(str(value)))


def _usage_series(
    entity: str,
    related: list[str],
    when: datetime,
    cpu_cores: float,
    memory_bytes: float,
    attributes: dict[str, str],
) -> list[MetricSeries]:
    return [
        MetricSeries(
            source=SOURCE,
            entity=entity,
            related=related,
            metric=metric,
            unit=unit,
            timestamps=[when],
            values=[value],
            attributes=attributes,
        )
        for metric, unit, value in (
            ("cpu_millicores", "millicores", round(cpu_cores * 1000, 3)),
            ("memory_bytes", "bytes", memory_bytes),
        )
    ]


def pod_metrics_to_series(
    items: Iterable[Mapping[str, Any]],
    pods: Mapping[tuple[str, str], PodRef] | None = None,
    service_labels: Iterable[str] = DEFAULT_SERVICE_LABELS,
) -> list[MetricSeries]:
    """``PodMetrics`` items (``metrics.k8s.io/v1beta1``) as per-pod usage series.

    Each pod gets ``cpu_millicores`` and ``memory_bytes`` (its containers summed), one
    sample at the item's ``timestamp``; related entities from ``pods`` when known, else
    from the item's labels or its name.
    """
    out: list[MetricSeries] = []
    for item in items:
        meta = item.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name", ""))
        ref = (pods or {}).get((namespace, name))
        if ref is None:
            service = pod_service(item, service_labels) or service_from_pod_name(name)
            ref = PodRef(
                namespace=namespace,
                name=name,
                service=service,
                related=[f"service:{service}", f"namespace:{namespace}"],
            )
        containers = item.get("containers") or []
        cpu = sum(quantity((c.get("usage") or {}).get("cpu", 0)) for c in containers)
        memory = sum(quantity((c.get("usage") or {}).get("memory", 0)) for c in containers)
        attrs = {"namespace": namespace, "pod": name, "containers": str(len(containers))}
        if item.get("window"):
            attrs["window"] = str(item["window"])
        when = parse_time_or_none(item.get("timestamp")) or datetime.now(UTC)
        out.extend(_usage_series(ref.entity, list(ref.related), when, cpu, memory, attrs))
    return out


def node_metrics_to_series(
    items: Iterable[Mapping[str, Any]], nodes: Iterable[NodeRef] = ()
) -> list[MetricSeries]:
    """``NodeMetrics`` items as node usage series; with the node's allocatable
    resources known (``nodes``), also ``cpu_percent`` and ``memory_percent``."""
    known = {n.name: n for n in nodes}
    out: list[MetricSeries] = []
    for item in items:
        name = str((item.get("metadata") or {}).get("name", ""))
        usage = item.get("usage") or {}
        cpu, memory = quantity(usage.get("cpu", 0)), quantity(usage.get("memory", 0))
        when = parse_time_or_none(item.get("timestamp")) or datetime.now(UTC)
        attrs = {"node": name}
        if item.get("window"):
            attrs["window"] = str(item["window"])
        entity = entity_key("node", name)
        out.extend(_usage_series(entity, [], when, cpu, memory, attrs))
        node = known.get(name)
        percents = (("cpu_percent", cpu, "cpu"), ("memory_percent", memory, "memory"))
        for metric, used, key in percents:
            total = quantity(node.allocatable[key]) if node and key in node.allocatable else 0.0
            if total > 0 and math.isfinite(used):
                out.append(
                    MetricSeries(
                        source=SOURCE,
                        entity=entity,
                        metric=metric,
                        unit="percent",
                        timestamps=[when],
                        values=[round(100.0 * used / total, 3)],
                        attributes={**attrs, "of": f"allocatable {node.allocatable[key]}"},
                    )
                )
    return out
