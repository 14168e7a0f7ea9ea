"""What the remediation rules read from signals: text, metric, direction, service, node.

``Context`` indexes one incident's evidence (its signals, recent deploys, the namespace
of each service) for the command builders (``tasks.incidents.remediation.commands``).

Example:
    ```python
    from tasks.incidents.remediation.evidence import format_quantity, parse_quantity

    print(parse_quantity("512Mi"), format_quantity(2 * parse_quantity("512Mi")))
    # 536870912 1Gi
    ```
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tasks.incidents.signals import AnomalySignal, Incident, entity_name, entity_type
from tasks.telemetry.entities import service_from_pod_name

# evidence keys that are the detector's bookkeeping, not text about the failure
_NOT_TEXT = frozenset(
    {"corroborated_by", "first_seen", "last_seen", "dashboard_uid", "annotation_id", "issue"}
)
_QUANTITY = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[KMGTE]i?|k|m)?\s*$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "E": 10**18}


@dataclass
class Context:
    """An incident's evidence, indexed for the action builders."""

    incident: Incident
    signals: list[AnomalySignal]  # the incident's, non-deploy
    deploys: list[AnomalySignal]  # on the incident or shortly before it
    namespaces: dict[str, str] = field(default_factory=dict)  # service -> namespace

    def namespace(self, service: str) -> str:
        return self.namespaces.get(service, "default")

    def root_signal(self) -> AnomalySignal | None:
        wanted = self.incident.root_cause_signal
        return next((s for s in self.signals if s.id == wanted), None)

    def root_service(self) -> str | None:
        root = self.root_signal()
        if root is not None and (svc := service_of(root)):
            return svc
        rc = self.incident.root_cause
        return entity_name(rc) if rc and entity_type(rc) == "service" else None


def signal_text(sig: AnomalySignal) -> str:
    """What a keyword may match: title, template, cluster label and the evidence's text
    values (a reason, a metric name); never numbers or the detector's bookkeeping."""
    parts = [sig.title, sig.template or "", sig.cluster_label or ""]
    parts += [
        v for k, v in sorted(sig.evidence.items()) if isinstance(v, str) and k not in _NOT_TEXT
    ]
    return " ".join(parts)


def rising(sig: AnomalySignal) -> bool:
    """Whether a metric signal went up (evidence ``direction`` / sign of its z-score)."""
    direction = str(sig.evidence.get("direction", "")).lower()
    if direction:
        return direction in ("up", "rising", "high", "increase")
    for key in ("peak_z", "z", "zscore"):
        if isinstance(sig.evidence.get(key), float | int):
            return float(sig.evidence[key]) > 0
    return bool(re.search(r"\b(up|climbing|rising|increas\w*)\b", sig.title, re.IGNORECASE))


def metric_name(sig: AnomalySignal) -> str | None:
    """The metric behind a metric signal (evidence ``metric``), else None."""
    name = sig.evidence.get("metric")
    return str(name) if name is not None else None


def service_of(sig: AnomalySignal) -> str | None:
    """The service (= Deployment name) a signal is about, if it can be told."""
    for ent in [sig.entity, *sorted(sig.related)]:
        if entity_type(ent) == "service":
            return entity_name(ent)
    if deployment := sig.evidence.get("deployment"):
        return str(deployment)
    if entity_type(sig.entity) == "pod":
        pod = entity_name(sig.entity)
        guess = service_from_pod_name(pod)
        return guess if guess != pod else None
    return None


def node_of(sig: AnomalySignal) -> str | None:
    for ent in [sig.entity, *sorted(sig.related)]:
        if entity_type(ent) in ("node", "host"):
            return ent
    return None


def parse_quantity(text: str) -> int | None:
    """Bytes of a Kubernetes memory quantity (``"512Mi"``, ``"1G"``, ``"536870912"``)."""
    match = _QUANTITY.match(str(text))
    if not match:
        return None
    unit = match.group("unit") or ""
    num = float(match.group("num"))
    if unit == "m":  # milli-bytes: legal, absurd
        return int(num / 1000)
    return int(num * (_BINARY.get(unit) or _DECIMAL.get(unit) or 1))


def format_quantity(nbytes: int) -> str:
    """The shortest exact binary form, rounded up to whole MiB: ``"1Gi"``, ``"768Mi"``."""
    mib = math.ceil(nbytes / 2**20)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def top_titles(sigs: Iterable[AnomalySignal], n: int = 3) -> str:
    ranked = sorted(sigs, key=lambda s: (-s.score, s.start, s.id))[:n]
    return "; ".join(f"{s.title!r} ({s.source}, score {s.score:.2f})" for s in ranked)


def first_evidence(sigs: Iterable[AnomalySignal], key: str) -> str | None:
    for sig in sigs:
        if key in sig.evidence:
            return str(sig.evidence[key])
    return None
