"""The run being generated: the events it emits (in each source's shape) and its metric arrays.

Scenario code calls :class:`Run`'s emitters (``log``, ``stream``, ``access``, ``k8s_event``,
``pod_event``, ``pod_state``, ``sentry_issue``, ``sentry_events``, ``alarm``, ``deploy``) and
reshapes series (``add_series``, ``shape``); an emitter given an incident ``tag`` also widens
that incident's span. Rows are validated into ``Event`` objects once, at the end
(``samples.scenarios.truth``).

Example:
    ```python
    import random
    from datetime import UTC, datetime

    from samples.scenarios.run import Run
    from samples.scenarios.topology import build_topology

    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    run = Run(build_topology(random.Random("topology:0")), 0, 5_000, 1.0, start, 7200)
    run.stream(None, run.topo.pods["payments"], 0, 600, 0.1, "INFO", ['msg="ok" ms={ms}'])
    print(len(run.rows), run.rows[0][3]["message"])
    ```
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from samples.scenarios.dialects import SEVERITY, format_line, iso_utc, nginx_access_line
from samples.scenarios.draw import Fill, draw_hex, draw_int, pick
from samples.scenarios.topology import NS, Pod, Topology

METRIC_STEP = 60  # seconds between metric samples


@dataclass
class Series:
    source: str
    related: list[str]
    unit: str
    values: np.ndarray
    first: int = 0  # index of the first sample (series that start mid-run)


@dataclass
class PlantedIncident:
    id: str
    scenario: str
    target: str
    start: float  # seconds from the run start
    length: float
    root_cause: str = ""
    description: str = ""
    metric_keys: set[tuple[str, str]] = field(default_factory=set)
    span: list[float] = field(default_factory=list)  # [first, last] second it touched

    @property
    def end(self) -> float:
        return self.start + self.length


class Run:
    """Collects events (as dicts, validated once at the end) and metric arrays."""

    def __init__(
        self,
        topo: Topology,
        seed: int,
        budget: float,
        noise: float,
        start: datetime,
        duration: int,
    ):
        self.topo = topo
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
        self.nrng = np.random.default_rng(seed)
        self.start, self.duration = start, duration
        self.budget, self.noise = budget, noise
        self.rows: list[tuple[float, int, str | None, dict]] = []
        self.incidents: dict[str, PlantedIncident] = {}
        self.series: dict[tuple[str, str], Series] = {}
        self.n_steps = duration // METRIC_STEP

    # --- time and volume

    def at(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)

    def rate(self, share: float) -> float:
        """Lines per second of a stream that is ``share`` of the background volume."""
        return share * self.budget / self.duration

    def times(self, t0: float, t1: float, rate: float, minimum: int = 0) -> list[float]:
        """Poisson arrivals in [t0, t1), at least ``minimum`` of them."""
        t1 = min(t1, self.duration - 1)
        if t1 <= t0:
            return []
        n = max(int(self.nrng.poisson(rate * (t1 - t0))), minimum)
        return sorted(self.nrng.uniform(t0, t1, n).tolist())

    # --- events

    def emit(
        self,
        t: float,
        tag: str | None,
        source: str,
        kind: str,
        entity: str,
        related: list[str],
        severity: str,
        message: str,
        attributes: dict[str, str],
        dt: datetime | None = None,
    ) -> None:
        row = {
            "timestamp": dt or self.at(t),
            "source": source,
            "kind": kind,
            "entity": entity,
            "related": related,
            "severity": severity,
            "message": message,
            "attributes": attributes,
        }
        self.rows.append((t, len(self.rows), tag, row))
        if tag is not None:
            self.touch(tag, t, t)

    def touch(self, tag: str, t0: float, t1: float) -> None:
        span = self.incidents[tag].span
        if span:
            span[0], span[1] = min(span[0], t0), max(span[1], t1)
        else:
            span.extend((t0, t1))

    def log(
        self,
        t: float,
        tag: str | None,
        pod: Pod,
        level: str,
        text: str,
        logger: str = "",
        *,
        style: str | None = None,
        container: str | None = None,
    ) -> None:
        """A container log line of ``pod``; ``text`` is a template (``{order}``, ``{{``)."""
        dt = self.at(t)
        text = text.format_map(Fill(self.rng, {})) if "{" in text else text
        line = format_line(style or pod.style, dt, level, logger, text, pod, self.rng)
        attrs = {"container": container or pod.service, "namespace": pod.namespace}
        self.emit(
            t, tag, "kubernetes", "log", pod.entity, pod.related, SEVERITY[level], line, attrs, dt
        )

    def stream(
        self,
        tag: str | None,
        pods: Sequence[Pod],
        t0: float,
        t1: float,
        rate: float,
        level: str,
        texts: Sequence[str],
        logger: str = "",
        *,
        minimum: int = 0,
        style: str | None = None,
        container: str | None = None,
    ) -> None:
        """Log lines at Poisson times, each on a random pod with a random template."""
        rng = self.rng
        for t in self.times(t0, t1, rate, minimum):
            self.log(
                t,
                tag,
                pick(rng, pods),
                level,
                pick(rng, texts),
                logger,
                style=style,
                container=container,
            )

    def access(
        self,
        t: float,
        tag: str | None,
        method: str,
        path: str,
        status: int,
        rt: float | None = None,
    ) -> None:
        """An nginx access line (combined format + request time) from a frontend pod."""
        rng = self.rng
        pod, dt = pick(rng, self.topo.pods["frontend"]), self.at(t)
        path = path.format_map(Fill(rng, {})) if "{" in path else path
        size = draw_int(rng, 150, 600) if status >= 400 else draw_int(rng, 180, 48000)
        rt = rng.random() * 0.2 if rt is None else rt
        line = nginx_access_line(dt, method, path, status, size, rt, rng)
        severity = "error" if status >= 500 else "info"
        attrs = {"container": "nginx", "namespace": pod.namespace}
        self.emit(t, tag, "kubernetes", "log", pod.entity, pod.related, severity, line, attrs, dt)

    def k8s_event(
        self,
        t: float,
        tag: str | None,
        entity: str,
        related: list[str],
        reason: str,
        message: str,
        *,
        warning: bool = True,
        involved: str = "Pod",
        count: int = 1,
        component: str = "kubelet",
    ) -> None:
        attrs = {
            "reason": reason,
            "type": "Warning" if warning else "Normal",
            "involved_kind": involved,
            "count": str(count),
            "component": component,
        }
        severity = "warning" if warning else "info"
        self.emit(t, tag, "kubernetes", "k8s_event", entity, related, severity, message, attrs)

    def pod_event(
        self,
        t: float,
        tag: str | None,
        pod: Pod,
        reason: str,
        message: str,
        *,
        warning: bool = True,
        count: int = 1,
    ) -> None:
        self.k8s_event(
            t, tag, pod.entity, pod.related, reason, message, warning=warning, count=count
        )

    def pod_state(
        self, t: float, tag: str, pod: Pod, reason: str, message: str, restarts: int
    ) -> None:
        attrs = {"reason": reason, "restarts": str(restarts), "container": pod.service}
        self.emit(
            t,
            tag,
            "kubernetes",
            "k8s_state",
            pod.entity,
            pod.related,
            "error",
            f"{reason}: {message}",
            attrs,
        )

    def sentry_issue(
        self,
        t: float,
        tag: str | None,
        project: str,
        title: str,
        culprit: str,
        *,
        first_seen: float,
        count: int,
        substatus: str = "new",
    ) -> None:
        digest = hashlib.sha256(f"{project}|{title}".encode()).hexdigest()
        attrs = {
            "issue_id": str(int(digest[:8], 16) + 4_000_000_000),
            "short_id": f"{project.upper()}-{digest[:3].upper()}",
            "project": project,
            "status": "unresolved",
            "substatus": substatus,
            "isRegression": str(substatus == "regressed").lower(),
            "level": "error",
            "culprit": culprit,
            "count": str(count),
            "userCount": str(max(1, count // 3)),
            "firstSeen": iso_utc(self.at(first_seen)),
            "lastSeen": iso_utc(self.at(t)),
        }
        self.emit(t, tag, "sentry", "issue", f"service:{project}", NS, "error", title, attrs)

    def sentry_events(
        self,
        tag: str | None,
        project: str,
        title: str,
        culprit: str,
        t0: float,
        t1: float,
        rate: float,
        minimum: int = 0,
    ) -> None:
        for t in self.times(t0, t1, rate, minimum):
            attrs = {"project": project, "culprit": culprit, "event_id": draw_hex(self.rng, 32)}
            self.emit(
                t, tag, "sentry", "error_event", f"service:{project}", NS, "error", title, attrs
            )

    def alarm(
        self,
        t: float,
        tag: str | None,
        entity: str,
        name: str,
        metric: str,
        value: float,
        threshold: float,
        *,
        above: bool = True,
        state: str = "ALARM",
        related: list[str] | None = None,
    ) -> None:
        """A CloudWatch alarm state change, with CloudWatch's own StateReason wording."""
        previous = "OK" if state == "ALARM" else "ALARM"
        stamp = self.at(t - 60).strftime("%d/%m/%y %H:%M:%S")
        reason = (
            f"Threshold Crossed: 1 out of the last 1 datapoints [{value:.1f} ({stamp})] was "
            f"{'greater than' if above else 'less than'} the threshold ({threshold:.1f}) "
            f"(minimum 1 datapoint for {previous} -> {state} transition)."
        )
        attrs = {
            "alarm_name": name,
            "state": state,
            "previous_state": previous,
            "metric_name": metric,
            "region": "eu-west-1",
        }
        self.emit(
            t,
            tag,
            "cloudwatch",
            "alarm",
            entity,
            NS if related is None else related,
            "error" if state == "ALARM" else "info",
            f"Alarm {name} changed from {previous} to {state}: {reason}",
            attrs,
        )

    def deploy(self, t: float, tag: str | None, service: str, text: str, version: str) -> None:
        """A Grafana deploy annotation."""
        attrs = {
            "tags": f"deploy,argo-cd,{service}",
            "version": version,
            "dashboard_uid": "shop-overview",
            "annotation_id": str(draw_int(self.rng, 10**4, 10**5)),
        }
        self.emit(t, tag, "grafana", "deploy", f"service:{service}", NS, "info", text, attrs)

    # --- metrics

    def add_series(
        self,
        entity: str,
        metric: str,
        source: str,
        unit: str,
        level: float,
        related: list[str],
        jitter: float = 0.04,
        first: int = 0,
    ) -> None:
        """A steady series: level, a slow wave, jitter and a few one-sample glitches."""
        n = self.n_steps - first
        wave = 1 + 0.06 * np.sin(2 * np.pi * (np.arange(n) + self.nrng.uniform(0, 240)) / 240)
        values = level * wave * (1 + jitter * self.nrng.standard_normal(n))
        for i in self.nrng.integers(0, n, self.nrng.poisson(self.noise * n / 150)):
            values[i] *= self.nrng.uniform(1.6, 2.4)
        self.series[(entity, metric)] = Series(source, related, unit, np.maximum(values, 0), first)

    def shape(
        self,
        tag: str,
        entity: str,
        metric: str,
        t0: float,
        t1: float,
        target: float,
        ramp: float = 90,
        jitter: float = 0.05,
    ) -> None:
        """Move the samples in [t0, t1] toward ``target``, ramping in over ``ramp`` seconds."""
        s = self.series[(entity, metric)]
        i0 = max(math.ceil(t0 / METRIC_STEP) - s.first, 0)
        i1 = min(int(t1 // METRIC_STEP) - s.first + 1, len(s.values))
        if i1 <= i0:
            return
        t = (np.arange(i0, i1) + s.first) * METRIC_STEP
        weight = np.clip((t - t0 + METRIC_STEP) / max(ramp, METRIC_STEP), 0, 1)
        moved = target * (1 + jitter * self.nrng.standard_normal(i1 - i0))
        s.values[i0:i1] = (1 - weight) * s.values[i0:i1] + weight * moved
        self.incidents[tag].metric_keys.add((entity, metric))
        self.touch(tag, float(t[0]), float(t[-1]))

    def base(self, entity: str, metric: str) -> float:
        return float(np.median(self.series[(entity, metric)].values))
