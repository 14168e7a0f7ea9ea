"""Hand-built anomaly signals for the correlation and remediation tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.incidents.signals import AnomalySignal

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NS = "namespace:shop"


def sig(
    sid: str,
    entity: str,
    minute: float,
    *,
    related: tuple[str, ...] = (),
    kind: str = "new_template",
    source: str = "kubernetes",
    score: float = 0.8,
    title: str | None = None,
    severity: str = "error",
    duration: float = 1.0,
    evidence: dict | None = None,
) -> AnomalySignal:
    """A signal ``minute`` minutes after ``T0``; title defaults to "<kind> on <entity>"."""
    start = T0 + timedelta(minutes=minute)
    return AnomalySignal(
        id=sid,
        kind=kind,
        source=source,
        entity=entity,
        related=list(related),
        start=start,
        end=start + timedelta(minutes=duration),
        score=score,
        severity=severity,
        title=f"{kind} on {entity}" if title is None else title,
        evidence=evidence or {},
    )


def pod(service: str, suffix: str = "7d9f8c6b5-x2k4p", node: str = "node-a") -> dict:
    """``entity``/``related`` keyword arguments for a pod of ``service`` on ``node``."""
    return {
        "entity": f"pod:{service}-{suffix}",
        "related": (f"service:{service}", f"node:{node}", NS),
    }
